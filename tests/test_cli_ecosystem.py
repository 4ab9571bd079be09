"""Command-line hygiene: closed pipes, rejected specs and missing data end in one line, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

from hbgym.leaderboards import cli, runner  # noqa: E402

from hbgym.datasets.store import DataNotFoundError  # noqa: E402


def test_list_into_a_closed_pipe_ends_quietly(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-m", "hbgym.leaderboards", "list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    child.stdout.close()  # the reader (e.g. `head`) is gone before the first write
    err = child.stderr.read().decode()
    child.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert child.returncode == 141


def test_invalid_agent_spec_creates_no_results_directory(tmp_path, capsys):
    out = tmp_path / "results"
    code = cli.main(["run", "--agent", "no_such_module_xyz:make", "--suite", "quick", "--out", str(out),
                     "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "no_such_module_xyz" in err
    assert not out.exists()


def test_missing_dataset_during_planning_is_one_line(tmp_path, capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise DataNotFoundError("dataset='auto' found no MovieLens data.\n\n1. set HBGYM_DATA_DIR\n2. fetch")

    monkeypatch.setattr(runner, "plan", no_data)
    out = tmp_path / "results"
    code = cli.main(["run", "--agent", "HierTS", "--suite", "quick", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err == "error: dataset='auto' found no MovieLens data. (--verbose lists every way to provide it)\n"
    args = ["run", "--agent", "HierTS", "--suite", "quick", "--out", str(out), "--quiet", "--verbose"]
    assert cli.main(args) == 2
    assert "1. set HBGYM_DATA_DIR 2. fetch" in capsys.readouterr().err
