"""Wall time of `submit` (sandboxed) vs `run` (trusted) for one third-party agent, same suite and jobs.

    python -m benchmarks.submit_overhead --suite quick --jobs 2 --repeats 1

Each command runs as its own process into a fresh temporary ``--out`` (references included in both,
``--no-compare`` in both), alternating run / submit per repeat; writes ``results/submit_overhead.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, markdown_table

AGENT = str(Path(__file__).resolve().parent.parent / "examples" / "my_agent.py") + ":make_agent"


def _time(command: str, suite: str, jobs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="hbgym-bench-") as tmp:
        os.chmod(tmp, 0o755)
        cmd = [sys.executable, "-m", "hbgym.leaderboards", command, "--agent", AGENT, "--suite", suite,
               "--jobs", str(jobs), "--out", str(Path(tmp) / "out"), "--quiet", "--no-compare"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"run": [], "submit": []}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for command in ("run", "submit"):
            times[command].append(_time(command, args.suite, args.jobs))
    best = {k: min(v) for k, v in times.items()}
    rows = [[k, args.jobs, " / ".join(f"{t:.1f}" for t in v), f"{best[k]:.1f}"] for k, v in times.items()]
    text = "\n".join([
        f"# `submit` (sandboxed) vs `run` (trusted): {AGENT.rsplit('/', 1)[-1]} on suite `{args.suite}`",
        "",
        f"Command: `python -m benchmarks.submit_overhead --suite {args.suite} --jobs {args.jobs} "
        f"--repeats {args.repeats}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other sessions, load average "
        f"{load:.1f} at the start; Python {platform.python_version()}.",
        "",
        markdown_table(["command", "--jobs", "wall s (each repeat)", "best s"], rows),
        "",
        f"Ratio submit / run (best of each): **{best['submit'] / best['run']:.2f}x** (target <= 1.3x).",
        "",
    ])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "submit_overhead.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
