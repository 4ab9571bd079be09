"""hbgym agents: batched torch policies over one shared Bayesian posterior core.

Every agent follows the protocol in :mod:`agents.base` and is built from an env's public model with
``Agent.from_env(env, num_envs=B, device="cpu")``. ``AGENTS`` maps leaderboard names to classes.
"""

from __future__ import annotations

from agents.base import Agent, TorchAgent, UniformAgent
from agents.opo import FlatOPO, HierOPO, OfflinePolicy, OracleOPO

AGENTS: dict[str, type] = {"Uniform": UniformAgent}
AGENTS.update({"HierOPO": HierOPO, "OracleOPO": OracleOPO, "FlatOPO": FlatOPO})  # offline (fit first)

__all__ = ["AGENTS", "Agent", "TorchAgent", "UniformAgent"]
__all__ += ["FlatOPO", "HierOPO", "OfflinePolicy", "OracleOPO"]
