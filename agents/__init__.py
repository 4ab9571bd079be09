"""hbgym agents: batched torch policies over one shared Bayesian posterior core.

Every agent follows the protocol in :mod:`hbgym.agents.base` and is built from an env's public model with
``Agent.from_env(env, num_envs=B, device="cpu")``. ``AGENTS`` maps leaderboard names to classes.
"""

from __future__ import annotations

from hbgym.agents import _requires  # noqa: F401  (first: a clear ImportError without torch)
from hbgym.agents.base import Agent, TorchAgent, UniformAgent
from hbgym.agents.ebm import EbmTS, EbmUCB
from hbgym.agents.glm import GLMTS, UCBGLM, MeTSGLM
from hbgym.agents.hier_ts import FlatTS, HierTS, HierUCB, LinTS, LinUCB, OracleTS
from hbgym.agents.mets import MeTS, MeTSFactored
from hbgym.agents.multi_bandit_baselines import DisjointLinTS, DisjointLinUCB, OLSBandit, RMBandit
from hbgym.agents.opo import FlatOPO, HierOPO, OfflinePolicy, OracleOPO

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

from hbgym.agents.coco_baselines import MTTS, IndTS, OraclePriorTS  # noqa: E402

AGENTS.update({cls.name: cls for cls in (MTTS, IndTS, OraclePriorTS)})
__all__ += ["IndTS", "MTTS", "OraclePriorTS"]

from hbgym.agents.coco import GIDS, NPMTS  # noqa: E402

AGENTS.update({cls.name: cls for cls in (NPMTS, GIDS)})
__all__ += ["GIDS", "NPMTS"]
