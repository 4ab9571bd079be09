"""Results-store scaling: add, verify and report 10^3, 10^4 and 10^5 cells (must be linear in cells).

    python -m benchmarks.store_scaling [--sizes 1000 10000 100000]

Synthetic cells of a 10-setting suite (10 agents including the Uniform and OracleTS references, one
seed per cell, 24 log points per row, about 1.4 kB per cell file) go through the real store:
``add`` (open + one ``ResultStore.add`` per cell + close), ``verify`` (one pass: index line checksums,
every file's sha256, every row's suite hash, unlisted files) and ``report`` (``build_report`` without
plots: verify, read every record, score, write LEADERBOARD.md). Times are wall seconds in one run on
this machine, with microseconds per cell so that linearity can be read off directly.

Writes ``benchmarks/results/store_scaling.md`` for the default sizes, or ``store_scaling_partial.md``
for any other list of sizes (a partial run never overwrites the full table).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hbgym.leaderboards.report import build_report
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import EVAL_SEED_BASE, Setting, Suite

from benchmarks.common import RESULTS, markdown_table

SIZES = (1_000, 10_000, 100_000)
SETTINGS = 10
AGENTS = ("Uniform", "OracleTS", *(f"Agent{k}" for k in range(8)))


def make_suite(num_cells: int) -> Suite:
    """A suite whose plan for :data:`AGENTS` has ``num_cells`` cells of one seed each."""
    seeds = num_cells // (SETTINGS * len(AGENTS))
    if seeds * SETTINGS * len(AGENTS) != num_cells:
        raise ValueError(f"num_cells must be a multiple of {SETTINGS * len(AGENTS)}, got {num_cells}")
    settings = tuple(Setting("HierGaussian-v0", {"num_tasks": 5, "num_actions": 2 + j}, 20, ("HG",))
                     for j in range(SETTINGS))
    return Suite("storebench", 1, "online", settings, num_seeds=seeds, chunk=1, log_points=24)


def records(suite: Suite):
    """One synthetic record per (agent, setting, seed): the rows ``run_cell`` writes, with made-up regret."""
    rng = np.random.default_rng(0)
    steps = list(range(1, 25))
    for agent in AGENTS:
        scale = {"Uniform": 10.0, "OracleTS": 1.0}.get(agent, 2.0 + AGENTS.index(agent) / 4)
        for setting in suite.settings:
            for seed in range(EVAL_SEED_BASE, EVAL_SEED_BASE + suite.num_seeds):
                curve = np.cumsum(rng.exponential(scale, 24)).tolist()
                row = {"agent": agent, "agent_spec": agent, "role": "agent", "oracle": agent == "OracleTS",
                       "suite": suite.name, "suite_hash": suite.hash, "env_id": setting.env_id,
                       "setting": setting.key, "config_hash": setting.config_hash, "tags": list(setting.tags),
                       "device": "cpu", "dtype": "float64", "seed": seed, "steps": steps,
                       "cum_regret": curve, "final_regret": curve[-1], "seconds": 0.01, "status": "ok",
                       "reason": None, "cell_wall_time": 0.01, "host": "bench", "pid": 1}
                cell_id = f"{agent}__{setting.key}__s{seed}"
                yield {"cell": {"id": cell_id, "agent_name": agent}, "status": "ok", "reason": None,
                       "rows": [row], "wall_time": 0.01, "host": "bench", "pid": 1}


def measure(num_cells: int, tmp: Path) -> list[float]:
    """Seconds to add, verify and report ``num_cells`` cells in a fresh directory under ``tmp``."""
    suite = make_suite(num_cells)
    todo = list(records(suite))
    root = tmp / f"n{num_cells}"
    start = time.perf_counter()
    store = ResultStore(root)
    store.open(suite)
    for record in todo:
        store.add(record)
    store.close()
    add = time.perf_counter() - start
    start = time.perf_counter()
    ResultStore(root).verify(suite.hash)
    verify = time.perf_counter() - start
    start = time.perf_counter()
    build_report(root, tmp / f"report{num_cells}", expected_hash=suite.hash, plots=False)
    report = time.perf_counter() - start
    shutil.rmtree(root)
    return [add, verify, report]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of cells")
    args = parser.parse_args(argv)
    full = tuple(args.sizes) == SIZES
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"load average {os.getloadavg()[0]:.1f} at start, Python {platform.python_version()}")
    table = []
    with tempfile.TemporaryDirectory(prefix="hbgym-store-") as tmp:
        for n in args.sizes:
            times = measure(n, Path(tmp))
            print(f"{n} cells: add {times[0]:.1f} s, verify {times[1]:.1f} s, report {times[2]:.1f} s",
                  file=sys.stderr, flush=True)
            table.append([f"{n:,}", *(f"{t:.2f}" for t in times), *(f"{1e6 * t / n:.0f}" for t in times)])
    sizes = "" if full else " --sizes " + " ".join(map(str, args.sizes))
    command = f"python -m benchmarks.store_scaling{sizes}"
    text = "\n".join([
        "# Results store scaling",
        "",
        f"Command: `{command}`. Machine: {machine}.",
        "",
        "Wall seconds to add (append one checksummed index line + one cell file per cell), verify (one pass) "
        "and report (verify + read + score, no plots) a results directory of N cells, and microseconds "
        "per cell (flat = linear in N). Target: each <= 60 s at 10^5 cells.",
        "",
        markdown_table(["cells", "add s", "verify s", "report s", "add us/cell", "verify us/cell",
                        "report us/cell"], table),
    ])
    out = RESULTS / ("store_scaling.md" if full else "store_scaling_partial.md")
    out.write_text(text + "\n")
    print(text)
    print(f"\nwritten to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
