"""Shared helpers of the reproduction scripts: batched episodes, summaries, tables and plots."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import hbgym  # noqa: F401

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Run:
    """Cumulative regret curves ``(seeds, rounds)`` of one agent on one env setting."""

    agent: str
    curves: np.ndarray
    seconds: float

    @property
    def final(self) -> np.ndarray:
        return self.curves[:, -1]

    def mean_ci(self, z: float = 1.96) -> tuple[float, float]:
        """Mean final regret and the half-width of its normal ``z`` confidence interval."""
        return float(self.final.mean()), float(z * self.final.std(ddof=1) / np.sqrt(len(self.final)))


def run_agent(
    env_id: str, agent: str, seeds: int, seed: int = 0, agent_kwargs: dict | None = None, **env_kwargs: Any
) -> Run:
    """Run ``agent`` (a name in ``hbgym.agents.AGENTS``) on ``seeds`` episodes of a native vector env.

    Every agent run with the same ``seed`` sees the same instances and reward noise (paired).
    """
    import torch
    from hbgym.agents import AGENTS

    torch.set_num_threads(1)
    vec = gym.make_vec(env_id, num_envs=seeds, **env_kwargs)
    policy = AGENTS[agent].from_env(vec, seed=seed, **(agent_kwargs or {}))
    start = time.perf_counter()
    obs, _ = vec.reset(seed=seed)
    policy.reset(seed=seed)
    rounds = vec.unwrapped.model.num_rounds
    regret = np.zeros((seeds, rounds))
    for t in range(rounds):
        action = policy.act(obs)
        next_obs, _, _, _, info = vec.step(action)
        policy.update(obs, action, info["rewards"])
        obs = next_obs
        regret[:, t] = info["regret"].sum(axis=1)
    return Run(agent, np.cumsum(regret, axis=1), time.perf_counter() - start)


@dataclass
class EpisodeTimes:
    """Wall seconds of one lockstep episode, split by who spent them, and the mean final regret."""

    act: float
    update: float
    env: float
    rounds: int
    regret: float


def timed_episode(agent: Any, vec: Any, seed: int = 0) -> EpisodeTimes:
    """Play one episode of the vector env ``vec`` (reset with ``seed``) with ``agent``, timing
    ``agent.act``, ``vec.step`` and ``agent.update`` separately."""
    obs, _ = vec.reset(seed=seed)
    act_s = update_s = env_s = 0.0
    regret = np.zeros(vec.num_envs)
    rounds = vec.unwrapped.model.num_rounds
    for _ in range(rounds):
        t0 = time.perf_counter()
        action = agent.act(obs)
        t1 = time.perf_counter()
        next_obs, _, _, _, info = vec.step(action)
        t2 = time.perf_counter()
        agent.update(obs, action, info["rewards"])
        act_s += t1 - t0
        env_s += t2 - t1
        update_s += time.perf_counter() - t2
        regret += info["regret"].sum(-1)
        obs = next_obs
    return EpisodeTimes(act_s, update_s, env_s, rounds, float(regret.mean()))


def write_report(name: str, fig: Any, text: str) -> None:
    """Save ``results/<name>.png`` and ``results/<name>.md`` (``text`` plus the figure) and print it."""
    RESULTS.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    text = f"{text}\n\n![curves]({name}.png)\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_curves(ax: Any, runs: list[Run], title: str, z: float = 1.96) -> None:
    """Mean cumulative regret with a ``z`` confidence band per agent."""
    for run in runs:
        x = np.arange(1, run.curves.shape[1] + 1)
        mean = run.curves.mean(0)
        half = z * run.curves.std(0, ddof=1) / np.sqrt(len(run.curves))
        ax.plot(x, mean, label=run.agent)
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative regret")
    ax.legend()


def machine_line() -> str:
    """One line naming the machine and software the figures were measured on."""
    import os
    import platform

    line = (
        f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs (shared), "
        f"Python {platform.python_version()}, NumPy {np.__version__}"
    )
    try:
        import torch

        line += f", torch {torch.__version__} ({torch.get_num_threads()} thread(s))"
    except ImportError:
        pass
    return line


def write_result(out: str | Path, title: str, script: str, argv: list[str] | None, body: str) -> str:
    """Write (and print) a results page: ``title``, the exact command, the machine line, ``body``.

    ``argv`` is what the script's ``main`` received (None: the command line).
    """
    import sys

    command = " ".join(sys.argv[1:] if argv is None else argv)
    text = f"# {title}\n\nCommand: `python -m benchmarks.{script} {command}`\n\n{machine_line()}\n\n{body}\n"
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    return text
