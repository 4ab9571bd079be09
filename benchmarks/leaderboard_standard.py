"""The standard leaderboard of the zoo, its wall time with 2 jobs, and the speed-up of ``--jobs 2``.

    python -m benchmarks.leaderboard_standard [--skip-speedup] [--skip-standard]

1. Speed-up: a subset of the standard suite (HierGaussian x 2, MixedEffect, PartialContext x 2; the
   Agent zoo I agents HierTS, OracleTS, FlatTS, HierUCB, LinTS, LinUCB, meTS) run with ``--jobs 1``
   and ``--jobs 2`` into fresh directories; the rows must agree.
2. The full standard suite for every zoo agent (``--agent all``) with ``--jobs 2``; raw rows stay in
   ``results/leaderboard_standard`` (not committed); ``LEADERBOARD.md`` and the PNGs go to
   ``benchmarks/results/leaderboard_standard/``.

Writes ``benchmarks/results/leaderboard_speedup.md`` (``leaderboard_speedup.partial.md`` when a part
is skipped) with the command and a machine line. Timings depend on the load of the machine: the
load average at the start is recorded with them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from hbgym.leaderboards.report import build_report, console_table
from hbgym.leaderboards.runner import execute, plan
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import SUITES, Suite, expand_agents

from benchmarks.common import RESULTS, command_line, is_full_run, markdown_table, provenance, results_path

ZOO_I = ("HierTS", "OracleTS", "FlatTS", "HierUCB", "LinTS", "LinUCB", "meTS")
RAW = Path("results") / "leaderboard_standard"
OUT = RESULTS / "leaderboard_standard"


def timed_run(suite: Suite, agents: tuple[str, ...], out: Path, jobs: int) -> tuple[float, int]:
    """Wall seconds (planning included) and number of cells of one ``run``."""
    start = time.perf_counter()
    cells, _ = plan(suite, agents)
    store = ResultStore(out)
    store.open(suite)
    execute(cells, store, jobs=jobs, progress=True)
    return time.perf_counter() - start, len(cells)


def speedup() -> list[list[object]]:
    std = SUITES["standard"]
    keep = [s for s in std.settings if s.env_id in ("HierGaussian-v0", "MixedEffect-v0", "PartialContext-v0")]
    subset = dataclasses.replace(std, name="standard-subset", settings=tuple(keep))
    rows, finals = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            seconds, cells = timed_run(subset, ZOO_I, Path(tmp) / f"j{jobs}", jobs)
            store = ResultStore(Path(tmp) / f"j{jobs}")
            finals[jobs] = {(r["agent"], r["setting"], r["seed"]): r["final_regret"] for r in store.rows()}
            rows.append([jobs, cells, f"{seconds:.1f}"])
    assert finals[1] == finals[2], "--jobs 1 and --jobs 2 disagree"
    rows[1].append(f"{float(rows[0][2]) / float(rows[1][2]):.2f}x")
    rows[0].append("1.00x")
    return rows


def standard() -> tuple[float, int, str]:
    suite = SUITES["standard"]
    if RAW.exists():
        shutil.rmtree(RAW)
    seconds, cells = timed_run(suite, expand_agents(suite.agents), RAW, jobs=2)
    if OUT.exists():
        shutil.rmtree(OUT)
    _, ranks = build_report(RAW, OUT, expected_hash=suite.hash)
    return seconds, cells, console_table(ranks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-speedup", action="store_true")
    parser.add_argument("--skip-standard", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} CPUs, load average {load:.1f} at start"
    text = [
        "# Leaderboard runner: standard suite wall time and `--jobs 2` speed-up",
        "",
        f"At the start: {machine}.",
    ]
    if not args.skip_speedup:
        rows = speedup()
        text += [
            "",
            "## Speed-up (subset of `standard`: HierGaussian x 2, MixedEffect, PartialContext x 2; "
            f"agents {', '.join(ZOO_I)} + references; 50 seeds)",
            "",
            markdown_table(["--jobs", "cells", "wall s", "speed-up"], rows),
            "",
            "Rows of both runs are identical (checked).",
        ]
    if not args.skip_standard:
        seconds, cells, table = standard()
        text += [
            "",
            f"## Full `standard` suite, every zoo agent, `--jobs 2`: {seconds / 60:.1f} min ({cells} cells)",
            "",
            "Command: `python -m hbgym.leaderboards run --suite standard --jobs 2 "
            "--out results/leaderboard_standard` (same code path). Leaderboard: "
            "[leaderboard_standard/LEADERBOARD.md](leaderboard_standard/LEADERBOARD.md).",
            "",
            "```",
            table,
            "```",
        ]
    text += ["", provenance(command_line("benchmarks.leaderboard_standard", argv))]
    out = "\n".join(text) + "\n"
    RESULTS.mkdir(exist_ok=True)
    # a run that skips a part writes its own file: it never overwrites (or merges into) the full one
    full = is_full_run(parser, args, ("skip_speedup", "skip_standard"))
    results_path("leaderboard_speedup.md", full).write_text(out)
    print(out)


if __name__ == "__main__":
    main()
