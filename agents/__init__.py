"""hbgym agents: batched torch policies over one shared Bayesian posterior core.

Every agent follows the protocol in :mod:`agents.base` and is built from an env's public model with
``Agent.from_env(env, num_envs=B, device="cpu")``. ``AGENTS`` maps leaderboard names to classes.
"""

from __future__ import annotations

from agents.base import Agent, TorchAgent, UniformAgent
from agents.ebm import EbmTS, EbmUCB
from agents.glm import GLMTS, UCBGLM, MeTSGLM
from agents.hier_ts import FlatTS, HierTS, HierUCB, LinTS, LinUCB, OracleTS
from agents.mets import MeTS, MeTSFactored
from agents.multi_bandit_baselines import DisjointLinTS, DisjointLinUCB, OLSBandit, RMBandit
from agents.opo import FlatOPO, HierOPO, OfflinePolicy, OracleOPO

AGENTS: dict[str, type] = {
    cls.name: cls
    for cls in (
        UniformAgent, HierTS, OracleTS, FlatTS, HierUCB, LinTS, LinUCB,
        MeTS, MeTSFactored, MeTSGLM, GLMTS, UCBGLM,
    )
}
AGENTS.update({cls.name: cls for cls in (HierOPO, OracleOPO, FlatOPO)})  # offline: fit(dataset) first

__all__ = [
    "AGENTS",
    "Agent",
    "FlatTS",
    "GLMTS",
    "HierTS",
    "HierUCB",
    "LinTS",
    "LinUCB",
    "MeTS",
    "MeTSFactored",
    "MeTSGLM",
    "OracleTS",
    "TorchAgent",
    "UCBGLM",
    "UniformAgent",
]
__all__ += ["FlatOPO", "HierOPO", "OfflinePolicy", "OracleOPO"]
AGENTS.update({cls.name: cls for cls in (EbmTS, EbmUCB, DisjointLinTS, DisjointLinUCB, OLSBandit, RMBandit)})
__all__ += ["DisjointLinTS", "DisjointLinUCB", "EbmTS", "EbmUCB", "OLSBandit", "RMBandit"]

from agents.coco_baselines import MTTS, IndTS, OraclePriorTS  # noqa: E402

AGENTS.update({cls.name: cls for cls in (MTTS, IndTS, OraclePriorTS)})
__all__ += ["IndTS", "MTTS", "OraclePriorTS"]
