"""hbgym agents: batched torch policies over one shared Bayesian posterior core.

Every agent follows the protocol in :mod:`agents.base` and is built from an env's public model with
``Agent.from_env(env, num_envs=B, device="cpu")``. ``AGENTS`` maps leaderboard names to classes.
"""

from __future__ import annotations

from agents.base import Agent, TorchAgent, UniformAgent
from agents.hier_ts import FlatTS, HierTS, HierUCB, LinTS, LinUCB, OracleTS
from agents.mets import MeTS, MeTSFactored

AGENTS: dict[str, type] = {
    cls.name: cls
    for cls in (UniformAgent, HierTS, OracleTS, FlatTS, HierUCB, LinTS, LinUCB, MeTS, MeTSFactored)
}

__all__ = [
    "AGENTS",
    "Agent",
    "FlatTS",
    "HierTS",
    "HierUCB",
    "LinTS",
    "LinUCB",
    "MeTS",
    "MeTSFactored",
    "OracleTS",
    "TorchAgent",
    "UniformAgent",
]
