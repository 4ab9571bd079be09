"""Smoke demo: a uniformly random policy through every registered env, printing its regret.

    python -m hbgym.demo [--seeds N]

Uses the native vector env of each id (one episode per seed, all seeds in lockstep).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import hbgym


def run(env_id: str, seeds: int) -> tuple[float, float, int, float]:
    """Mean and standard error of the final cumulative regret of uniform play, rounds, seconds."""
    start = time.perf_counter()
    vec = gym.make_vec(env_id, num_envs=seeds)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    model = vec.unwrapped.model
    regret = np.zeros(seeds)
    for _ in range(model.num_rounds):
        _, _, _, _, info = vec.step(vec.action_space.sample())
        regret += info["regret"].sum(axis=1)
    vec.close()
    return regret.mean(), regret.std(ddof=1) / np.sqrt(seeds), model.num_rounds, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="episodes per env (default 8)")
    args = parser.parse_args(argv)
    print(f"{'env':28s} {'rounds':>7s} {'uniform regret':>22s} {'seconds':>8s}")
    for env_id in hbgym.ENV_IDS:
        mean, sem, rounds, seconds = run(env_id, args.seeds)
        print(f"{env_id:28s} {rounds:7d} {mean:12.1f} +- {sem:7.1f} {seconds:8.2f}")


if __name__ == "__main__":
    main()
