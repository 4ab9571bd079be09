"""Logistic-reward agents for MixedEffectLogistic-v0 (meTS poster, "GLM case" and Fig. 1 right).

All three keep per-action Laplace approximations (:mod:`hbgym.agents.posteriors.laplace`) and differ in
what they do with them:

* :class:`MeTSGLM` (meTS-GLM) — plugs the Laplace statistics into the mixed-effect hierarchy and
  samples effects then actions (meTS Alg. 1).
* :class:`GLMTS` (GLM-TS, Kveton et al. 2020 "GLM-TSL") — the same Laplace statistics with the
  flat marginal prior of each action (no sharing through effects).
* :class:`UCBGLM` (UCB-GLM, Li et al. 2017) — ``x^T theta_hat + alpha sqrt(x^T V^{-1} x)`` with
  ``theta_hat`` the per-action maximum likelihood estimate and ``V = lambda I + sum x x^T``
  (a ridge ``lambda`` instead of the paper's initial random exploration phase).

The linear agents of :mod:`hbgym.agents.mets` also run on the logistic env (meTS-Lin: linear-Gaussian
model with noise variance 1/4). Scores are linear in theta: the sigmoid is monotone, so the argmax
over actions is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hbgym.agents.gaussian_policy import GaussianPolicy
from hbgym.agents.hier_ts import FlatTS, RidgePolicy
from hbgym.agents.mets import MeTS
from hbgym.agents.posteriors.laplace import LaplaceLogistic

__all__ = ["MeTSGLM", "GLMTS", "UCBGLM"]


class _LaplaceStatistics(GaussianPolicy):
    """Mixin: unit statistics come from Laplace approximations of logistic likelihoods."""

    def __init__(self, model: Any, *, refit_every: int = 50, **kwargs: Any) -> None:
        if getattr(model, "reward", None) != "logistic":
            raise ValueError(f"{type(self).__name__} needs a logistic-reward env (MixedEffectLogistic-v0)")
        self.refit_every = int(refit_every)
        super().__init__(model, **kwargs)

    def _setup(self) -> None:
        super()._setup()
        capacity = self.model.num_rounds * self.model.tasks_per_round
        self.laplace = LaplaceLogistic(
            self.num_envs, self.hierarchy.num_units, self.posterior.unit_dim, capacity,
            refit_every=self.refit_every, device=self.device, dtype=self.dtype,
        )

    def _reset_state(self) -> None:
        super()._reset_state()
        self.laplace.reset()

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        chosen_ids, chosen_x = self._chosen(obs, action)
        refitted = self.laplace.add(chosen_ids, chosen_x, reward)
        gram, moment = self.laplace.statistics()
        if refitted:
            ids = torch.arange(self.laplace.num_units, device=self.device).expand(self.num_envs, -1)
        else:
            ids = chosen_ids
        rows = torch.arange(self.num_envs, device=self.device)[:, None]
        self.posterior.set_statistics(ids, gram[rows, ids], moment[rows, ids])
        self.round += 1


class MeTSGLM(_LaplaceStatistics, MeTS):
    """meTS with Laplace-approximated logistic likelihoods (meTS-GLM)."""

    name = "meTS-GLM"


class GLMTS(_LaplaceStatistics, FlatTS):
    """Laplace-approximation Thompson sampling per action with the flat marginal prior (GLM-TS)."""

    name = "GLM-TS"


class UCBGLM(_LaplaceStatistics, RidgePolicy):
    """UCB-GLM (Li et al. 2017): MLE plus an elliptical bonus from the raw design matrix."""

    name = "UCB-GLM"

    def __init__(self, model: Any, *, alpha: float = 1.0, **kwargs: Any) -> None:
        self.alpha = float(alpha)
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        super().__init__(model, **kwargs)

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        chosen_ids, chosen_x = self._chosen(obs, action)
        self.laplace.add(chosen_ids, chosen_x, reward)
        # V = lambda I + sum x x^T: the ridge posterior with unit noise (the reward is not used)
        self.posterior.update(chosen_ids, chosen_x, torch.zeros_like(reward), noise_var=1.0)
        self.round += 1

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        query = self._query(ids)
        _, cov = self.posterior.conditional(query, self._origin)  # (lambda I + V)^{-1}
        mode = self.laplace.mode
        if query is not None:
            mode = mode[torch.arange(self.num_envs, device=self.device)[:, None], query]
        return self._linear_bound(ids, features, mode, cov, self.alpha)

    def _prior(self) -> Any:
        spec = super()._prior()
        return spec.__class__(**{**spec.__dict__, "unit_cov": np.eye(spec.unit_cov.shape[-1]) / self.ridge})
