"""RL baselines vs Bayesian agents on HierGaussianMAB-v0 (one task per round, m=5, n=20, K=10).

Evaluates Uniform, HierTS, OracleTS and the four committed SB3 models (PPO, A2C, DQN, RecurrentPPO,
trained by ``python -m hbgym.leaderboards.rl --algo all`` on seeds >= 10**6) on the same evaluation seeds
``0 .. seeds-1`` (paired: every agent sees the same instances and reward noise per seed). Writes
``benchmarks/results/rl_baselines.md`` (final cumulative regret, mean +- standard error, and the
paired difference to HierTS) and ``rl_baselines.png`` (regret curves).

Run: ``python -m benchmarks.rl_baselines [--seeds 100] [--models DIR]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from hbgym.leaderboards.rl import ALGOS, BASELINE_DIR, BASELINE_ENV_ID, BASELINE_ENV_KWARGS, load_sb3_agent

from benchmarks.common import Run, command_line, is_full_run, markdown_table, plot_curves, write_report
from hbgym.wrappers import SufficientStats

REFERENCE_AGENTS = ("Uniform", "HierTS", "OracleTS")


def play(vec: Any, policy: Any, name: str, seed: int) -> Run:
    """One paired episode per slot of ``vec`` with ``policy`` (Agent protocol); regret curves."""
    start = time.perf_counter()
    obs, _ = vec.reset(seed=seed)
    policy.reset(seed=seed)
    steps = []
    for _ in range(vec.unwrapped.model.num_rounds):
        action = policy.act(obs)
        after, _, _, _, info = vec.step(action)
        policy.update(obs, action, info["rewards"])
        steps.append(info["regret"].sum(axis=1))
        obs = after
    return Run(name, np.cumsum(np.stack(steps, axis=1), axis=1), time.perf_counter() - start)


def evaluate(seeds: int, models: Path) -> list[Run]:
    import torch
    from hbgym.agents import AGENTS

    torch.set_num_threads(1)
    vec = gym.make_vec(BASELINE_ENV_ID, num_envs=seeds, **BASELINE_ENV_KWARGS)
    runs = [play(vec, AGENTS[name].from_env(vec, seed=0), name, 0) for name in REFERENCE_AGENTS]
    runs.append(play(vec, PooledGreedy(vec), PooledGreedy.name, 0))
    for algo in ALGOS:
        path = models / f"{algo.lower()}.zip"
        for deterministic, name in ((True, algo), (False, f"{algo} (sampled)")):
            agent = load_sb3_agent(algo, path, vec, num_envs=seeds, deterministic=deterministic)
            runs.append(play(vec, agent, name, 0))
    return runs


class PooledGreedy:
    """Hand-written policy on the same statistics as the RL models: play each arm once, then the arm
    with the best mean reward pooled over all tasks (ignores task identity). A yardstick for what a
    memoryless policy on :class:`SufficientStats` vectors can reach; K-armed settings only."""

    name = "Greedy on pooled stats"

    def __init__(self, vec: Any) -> None:
        self.stats = SufficientStats(vec.unwrapped.model, vec.unwrapped.single_observation_space)
        self.num_envs, self.k = vec.num_envs, vec.unwrapped.model.num_actions

    def reset(self, seed: int | None = None) -> None:
        self.stats.reset(self.num_envs)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        vector = self.stats.observe(obs)  # [own counts, own means, pooled counts, pooled means, t]
        counts, means = vector[:, 2 * self.k:3 * self.k], vector[:, 3 * self.k:4 * self.k]
        return np.where(counts > 0, means, np.inf).argmax(axis=1)[:, None]

    def update(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: np.ndarray) -> None:
        self.stats.update(obs, action, reward)


def report(runs: list[Run], seeds: int, models: Path, command: str, full: bool = True) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {run.agent: run for run in runs}
    ref, uniform = by_name["HierTS"], by_name["Uniform"]
    rows = []
    for run in sorted(runs, key=lambda r: r.final.mean()):
        se = run.final.std(ddof=1) / np.sqrt(seeds)
        diff, gain = run.final - ref.final, uniform.final - run.final
        trained = ""
        sidecar = models / f"{run.agent.split()[0].lower()}.json"
        if run.agent.split()[0] in ALGOS and sidecar.is_file():
            info = json.loads(sidecar.read_text())
            trained = f"{info['total_timesteps']:,} steps, {info['train_seconds']:.0f} s"
        rows.append([run.agent, f"{run.final.mean():.2f} ± {se:.2f}",
                     f"{diff.mean():+.2f} ± {diff.std(ddof=1) / np.sqrt(seeds):.2f}",
                     f"{np.mean(run.final < ref.final):.2f}",
                     f"{gain.mean():.2f} ± {gain.std(ddof=1) / np.sqrt(seeds):.2f}", trained])
    table = markdown_table(
        ["agent", "final regret (mean ± s.e.)", "minus HierTS (paired)", "P(beats HierTS)",
         "Uniform minus agent (paired)", "training"], rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    shown = [run for run in runs if "(sampled)" not in run.agent or run.agent.startswith("PPO")]
    plot_curves(ax, shown, f"{BASELINE_ENV_ID} {json.dumps(BASELINE_ENV_KWARGS)}")
    text = (
        "# RL baselines vs Bayesian agents\n\n"
        f"{BASELINE_ENV_ID} with "
        f"`{json.dumps(BASELINE_ENV_KWARGS)}` (K=10 arms, 100 rounds), evaluation seeds 0..{seeds - 1} "
        "(paired; training used seeds >= 10**6). SB3 models see SufficientStatsObservation vectors and "
        "act on the policy's mode (`PPO`) or sample from it (`PPO (sampled)`); models from "
        "`python -m hbgym.leaderboards.rl --algo all`. `Greedy on pooled stats` is a hand-written policy on "
        "the same vectors (each arm once, then the best pooled mean).\n\n"
        f"{table}"
    )
    write_report("rl_baselines", fig, text, command, full)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rl_baselines",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="evaluation seeds 0..N-1 (default 100)")
    parser.add_argument("--models", type=Path, default=BASELINE_DIR, help="directory of <algo>.zip models")
    args = parser.parse_args(argv)
    report(evaluate(args.seeds, args.models), args.seeds, args.models,
           command_line("benchmarks.rl_baselines", argv), is_full_run(parser, args, ("seeds", "models")))


if __name__ == "__main__":
    main()
