"""Figure 2 of Mukherjee et al. (CoCo bandits): NPM-TS, GIDS, MTTS, Ind-TS and OraclePrior-TS on
the four PartialContext-v0 scenarios (mixture, partial_linear, lmm, lmm_mixture), paper schedules.

Top row: multi-task regret (eq. 3) = cumulative regret minus that of OraclePrior-TS on the same
seeds (common random numbers: same instances, contexts and reward noise). Bottom row: cumulative
Bayes regret (the env's pseudo-regret ``info["regret"]``; the paper's bottom row instead evaluates
a held-out batch, see the report). 10 seeds, mean +- sd / sqrt(10).

    python -m benchmarks.coco_reproduction --jobs 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np

import hbgym  # noqa: F401
from benchmarks.common import (
    REPO,
    command_line,
    is_full_run,
    markdown_table,
    results_path,
    source_hash,
    write_report,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCENARIOS = ["mixture", "partial_linear", "lmm", "lmm_mixture"]
AGENT_NAMES = ["NPM-TS", "GIDS", "MTTS", "Ind-TS", "OraclePrior-TS"]
COCO = {"NPM-TS", "GIDS"}
#: env kwargs per scenario: Fig. 2(d) with one theta per user (the bimodal population the paper
#: describes; with one theta per episode MTTS learns it from a few users, see PartialContext's docs)
ENV_KWARGS = {"lmm_mixture": {"theta_per_user": True}}
#: hash of the sources a cell's result depends on (agents, envs, this script): part of the cache key
CODE_VERSION = source_hash([REPO / "agents", REPO / "hbgym", Path(__file__).resolve()])
TITLES = {"mixture": "(a) mixture of Gaussians", "partial_linear": "(b) partially observed context",
          "lmm": "(c) LMM, Gaussian latent", "lmm_mixture": "(d) LMM, non-Gaussian latent"}


def run_cell(scenario: str, agent: str, seeds: int, dtype: str, cache: Path) -> dict:
    """Per-round regret ``(seeds, rounds)`` of one agent on one scenario, ``seeds`` replicates batched."""
    import torch
    from hbgym.agents import AGENTS

    # keyed by the code that computes a cell too, so a rerun after a code change never reuses stale cells
    path = cache / f"{scenario}_{agent}_{seeds}_{dtype}_{CODE_VERSION}.npz"
    if path.exists():
        data = np.load(path)
        regret, seconds = data["regret"], float(data["seconds"])
        return {"scenario": scenario, "agent": agent, "regret": regret, "seconds": seconds}
    torch.set_num_threads(1)
    env_kwargs = ENV_KWARGS.get(scenario, {})
    vec = gym.make_vec("PartialContext-v0", num_envs=seeds, scenario=scenario, **env_kwargs)
    kwargs = {"dtype": dtype} if agent in COCO else {}
    policy = AGENTS[agent].from_env(vec, seed=0, **kwargs)
    obs, _ = vec.reset(seed=0)
    policy.reset(seed=0)
    rounds = vec.unwrapped.model.num_rounds
    regret = np.zeros((seeds, rounds))
    start = time.perf_counter()
    for t in range(rounds):
        action = policy.act(obs)
        nxt, _, _, _, info = vec.step(action)
        policy.update(obs, action, info["rewards"])
        obs = nxt
        regret[:, t] = info["regret"].sum(-1)
    seconds = time.perf_counter() - start
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, regret=regret, seconds=seconds)
    return {"scenario": scenario, "agent": agent, "regret": regret, "seconds": seconds}


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(x.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dtype", default="float32", help="dtype of the CoCo agents (baselines: float64)")
    parser.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    parser.add_argument("--agents", nargs="+", default=AGENT_NAMES)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/coco_fig2_cache"))
    args = parser.parse_args()
    if "OraclePrior-TS" not in args.agents:
        raise ValueError("--agents must include OraclePrior-TS (the multi-task regret is relative to it)")
    from joblib import Parallel, delayed

    cells = [(s, a) for s in args.scenarios for a in args.agents]
    # longest cells first so the two workers finish together
    cells.sort(key=lambda c: (c[1] not in COCO, c[1] != "GIDS"))
    start = time.perf_counter()
    out = Parallel(n_jobs=args.jobs, verbose=5)(
        delayed(run_cell)(s, a, args.seeds, args.dtype, args.cache) for s, a in cells)
    wall = time.perf_counter() - start
    res = {(r["scenario"], r["agent"]): r for r in out}

    fig, axes = plt.subplots(2, len(args.scenarios), figsize=(4.2 * len(args.scenarios), 7), squeeze=False)
    rows, dump = [], {}
    for j, scen in enumerate(args.scenarios):
        oracle = np.cumsum(res[(scen, "OraclePrior-TS")]["regret"], axis=1)
        for agent in args.agents:
            r = res[(scen, agent)]
            cum = np.cumsum(r["regret"], axis=1)
            mtr = cum - oracle
            x = np.arange(1, cum.shape[1] + 1)
            for i, curve in enumerate((mtr, cum)):
                m, se = mean_se(curve)
                axes[i, j].plot(x, m, label=agent)
                axes[i, j].fill_between(x, m - se, m + se, alpha=0.2)
            m_mtr, se_mtr = mean_se(mtr[:, -1:])
            m_br, se_br = mean_se(cum[:, -1:])
            rows.append([scen, agent, f"{m_mtr[0]:.1f} ± {se_mtr[0]:.1f}", f"{m_br[0]:.1f} ± {se_br[0]:.1f}",
                         f"{r['seconds']:.0f}"])
            dump[f"{scen}/{agent}"] = {"cumulative_regret_mean": mean_se(cum)[0].tolist(),
                                       "multitask_regret_mean": mean_se(mtr)[0].tolist(),
                                       "seconds": r["seconds"]}
        axes[0, j].set_title(TITLES.get(scen, scen))
        axes[1, j].set_xlabel("interaction round")
    axes[0, 0].set_ylabel("multi-task regret (vs OraclePrior-TS)")
    axes[1, 0].set_ylabel("cumulative Bayes regret")
    axes[0, 0].legend(fontsize=8)
    text = "\n".join([
        "# CoCo bandits, Figure 2 (Mukherjee et al.)",
        "",
        f"PartialContext-v0, paper schedules, {args.seeds} seeds (replicates batched in one process,",
        f"env seeds 0..{args.seeds - 1}, all agents on the same seeds), mean ± sd/sqrt({args.seeds}) at",
        "the last round. Multi-task regret = cumulative regret minus OraclePrior-TS's on the same seeds",
        "(paired by common random numbers); Bayes regret = cumulative pseudo-regret from",
        "`info[\"regret\"]`, summed over the acting users (the paper's bottom row evaluates a held-out",
        "batch instead). lmm_mixture is run with `theta_per_user=True` (one theta per user drawn from",
        "the bimodal mixture).",
        "CoCo agents: N = 200, M = 80, 20^3 x 10 grid, lengthscale 0.7, eta = 0.05, tau = 0.5,",
        f"dtype {args.dtype}.",
        f"Wall {wall / 60:.1f} min (`s` = seconds of the cell, all seeds batched; cells cached under",
        f"`--cache` with code version {CODE_VERSION} are reused).",
        "",
        markdown_table(["scenario", "agent", "multi-task regret", "Bayes regret", "s"], rows),
    ])
    full = is_full_run(parser, args, ("seeds", "dtype", "scenarios", "agents"))
    results_path("coco_fig2.json", full).write_text(json.dumps(dump))
    write_report("coco_fig2", fig, text, command_line("benchmarks.coco_reproduction"), full)


if __name__ == "__main__":
    main()
