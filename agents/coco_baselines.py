"""Baselines of the CoCo-bandits paper (Mukherjee et al., Sec. 5 and App. C) on PartialContext-v0.

=================  ===========================================================  ==================
agent              prior over a user's arm means mu_i in R^K                    posterior / action
=================  ===========================================================  ==================
Ind-TS             N(m0, s0^2 I) per user, independent (no sharing)              Gaussian TS
MTTS               Gaussian LMM (Wan et al. 2021): mu_i = Phi_i theta + delta_i  hierarchical TS
OraclePrior-TS     the true P*(mu | x_obs) (a Gaussian mixture; oracle)         exact mixture TS
=================  ===========================================================  ==================

* **Ind-TS**: the paper uses "independent Thompson sampling with a uniform prior" (Sec. 5) without
  giving it; we use the conjugate broad prior ``N(0, 1)`` per arm (``prior_mean``, ``prior_std``),
  independent across users and arms, with the known ``sigma`` — the K-armed fast path of the
  shared posterior (:class:`~hbgym.agents.posteriors.gaussian.DiagonalHierarchicalGaussian`).
* **MTTS** (Wan, Ge, Song. Metadata-based multi-task bandits with Bayesian hierarchical models.
  2021; its Gaussian linear mixed model, as the CoCo paper compares, App. C.3): ``theta ~
  N(mu_theta, Sigma_theta)``, ``mu_i | theta ~ N(Phi_i theta, Sigma_delta)``, ``r ~ N(mu_{i,a},
  sigma^2)`` with ``model.mtts_prior`` (``1_2``, ``0.25 I``, ``0.05^2 I``) in every scenario. This
  is the two-level Gaussian posterior with hyper-parameter theta (``D = 2``), units = users
  (``d = K``), one-hot arm features and ``A_u = Phi_u`` (``obs["features"]``), set when the user
  first appears (every unit exists from the start; units without data do not contribute). TS: draw
  theta from its posterior, then each acting user's mu from ``P(mu_i | theta, data)`` (Wan et al.
  Alg. 1 with the exact Gaussian posterior). It is :class:`~hbgym.agents.hier_ts.HierTS` on this
  hierarchy; :class:`~hbgym.agents.hier_ts.OracleTS` on it knows theta (lmm scenarios).
* **OraclePrior-TS** (Sec. 2.3, eq. (2): the reference of the multi-task regret): TS per user with
  the exact posterior under the true conditional prior :func:`hbgym.models.
  conditional_prior` (mixture scenarios: the true 2-component mixture; partial_linear: its two
  rank-one components; lmm scenarios: ``N(Phi theta*, Sigma_delta)`` with the instance's theta*),
  conditioned on the user's own rewards only (:mod:`hbgym.agents.posteriors.mixture`). A draw samples a
  component from the posterior weights, then mu from that component.

All three are batched over ``B`` replicates and run only on PartialContext-v0 models.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from hbgym.agents.base import TorchAgent
from hbgym.agents.gaussian_policy import GaussianPolicy
from hbgym.agents.hier_ts import HierTS
from hbgym.agents.hierarchies import GaussianHierarchy, OneHotUserUnits
from hbgym.agents.posteriors.mixture import mixture_posterior, sample_mixture

from hbgym.models import PartialContextModel, conditional_prior

__all__ = ["IndTS", "MTTS", "OraclePriorTS"]


def _require_partial_context(model: Any, name: str) -> None:
    if not isinstance(model, PartialContextModel):
        raise ValueError(f"{name} needs a PartialContext-v0 env, got a {type(model).__name__}")


class MTTS(HierTS):
    """Metadata-based multi-task TS (Wan et al. 2021), Gaussian LMM (see the module docstring)."""

    name = "MTTS"

    def __init__(self, model: Any, **kwargs: Any) -> None:
        _require_partial_context(model, type(self).__name__)
        super().__init__(model, **kwargs)


class IndTS(GaussianPolicy):
    """Independent Gaussian TS per user with prior ``N(prior_mean, prior_std^2 I)`` (Ind-TS)."""

    name = "Ind-TS"
    learn_hyper = False

    def __init__(self, model: Any, *, prior_mean: float = 0.0, prior_std: float = 1.0, **kwargs: Any) -> None:
        _require_partial_context(model, type(self).__name__)
        if not (np.isfinite(prior_mean) and np.isfinite(prior_std) and prior_std > 0):
            raise ValueError(
                f"prior_std must be > 0 and prior_mean finite, got {prior_std!r}, {prior_mean!r}"
            )
        self.prior_mean, self.prior_std = float(prior_mean), float(prior_std)
        super().__init__(model, **kwargs)

    def _prior(self) -> GaussianHierarchy:
        K = self.model.num_actions
        return replace(
            self.hierarchy,
            hyper_mean=np.full(K, self.prior_mean),
            hyper_cov=np.eye(K),
            unit_cov=self.prior_std**2 * np.eye(K),
            mixing=None,
            layout=OneHotUserUnits(K),
            diagonal=True,
            online_mixing=False,
        )

    def _reset_state(self) -> None:
        super()._reset_state()
        origin = torch.full((self.model.num_actions,), self.prior_mean, device=self.device, dtype=self.dtype)
        self._origin = origin.expand(self.num_envs, -1)

    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self._thompson(ids, features, self._origin)


class OraclePriorTS(TorchAgent):
    """TS with the true conditional prior ``P*(mu | x_obs)`` per user (oracle; module docstring)."""

    name = "OraclePrior-TS"
    oracle = True

    def __init__(self, model: Any, **kwargs: Any) -> None:
        _require_partial_context(model, type(self).__name__)
        super().__init__(model, **kwargs)

    def _setup(self) -> None:
        self.noise_var = self.model.sigma**2

    def _reset_state(self) -> None:
        shape = (self.num_envs, self.model.num_tasks, self.model.num_actions)
        self.counts = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self.sums = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self._prior: tuple[torch.Tensor, ...] | None = None

    def _true_prior(self) -> tuple[torch.Tensor, ...]:
        """Every user's true prior: weights ``(B, U, C)``, means ``(B, U, C, K)``, covs
        ``(B, U, C, K, K)``."""
        if self._prior is None:
            instance = self._read_instance()
            x_obs = np.asarray(instance.contexts)[..., 0]
            parts = conditional_prior(self.model, instance, x_obs)
            if x_obs.ndim == 1:  # a single env's instance
                parts = tuple(p[None] for p in parts)
            if parts[0].shape[:2] != (self.num_envs, self.model.num_tasks):
                raise ValueError(
                    f"the env's instance covers {parts[0].shape[0]} replicates, the agent has "
                    f"num_envs={self.num_envs}: build it from a vector env with num_envs=B"
                )
            like = {"device": self.device, "dtype": self.dtype}
            self._prior = tuple(torch.as_tensor(p, **like) for p in parts)
        return self._prior

    def posterior(self, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Exact posterior of users ``ids`` ``(B, n)``: weights ``(B, n, C)``, means ``(B, n, C, K)``,
        covariances and their square-root factors ``(B, n, C, K, K)``."""
        rows = torch.arange(self.num_envs, device=ids.device)[:, None]
        weights, means, covs = (p[rows, ids] for p in self._true_prior())
        gram = torch.diag_embed(self.counts[rows, ids] / self.noise_var)
        moment = self.sums[rows, ids] / self.noise_var
        return mixture_posterior(weights, means, covs, gram, moment)

    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        weights, means, _, factors = self.posterior(obs["task"])
        return sample_mixture(weights, means, factors, self.streams).argmax(-1)

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        B, U, K = self.counts.shape
        flat = ((torch.arange(B, device=action.device)[:, None] * U + obs["task"]) * K + action).reshape(-1)
        self.counts.view(-1).index_add_(0, flat, torch.ones_like(reward).reshape(-1))
        self.sums.view(-1).index_add_(0, flat, reward.reshape(-1))
