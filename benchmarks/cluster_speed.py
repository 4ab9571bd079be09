"""Wall time of the quick suite on ``--backend ray`` (a fresh local Ray cluster) vs ``--jobs 2`` local.

    python -m benchmarks.cluster_speed [--jobs 2] [--suite quick]

Both runs go through ``execute`` into fresh directories with the same plan (every zoo agent of the
suite plus its references); the Ray time includes starting and stopping the local cluster. The rows
of the two runs must be equal apart from host, pid and timings (checked before anything is written).
Timings depend on the load of the machine; the load average at the start is recorded with them.
Writes ``benchmarks/results/cluster_speed.md`` (``cluster_speed_partial.md`` for non-default options).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from hbgym.leaderboards.runner import execute, plan
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import expand_agents, get_suite

from benchmarks.common import RESULTS, markdown_table

VOLATILE = {"cell_wall_time", "seconds", "host", "pid"}


def timed(suite, cells, out: Path, backend: str, jobs: int) -> tuple[float, list[str]]:
    """Wall seconds of one run and its rows without the volatile fields."""
    store = ResultStore(out)
    store.open(suite)
    start = time.perf_counter()
    execute(cells, store, jobs=jobs, backend=backend, progress=False)
    seconds = time.perf_counter() - start
    rows = sorted(json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
                  for r in store.rows())
    return seconds, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--suite", default="quick")
    args = parser.parse_args(argv)
    default = args.jobs == 2 and args.suite == "quick"
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"load average {os.getloadavg()[0]:.1f} at start, Python {platform.python_version()}")
    suite = get_suite(args.suite)
    cells, _ = plan(suite, list(expand_agents(suite.agents)))
    table, rows = [], {}
    with tempfile.TemporaryDirectory(prefix="hbgym-cluster-") as tmp:
        for backend in ("local", "ray"):
            seconds, rows[backend] = timed(suite, cells, Path(tmp) / backend, backend, args.jobs)
            print(f"{backend}: {seconds:.1f} s", file=sys.stderr, flush=True)
            table.append([f"`--backend {backend} --jobs {args.jobs}`", f"{seconds:.1f}"])
    if rows["local"] != rows["ray"]:
        raise SystemExit("rows differ between the local and the Ray run; nothing written")
    ratio = float(table[1][1]) / float(table[0][1])
    options = "" if default else f" --jobs {args.jobs} --suite {args.suite}"
    text = "\n".join([
        f"# Suite `{suite.name}`: Ray vs local",
        "",
        f"Command: `python -m benchmarks.cluster_speed{options}`. Machine: {machine}.",
        "",
        f"{len(cells)} cells (every zoo agent of the suite plus the references); Ray starts its own local "
        "cluster (included in its time). Rows of both runs are equal apart from host, pid and timings.",
        "",
        markdown_table(["run", "wall s"], table),
        "",
        f"Ray / local wall-time ratio: {ratio:.2f}.",
    ])
    out = RESULTS / ("cluster_speed.md" if default else "cluster_speed_partial.md")
    out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
