"""Shared helpers of the reproduction scripts: batched episodes, summaries, tables and plots."""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import hbgym  # noqa: F401

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- provenance of results


def git_commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_line() -> str:
    """One line saying where and when a figure was measured: CPU, cores, load, versions, commit."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = platform.processor() or platform.machine()
    versions = f"Python {platform.python_version()}"
    if "torch" in sys.modules:
        versions += f", torch {sys.modules['torch'].__version__}"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"Machine: {cpu}, {os.cpu_count()} CPUs, load average {load:.1f} at the end; {versions}; "
            f"commit {git_commit()}; {stamp}.")


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The exact command that produced a result: ``python -m MODULE ARGS``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in argv)])


def is_full_run(
    parser: argparse.ArgumentParser, args: argparse.Namespace, subset_keys: Iterable[str]
) -> bool:
    """True when none of the arguments in ``subset_keys`` (those that select a subset of the work:
    agents, scenarios, a skipped part...) differs from its default."""
    defaults = parser.parse_args([])
    return all(getattr(args, key) == getattr(defaults, key) for key in subset_keys)


def results_path(name: str, full: bool, out: Path = RESULTS) -> Path:
    """``out/name`` for a full run; ``out/<stem>.partial<suffix>`` for a run on a subset of its
    arguments, so a partial run never overwrites the committed full results."""
    path = out / name
    return path if full else path.with_name(f"{path.stem}.partial{path.suffix}")


def provenance(command: str) -> str:
    """The two lines every results file starts with: the command and the machine."""
    return f"Command: `{command}`\n\n{machine_line()}"


def source_hash(paths: Iterable[Path]) -> str:
    """sha256 (16 hex digits) of the given source files and every ``*.py`` under given folders: a
    cache key that changes whenever the code that computes a cached result changes."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for path in paths:
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(REPO)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


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


def write_report(name: str, fig: Any, text: str, command: str, full: bool = True) -> None:
    """Save ``results/<name>.png`` and ``results/<name>.md`` (``text``, the command and machine
    lines, and the figure) and print it; a partial run writes ``<name>.partial.{md,png}`` instead."""
    RESULTS.mkdir(exist_ok=True)
    fig.tight_layout()
    png = results_path(f"{name}.png", full)
    fig.savefig(png, dpi=110)
    text = f"{text}\n\n{provenance(command)}\n\n![curves]({png.name})\n"
    results_path(f"{name}.md", full).write_text(text)
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


def write_result(out: str | Path, title: str, script: str, argv: list[str] | None, body: str) -> str:
    """Write (and print) a results page: ``title``, the exact command, the machine line, ``body``.

    ``argv`` is what the script's ``main`` received (None: the command line).
    """
    command = command_line(f"benchmarks.{script}", argv)
    text = f"# {title}\n\nCommand: `{command}`\n\n{machine_line()}\n\n{body}\n"
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    return text
