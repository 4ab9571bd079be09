"""Provenance helpers of the benchmark scripts (partial runs never overwrite full results files); the
recorder of benchmarks/agent_floor.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import command_line, is_full_run, machine_line, provenance, results_path, source_hash


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", nargs="+", default=["A", "B"])
    parser.add_argument("--jobs", type=int, default=2)
    return parser


def test_a_subset_of_the_arguments_writes_a_separate_file(tmp_path: Path):
    parser = _parser()
    assert is_full_run(parser, parser.parse_args(["--jobs", "1"]), ("agents",))  # jobs: not a subset
    assert not is_full_run(parser, parser.parse_args(["--agents", "A"]), ("agents",))
    assert results_path("x.md", True, tmp_path) == tmp_path / "x.md"
    assert results_path("x.md", False, tmp_path) == tmp_path / "x.partial.md"


def test_provenance_names_the_command_and_the_machine():
    text = provenance(command_line("benchmarks.x", ["--agents", "A B"]))
    assert text.startswith("Command: `python -m benchmarks.x --agents 'A B'`")
    assert "Machine: " in text and "CPUs" in machine_line() and "commit " in machine_line()


def test_source_hash_changes_with_the_code(tmp_path: Path, monkeypatch):
    import benchmarks.common as common

    monkeypatch.setattr(common, "REPO", tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    before = source_hash([tmp_path / "pkg"])
    assert source_hash([tmp_path / "pkg"]) == before
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert source_hash([tmp_path / "pkg"]) != before


def test_agent_floor_records_and_replays_the_torch_calls_of_a_round():
    """The recording snippet of benchmarks/agent_floor.py runs and counts calls (a few rounds)."""
    from benchmarks.agent_floor import RECORD
    from benchmarks.baseline import run_python

    calls, views, alone, top = run_python(
        None, RECORD.format(agent="LinTS", env="MixedEffect-v0", size=1, rounds=3)
    )
    assert 20 < calls < 1000 and 0 < views < calls
    assert alone > 0
    assert any(name == "bmm" for name, _ in top)
