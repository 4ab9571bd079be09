"""Speed of EbmTS (including its empirical-Bayes re-estimation) vs LinTS at the Fig. 1 setting.

    python -m benchmarks.ebm_speed [--seeds 50] [--repeats 3] [--threads 1]

MultiBandit-v0 defaults (M=10, K=5, d=5, T=2000 rounds), ``B = seeds`` replicates batched in one
process on CPU, float64. For each agent the script times ``act`` + ``update`` over whole episodes
(agent time; the env is timed separately), repeats the agents interleaved ``--repeats`` times and
reports the median. EbmTS's re-estimations (``refit``) are included in its agent time and also
reported on their own. A *decision* is one arm choice in one replicate, so a round is ``B``
decisions. Writes ``benchmarks/results/ebm_speed.md``. Target (issue 4): EbmTS <= 3x LinTS.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, command_line, markdown_table, provenance, timed_episode


def episode(agent_cls, seeds: int) -> dict[str, float]:
    """One full episode; returns agent seconds, refit seconds, env seconds, rounds, refits."""
    import gymnasium as gym

    import hbgym  # noqa: F401

    vec = gym.make_vec("MultiBandit-v0", num_envs=seeds)
    agent = agent_cls.from_env(vec, seed=0)
    refit_time = [0.0]
    if hasattr(agent, "refit"):
        original = agent.refit

        def timed_refit():
            start = time.perf_counter()
            out = original()
            refit_time[0] += time.perf_counter() - start
            return out

        agent.refit = timed_refit
    agent.reset(0)
    times = timed_episode(agent, vec, seed=0)
    return {"agent": times.act + times.update, "refit": refit_time[0], "env": times.env,
            "rounds": times.rounds, "refits": getattr(agent, "num_refits", 0)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import torch
    from hbgym.agents import DisjointLinTS, DisjointLinUCB, EbmTS, EbmUCB

    torch.set_num_threads(args.threads)
    agents = (DisjointLinTS, EbmTS, DisjointLinUCB, EbmUCB)
    runs: dict[str, list[dict[str, float]]] = {cls.name: [] for cls in agents}
    episode(EbmTS, args.seeds)  # warm-up (imports, allocator)
    for _ in range(args.repeats):
        for cls in agents:
            runs[cls.name].append(episode(cls, args.seeds))
    med = {name: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for name, rs in runs.items()}
    decisions = med["EbmTS"]["rounds"] * args.seeds
    lines = [
        "# EbmTS vs LinTS speed at the Fig. 1 setting (MultiBandit-v0 defaults)",
        "",
        provenance(command_line("benchmarks.ebm_speed", argv)),
        "",
        f"CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}, float64, "
        f"{args.threads} intra-op thread(s); B = {args.seeds} replicates batched; T = "
        f"{int(med['EbmTS']['rounds'])} rounds = {int(decisions)} decisions per episode; median of "
        f"{args.repeats} interleaved episodes. The machine is a shared 2-core box: absolute numbers "
        "move with its load, the ratios measured in one run are the figure to read.",
        "",
    ]
    base = med["DisjointLinTS"]["agent"]
    table = []
    for name, m in med.items():
        refit = f"{1000 * m['refit'] / m['rounds']:.3f} s ({int(m['refits'])} refits)" if m["refits"] else "-"
        table.append([name, f"{1000 * m['agent'] / decisions:.4f}", f"{1000 * m['agent'] / m['rounds']:.3f}",
                      refit, f"{m['agent'] / base:.2f}", f"{1000 * m['env'] / m['rounds']:.3f}"])
    header = ["agent", "agent s / 1,000 decisions", "agent s / 1,000 rounds", "of which re-estimation",
              "ratio to LinTS", "env s / 1,000 rounds"]
    lines += [markdown_table(header, table)]
    ratio = med["EbmTS"]["agent"] / base
    lines += ["", f"EbmTS / LinTS = {ratio:.2f} (target <= 3): {'met' if ratio <= 3 else 'NOT met'}.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ebm_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
