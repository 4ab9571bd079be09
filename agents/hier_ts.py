"""HierTS and its baselines (Hong, Kveton, Zaheer, Ghavamzadeh. Hierarchical Bayesian Bandits. 2022).

All are thin scoring rules over the one two-level Gaussian posterior (agents/posteriors/gaussian.py):

============  ==============================================  =======================================
agent         posterior                                       action
============  ==============================================  =======================================
HierTS        hierarchical, learns mu* (eq. (5))              two-stage sample psi, theta | psi (Alg. 1)
OracleTS      knows mu* (reads the env's truth; oracle)       sample theta | mu*, data (eq. (6))
FlatTS        marginal prior N(mu_q, S_q + S_0) per task      sample theta | data (the paper's "TS")
HierUCB       hierarchical marginal (eq. (8))                 Bayes-UCB quantile 1 - 1/(t + 1)
LinTS         ridge prior N(0, sigma^2 / lambda I) per unit   sample with scale v (Agrawal & Goyal 2013)
LinUCB        ridge prior N(0, sigma^2 / lambda I) per unit   mean + alpha * sigma-normalised width
============  ==============================================  =======================================

They run on any model with a registered Gaussian hierarchy: HierGaussian-v0 / HierGaussianMAB-v0
(units = tasks; the K-armed preset uses the diagonal fast path) and MixedEffect-v0 (units =
actions; HierTS there is the meTS paper's single-effect baseline, see :mod:`hbgym.agents.mets`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from hbgym.agents.gaussian_policy import GaussianPolicy
from hbgym.agents.hierarchies import GaussianHierarchy, hierarchy_for

from hbgym.models import MixedEffectModel

__all__ = ["HierTS", "OracleTS", "FlatTS", "HierUCB", "LinTS", "LinUCB", "RidgePolicy"]


class HierTS(GaussianPolicy):
    """Hierarchical Thompson sampling (Alg. 1): sample psi_t ~ Q_t (eq. (5)), then theta_s ~
    P_{s,t}(. | psi_t) (eq. (6)) for each acting task, and act greedily on the draw.

    Concurrent rounds act on all L tasks with the same psi_t and update after the round (delayed
    feedback, Sec. 6.3). On mixed-effect models HierTS assumes a single shared effect: the meTS
    paper's HierTS baseline (poster Fig. 1, "hierarchical TS with single effect").

    Args:
        model: the env's public model.
        collapsed: mixed-effect models only: ``"paper"`` (default) is the single-effect prior the meTS
            authors built, ``psi ~ N(mean_l mu_l, (1/L_e^2) sum_l S_l)`` (``N(0, I)`` with the env
            defaults) and ``theta_i | psi ~ N(psi, S_0)``, which ignores the mixing weights;
            ``"weighted"`` is our earlier moment-matched prior (needs fixed weights; see
            :func:`hbgym.agents.gaussian_policy._mixed_effect`).
        **kwargs: see :class:`GaussianPolicy`.
    """

    name = "HierTS"

    def __init__(self, model: Any, *, collapsed: str = "paper", **kwargs: Any) -> None:
        if isinstance(model, MixedEffectModel) and kwargs.get("hierarchy") is None:
            kwargs["hierarchy"] = hierarchy_for(model, collapsed=collapsed)
        super().__init__(model, **kwargs)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        hyper = self.posterior.sample_hyper(self.streams)
        return self._thompson(ids, features, hyper)


class OracleTS(GaussianPolicy):
    """TS with the true prior N(mu*, S_0): knows the hyper-parameter (reads the env's instance)."""

    name = "OracleTS"
    oracle = True
    learn_hyper = False

    def _reset_state(self) -> None:
        super()._reset_state()
        self._hyper: torch.Tensor | None = None

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        if self._hyper is None:
            self._hyper = self._true_hyper()
        return self._thompson(ids, features, self._hyper)


class FlatTS(GaussianPolicy):
    """The HierTS paper's "TS": each task alone with the marginal prior N(mu_q, S_q + S_0)."""

    name = "FlatTS"
    learn_hyper = False

    def _prior(self) -> GaussianHierarchy:
        return self.hierarchy.flattened()

    def _reset_state(self) -> None:
        super()._reset_state()
        hyper_mean = self._prior().hyper_mean
        hyper = torch.as_tensor(hyper_mean, device=self.device, dtype=self.dtype)
        self._hyper = hyper.expand(self.num_envs, -1)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self._thompson(ids, features, self._hyper)


class HierUCB(GaussianPolicy):
    """Bayes-UCB (Kaufmann et al. 2012) on the hierarchical marginal posterior (eq. (8)).

    Score ``x^T mu_hat + z_t sqrt(x^T S_hat x)`` with ``z_t = Phi^{-1}(1 - 1/(t + 1))`` the
    posterior quantile at round ``t`` (``c = 0`` in Kaufmann et al.), floored at ``min_width``.
    """

    name = "HierUCB"

    def __init__(self, model: Any, *, min_width: float = 1.0, **kwargs: Any) -> None:
        self.min_width = float(min_width)
        super().__init__(model, **kwargs)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        level = torch.tensor(1.0 - 1.0 / (self.round + 2.0), dtype=self.dtype)
        width = max(float(torch.special.ndtri(level)), self.min_width)
        return self._bound(ids, features, width)


def _ridge(hierarchy: GaussianHierarchy, ridge: float) -> GaussianHierarchy:
    """Independent units with prior N(0, noise_var / ridge I): ridge regression per unit."""
    d = hierarchy.unit_cov.shape[-1]
    return replace(
        hierarchy,
        hyper_mean=np.zeros(d),
        hyper_cov=np.eye(d),
        unit_cov=hierarchy.noise_var / ridge * np.eye(d),
        mixing=None,
        diagonal=False,
    )


class RidgePolicy(GaussianPolicy):
    """Independent units with the ridge prior N(0, noise_var / ridge I) (no sharing, no structure)."""

    learn_hyper = False

    def __init__(self, model: Any, *, ridge: float = 1.0, **kwargs: Any) -> None:
        self.ridge = float(ridge)
        if self.ridge <= 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        super().__init__(model, **kwargs)

    def _prior(self) -> GaussianHierarchy:
        return _ridge(self.hierarchy, self.ridge)

    def _reset_state(self) -> None:
        super()._reset_state()
        dim = self.posterior.hyper_dim
        self._origin = torch.zeros(self.num_envs, dim, device=self.device, dtype=self.dtype)


class LinTS(RidgePolicy):
    """Linear Thompson sampling per unit (Agrawal & Goyal 2013): draw from N(theta_hat, v^2 B^{-1}),
    ``B = lambda I + sum x x^T``, ``theta_hat`` the ridge estimate; ``v = scale * sigma``.

    Knows nothing of the prior's structure or location (no sharing between units).
    """

    name = "LinTS"

    def __init__(self, model: Any, *, ridge: float = 1.0, scale: float = 1.0, **kwargs: Any) -> None:
        self.scale = float(scale)
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        super().__init__(model, ridge=ridge, **kwargs)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self._thompson(ids, features, self._origin, self.scale)


class LinUCB(RidgePolicy):
    """LinUCB (Li et al. 2010) per unit: ``x^T theta_hat + alpha sqrt(x^T B^{-1} x)`` with
    ``B = lambda I + sum x x^T`` (the posterior standard deviation divided by sigma)."""

    name = "LinUCB"

    def __init__(self, model: Any, *, ridge: float = 1.0, alpha: float = 1.0, **kwargs: Any) -> None:
        self.alpha = float(alpha)
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        super().__init__(model, ridge=ridge, **kwargs)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self._bound(ids, features, self.alpha / np.sqrt(self.noise_var), hyper=self._origin)
