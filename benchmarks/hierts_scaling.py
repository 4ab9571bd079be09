"""HierTS cost per decision: independent of the number of tasks, and batched throughput.

    python -m benchmarks.hierts_scaling [--rounds 2000] [--device cpu|cuda] [--batch 10000]

1. Sequential schedule, d=2, one replicate: seconds per decision (act + update, agent only) at
   m=10 and m=10,000 tasks. The hyper-posterior is a running sum of per-task contributions, so the
   ratio should be ~1 (issue target: <= 2).
2. K-armed HierGaussianMAB-v0 (diagonal fast path) with ``--batch`` replicates in lockstep:
   decisions per second of the agent (act + update), on the CPU and, when available, on CUDA.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from hbgym.agents import HierTS

import hbgym  # noqa: F401


def seconds_per_decision(num_tasks: int, rounds: int) -> float:
    env = gym.make("HierGaussian-v0", num_tasks=num_tasks, horizon=2, schedule="sequential")
    agent = HierTS.from_env(env, seed=0)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    tasks = rng.integers(num_tasks, size=rounds)
    rewards = rng.normal(size=rounds)
    start = time.perf_counter()
    for t in range(rounds):  # drive the agent with synthetic tasks/rewards: agent time only
        obs = {"task": tasks[t : t + 1], "features": obs["features"]}
        action = agent.act(obs)
        agent.update(obs, action, rewards[t : t + 1])
    return (time.perf_counter() - start) / rounds


def batched_decisions_per_second(batch: int, rounds: int, device: str) -> float:
    vec = gym.make_vec("HierGaussianMAB-v0", num_envs=batch)
    agent = HierTS.from_env(vec, device=device, seed=0)
    obs, _ = vec.reset(seed=0)
    rng = np.random.default_rng(0)
    L = vec.unwrapped.model.tasks_per_round
    rewards = rng.normal(size=(rounds, batch, L))
    tensors = {k: torch.as_tensor(v, device=agent.device) for k, v in obs.items()}
    tensors["features"] = tensors["features"].to(agent.dtype)
    for t in range(5):  # warm-up
        agent._update(tensors, agent._act(tensors), torch.as_tensor(rewards[t], device=agent.device))
    if agent.device.type == "cuda":
        torch.cuda.synchronize()
    reward_t = torch.as_tensor(rewards, device=agent.device, dtype=agent.dtype)
    start = time.perf_counter()
    for t in range(rounds):
        action = agent._act(tensors)
        agent._update(tensors, action, reward_t[t])
    if agent.device.type == "cuda":
        torch.cuda.synchronize()
    return rounds * batch * L / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--batched-rounds", type=int, default=50)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    small, large = seconds_per_decision(10, args.rounds), seconds_per_decision(10_000, args.rounds)
    print(
        f"HierTS sequential, d=2: {small * 1e6:.0f} us/decision at m=10, {large * 1e6:.0f} us at "
        f"m=10,000 (ratio {large / small:.2f})"
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        rate = batched_decisions_per_second(args.batch, args.batched_rounds, device)
        print(
            f"HierTS on HierGaussianMAB-v0, B={args.batch:,} replicates on {device}: {rate:,.0f} decisions/s"
        )
    if not torch.cuda.is_available():
        print("CUDA: not available on this machine")


if __name__ == "__main__":
    main()
