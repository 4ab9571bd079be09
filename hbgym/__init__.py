"""hbgym: Gymnasium environments for multi-task and hierarchical Bayesian bandits.

``import hbgym`` registers every environment id, after which ``gym.make("HierGaussian-v0")`` and
``gym.make_vec("HierGaussian-v0", num_envs=B)`` work. This package depends on NumPy and Gymnasium
only; it never imports torch (the torch agents are the subpackage ``hbgym.agents``, imported only
when asked for).
"""

from __future__ import annotations

from hbgym.envs import ENV_IDS, VARIANTS

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "VARIANTS", "__version__"]
