"""Env decisions per second: 100 single envs stepped in a Python loop vs one native vector env.

    python -m benchmarks.env_throughput [--env HierGaussian-v0] [--num-envs 100] [--rounds 400]

Both sides play the same uniformly random actions on the same seeds (slot i of the vector env is
the single env with seed i), so they do identical work; the figure is the ratio of decisions
(slots acted on) per second. Issue target: >= 20x at B=100 on HierGaussian-v0 defaults.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import hbgym  # noqa: F401


def decisions_per_second(env_id: str, num_envs: int, rounds: int, vector: bool) -> float:
    rng = np.random.default_rng(0)
    if vector:
        vec = gym.make_vec(env_id, num_envs=num_envs)
        vec.reset(seed=0)
        model = vec.unwrapped.model
        rounds = min(rounds, model.num_rounds)
        actions = rng.integers(model.num_actions, size=(rounds, num_envs, model.tasks_per_round))
        start = time.perf_counter()
        for t in range(rounds):
            vec.step(actions[t])
    else:
        envs = [gym.make(env_id) for _ in range(num_envs)]
        for i, env in enumerate(envs):
            env.reset(seed=i)
        model = envs[0].unwrapped.model
        rounds = min(rounds, model.num_rounds)
        actions = rng.integers(model.num_actions, size=(rounds, num_envs, model.tasks_per_round))
        start = time.perf_counter()
        for t in range(rounds):
            for i, env in enumerate(envs):
                env.step(actions[t, i])
    seconds = time.perf_counter() - start
    return rounds * num_envs * model.tasks_per_round / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HierGaussian-v0")
    parser.add_argument("--num-envs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args(argv)
    single = decisions_per_second(args.env, args.num_envs, args.rounds, vector=False)
    vector = decisions_per_second(args.env, args.num_envs, args.rounds, vector=True)
    print(f"{args.env}, B={args.num_envs}")
    print(f"  {args.num_envs} single envs in a loop: {single:12,.0f} decisions/s")
    print(f"  native vector env:          {vector:12,.0f} decisions/s")
    print(f"  ratio: {vector / single:.1f}x")


if __name__ == "__main__":
    main()
