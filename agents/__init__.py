"""hbgym agents: batched torch policies over one shared Bayesian posterior core.

Every agent follows the protocol in :mod:`hbgym.agents.base` and is built from an env's public model with
``Agent.from_env(env, num_envs=B, device="cpu")``. ``AGENTS`` maps leaderboard names to classes.
"""

from __future__ import annotations

from hbgym.agents import _requires  # noqa: F401  (first: a clear ImportError without torch)
from hbgym.agents.base import Agent, TorchAgent, UniformAgent
from hbgym.agents.coco import GIDS, NPMTS
from hbgym.agents.coco_baselines import MTTS, IndTS, OraclePriorTS
from hbgym.agents.ebm import EbmTS, EbmUCB
from hbgym.agents.glm import GLMTS, UCBGLM, MeTSGLM
from hbgym.agents.hier_ts import FlatTS, HierTS, HierUCB, LinTS, LinUCB, OracleTS
from hbgym.agents.mets import MeTS, MeTSFactored
from hbgym.agents.multi_bandit_baselines import DisjointLinTS, DisjointLinUCB, OLSBandit, RMBandit
from hbgym.agents.opo import FlatOPO, HierOPO, OfflinePolicy, OracleOPO

#: every zoo agent, in leaderboard order (offline learners, ``offline = True``, are fitted on a dataset first)
_ZOO: tuple[type, ...] = (
    UniformAgent, HierTS, OracleTS, FlatTS, HierUCB, LinTS, LinUCB,
    MeTS, MeTSFactored, MeTSGLM, GLMTS, UCBGLM,
    HierOPO, OracleOPO, FlatOPO,
    EbmTS, EbmUCB, DisjointLinTS, DisjointLinUCB, OLSBandit, RMBandit,
    MTTS, IndTS, OraclePriorTS,
    NPMTS, GIDS,
)
AGENTS: dict[str, type] = {cls.name: cls for cls in _ZOO}

__all__ = ["AGENTS", "Agent", "OfflinePolicy", "TorchAgent", *(cls.__name__ for cls in _ZOO)]
