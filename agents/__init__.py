"""hbgym agents: batched torch policies over one shared Bayesian posterior core.

Every agent follows the protocol in :mod:`agents.base` and is built from an env's public model with
``Agent.from_env(env, num_envs=B, device="cpu")``. ``AGENTS`` maps leaderboard names to classes.
"""

from __future__ import annotations

from agents.base import Agent, TorchAgent, UniformAgent

AGENTS: dict[str, type] = {"Uniform": UniformAgent}

__all__ = ["AGENTS", "Agent", "TorchAgent", "UniformAgent"]
