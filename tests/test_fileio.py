"""hbgym.fileio: the one atomic writer (old file kept on failure, no temp file left, normal modes)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from hbgym.leaderboards import store as results_store

from hbgym import offline
from hbgym.datasets.store import ChecksumError
from hbgym.fileio import TEMP_SUFFIX, atomic_write, atomic_write_stream


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(TEMP_SUFFIX))


def permissions(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    dest = tmp_path / "out.bin"
    atomic_write_stream(dest, lambda s: s.write(b"old"))

    def failing(stream):
        stream.write(b"half of the new con")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write_stream(dest, failing)
    assert dest.read_bytes() == b"old"

    def reject(path: Path) -> None:
        assert path.read_bytes() == b"new"  # the check sees the complete temporary file
        raise ChecksumError("rejected")

    with pytest.raises(ChecksumError):
        atomic_write_stream(dest, lambda s: s.write(b"new"), check=reject)
    assert dest.read_bytes() == b"old" and leftovers(tmp_path) == []
    assert atomic_write(dest, b"new") == dest
    assert dest.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_files_get_ordinary_modes_not_0600(tmp_path):
    old_umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a" / "b.json", b"{}")  # parents are created
        assert permissions(tmp_path / "a" / "b.json") == 0o644
        atomic_write(tmp_path / "c", b"x", mode=0o640)
        assert permissions(tmp_path / "c") == 0o640
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize("mode", [-1, 0o10000, "644", True, 6.0])
def test_bad_mode_raises_and_writes_nothing(tmp_path, mode):
    with pytest.raises(ValueError, match="mode must be"):
        atomic_write(tmp_path / "x", b"data", mode=mode)
    assert os.listdir(tmp_path) == []


def test_data_must_be_bytes(tmp_path):
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        atomic_write(tmp_path / "x", "text")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_every_writer_is_the_shared_one(tmp_path):
    """The results store's atomic_write is this one, and offline saves get ordinary modes too."""
    assert results_store.atomic_write is atomic_write
    ds = offline.LoggedDataset(np.zeros(3, int), np.array([0, 1, 0]), np.ones(3),
                               {"context": np.zeros((3, 2))}, num_tasks=1, num_actions=2)
    old_umask = os.umask(0o022)
    try:
        ds.save(tmp_path / "d.npz")
    finally:
        os.umask(old_umask)
    assert permissions(tmp_path / "d.npz") == 0o644 and leftovers(tmp_path) == []
    assert offline.load(tmp_path / "d.npz") == ds
