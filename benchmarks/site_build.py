"""Wall time of building the static leaderboard site for a standard-suite-sized board (synthetic rows).

    python -m benchmarks.site_build [--agents 20]

Synthetic rows (no agent runs): the standard suite's settings and seeds, ``--agents`` agents (Uniform,
OracleTS and others with random regret levels), 24 log points. Prints the time of
:func:`hbgym.leaderboards.site.write_site` and a machine line; writes nothing under benchmarks/results.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
from hbgym.leaderboards.bundle import Collection
from hbgym.leaderboards.site import write_site
from hbgym.leaderboards.suites import SUITES


def synthetic_records(num_agents: int, seed: int = 0) -> list[dict]:
    suite = SUITES["standard"]
    rng = np.random.default_rng(seed)
    agents = ["Uniform", "OracleTS"] + [f"agent{i:02d}" for i in range(num_agents - 2)]
    steps = list(range(1, 25))
    records = []
    for a in agents:
        role = {"Uniform": "uniform", "OracleTS": "oracle"}.get(a, "agent")
        for s in suite.settings:
            level = 100.0 if a == "Uniform" else 10.0 if a == "OracleTS" else rng.uniform(10, 100)
            rows = []
            for seed_ in suite.seeds:
                f = level * rng.uniform(0.8, 1.2)
                rows.append({"agent": a, "setting": s.key, "seed": seed_, "status": "ok", "final_regret": f,
                             "steps": steps, "cum_regret": [f * t / 24 for t in steps],
                             "oracle": a == "OracleTS"})
            records.append({"cell": {"id": f"{a}__{s.key}", "role": role, "agent_name": a}, "rows": rows})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    args = parser.parse_args()
    if args.agents < 2:
        raise SystemExit(f"--agents must be >= 2 (Uniform and OracleTS), got {args.agents}")
    suite = SUITES["standard"]
    records = synthetic_records(args.agents)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_site(Collection(suite, records, {}), tmp)
        wall = time.perf_counter() - start
    print(f"write_site: {args.agents} agents x {len(suite.settings)} settings x {suite.num_seeds} seeds: "
          f"{wall:.1f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, python {platform.python_version()}")


if __name__ == "__main__":
    main()
