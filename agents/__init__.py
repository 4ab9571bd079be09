"""hbgym agents: batched torch policies over one shared Bayesian posterior core.

Every agent follows the protocol in :mod:`agents.base` and is built from an env's public model with
``Agent.from_env(env, num_envs=B, device="cpu")``. ``AGENTS`` maps leaderboard names to classes.
"""

from __future__ import annotations

from agents.base import Agent, TorchAgent, UniformAgent
from agents.ebm import EbmTS, EbmUCB
from agents.multi_bandit_baselines import DisjointLinTS, DisjointLinUCB, OLSBandit, RMBandit

AGENTS: dict[str, type] = {"Uniform": UniformAgent}
AGENTS.update({cls.name: cls for cls in (EbmTS, EbmUCB, DisjointLinTS, DisjointLinUCB, OLSBandit, RMBandit)})

__all__ = ["AGENTS", "Agent", "TorchAgent", "UniformAgent"]
__all__ += ["DisjointLinTS", "DisjointLinUCB", "EbmTS", "EbmUCB", "OLSBandit", "RMBandit"]
