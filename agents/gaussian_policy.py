"""Policies over the two-level Gaussian posterior: the shared layer under HierTS, meTS and friends.

Three pieces connect an env's public model to :class:`~hbgym.agents.posteriors.gaussian.HierarchicalGaussian`:

* a :class:`~hbgym.agents.hierarchies.GaussianHierarchy` — the prior an agent assumes (hyper
  mean/cov, unit covariance, mixing matrices ``A_u``, noise variance), derived from the model by a
  builder in :mod:`hbgym.agents.hierarchies` (the one home of the model -> prior builders);
* a :class:`~hbgym.agents.hierarchies.UnitLayout` — which posterior unit and feature vector each
  (slot, action) of an observation refers to: units are tasks (HierGaussian: one parameter per
  acting task, shared by its actions) or actions (MixedEffect: one parameter per action);
* :class:`GaussianPolicy` (this module) — updates the posterior with the chosen (unit, feature,
  reward) triples and leaves only the scoring rule to subclasses (Thompson sample, upper bound,
  lower bound, mean).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from hbgym.agents.base import TorchAgent
from hbgym.agents.hierarchies import GaussianHierarchy, hierarchy_for
from hbgym.agents.posteriors.gaussian import DiagonalHierarchicalGaussian, HierarchicalGaussian
from hbgym.agents.posteriors.linalg import dot

__all__ = ["GaussianPolicy"]


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``torch.equal`` (same shape and values); on the CPU through NumPy (about 30% less time)."""
    if a.device.type == "cpu" and b.device.type == "cpu":
        return bool(np.array_equal(a.numpy(), b.numpy()))
    return torch.equal(a, b)


# --------------------------------------------------------------------------- policies


class GaussianPolicy(TorchAgent):
    """A policy over a :class:`HierarchicalGaussian` posterior built from the env's model.

    Subclasses set :attr:`learn_hyper` (hierarchical or flat posterior) and implement
    :meth:`_scores`; the action is the argmax of the scores. ``hierarchy`` overrides the prior
    derived from the model (e.g. a misspecified or empirically estimated one).

    Args:
        model: the env's public model.
        hierarchy: the prior to assume (default: ``hierarchy_for(model, **hierarchy_options)``).
        **kwargs: ``num_envs``, ``device``, ``dtype``, ``seed`` (see :class:`TorchAgent`).
    """

    #: learn the hyper-parameter (hierarchical) or not (flat, oracle, independent units)
    learn_hyper: ClassVar[bool] = True
    #: per model type, options for its hierarchy builder (e.g. ``{MixedEffectModel: {"collapsed": "paper"}}``)
    hierarchy_options: ClassVar[dict[type, dict[str, Any]]] = {}

    def __init__(self, model: Any, *, hierarchy: GaussianHierarchy | None = None, **kwargs: Any) -> None:
        if hierarchy is None:
            options = next((o for t, o in self.hierarchy_options.items() if isinstance(model, t)), {})
            hierarchy = hierarchy_for(model, **options)
        self.hierarchy = hierarchy
        super().__init__(model, **kwargs)

    def _prior(self) -> GaussianHierarchy:
        """The prior the posterior is built with (flat agents return a flattened hierarchy)."""
        return self.hierarchy

    def _setup(self) -> None:
        spec = self._prior()
        self.layout = spec.layout
        self._marginal_online = spec.marginal_online  # (flat priors build a new hierarchy per call)
        like = {"device": self.device, "dtype": self.dtype}
        if spec.diagonal:
            unit_cov = spec.unit_cov if spec.unit_cov.ndim == 3 else spec.unit_cov[None]
            self.posterior = DiagonalHierarchicalGaussian(
                self.num_envs, spec.num_units, spec.hyper_mean, np.diag(spec.hyper_cov),
                np.diagonal(unit_cov, axis1=-2, axis2=-1), learn_hyper=self.learn_hyper, **like,
            )
        else:
            self.posterior = HierarchicalGaussian(
                self.num_envs, spec.num_units, spec.hyper_mean, spec.hyper_cov, spec.unit_cov,
                mixing=spec.mixing, learn_hyper=self.learn_hyper, **like,
            )
        self.noise_var = spec.noise_var

    def _reset_state(self) -> None:
        self.posterior.reset()
        self.round = 0
        self._synced: tuple[torch.Tensor, torch.Tensor] | None = None

    def _uses_mixing(self) -> bool:
        """Whether revealed ``A_u`` matter to this agent's posterior (not to e.g. LinTS's ridge prior)."""
        return getattr(self.posterior, "mixing", None) is not None or self._marginal_online

    def _sync_mixing(self, obs: dict[str, torch.Tensor]) -> None:
        """Give the posterior the ``A_u`` the observation reveals (see :meth:`UnitLayout.mixing`).
        Skipped when the observation entry ``A_u`` is built from (and the units) equal the last ones:
        per-episode weights repeat every round, so ``A_u`` is built once per episode."""
        if not self._uses_mixing():
            return
        source = self.layout.mixing_source(obs)
        if source is None:
            return
        last = self._synced  # (units, source); the units of an all-units layout never change
        unchanged = last is not None and _equal(last[1], source)
        if unchanged and (self.layout.all_units or _equal(last[0], self.layout.mixing_units(obs))):
            return
        ids = self.layout.mixing_units(obs)
        self._set_mixing(ids, self.layout.mixing(obs))
        self._synced = (ids.clone(), source.clone())  # obs tensors may share memory with the env's arrays

    def _set_mixing(self, ids: torch.Tensor, mixing: torch.Tensor) -> None:
        """Apply revealed ``A_u`` ``(B, n, d, D)`` of units ``ids`` ``(B, n)``: to the hierarchy, or
        (flat priors, ``marginal_online``) as every unit's marginal prior ``N(0, S0 + A_u S_psi A_u^T)``."""
        if getattr(self.posterior, "mixing", None) is not None:
            self.posterior.set_mixing(ids, mixing)
            return
        num_units = self.hierarchy.num_units
        if ids.shape[1] != num_units:
            raise ValueError(f"{type(self).__name__} needs the mixing matrices of all {num_units} units at "
                             f"once, got {ids.shape[1]}")
        order = torch.argsort(ids, dim=1)
        rows = torch.arange(ids.shape[0], device=ids.device)[:, None]
        self.posterior.set_prior(unit_cov=self.hierarchy.marginal_unit_cov_given(mixing[rows, order]))

    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        self._sync_mixing(obs)
        ids = self.layout.unit_ids(obs)
        return self._scores(ids, self.layout.features(obs)).argmax(-1)

    @abstractmethod
    def _scores(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, L, K)`` for units ``ids`` ``(B, L, K')`` and ``features`` ``(B, L, K, d)``."""

    def _chosen(
        self, obs: dict[str, torch.Tensor], action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit ids ``(B, L)`` and feature vectors ``(B, L, d)`` of the actions taken."""
        features = self.layout.features(obs)
        if self.layout.all_units:  # unit k is action k
            chosen_ids = action
        else:
            ids = self.layout.unit_ids(obs)
            chosen_ids = ids[..., 0] if ids.shape[-1] == 1 else ids.gather(-1, action[..., None])[..., 0]
        index = action[..., None, None].expand(*action.shape, 1, features.shape[-1])
        return chosen_ids, features.gather(2, index)[:, :, 0]

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        self._sync_mixing(obs)
        chosen_ids, chosen_x = self._chosen(obs, action)
        self.posterior.update(chosen_ids, chosen_x, reward, noise_var=self.noise_var)
        self.round += 1

    # ------------------------------------------------------------------ scoring helpers

    def _query(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Flattened unit ids ``(B, L K')`` for the posterior (None: every unit, no gather)."""
        return None if self.layout.all_units else ids.flatten(1)

    def _per_slot(self, values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Posterior outputs ``(B, n, ...)`` for :meth:`_query` laid out as ``(B, L or 1, K', ...)``.

        With ``all_units`` the posterior returned every unit once; it broadcasts over the slots.
        """
        tail = values.shape[2:]
        if self.layout.all_units:
            return values.reshape(ids.shape[0], 1, ids.shape[-1], *tail)
        return values.reshape(*ids.shape, *tail)

    def _thompson(
        self, ids: torch.Tensor, features: torch.Tensor, hyper: torch.Tensor, scale: float = 1.0
    ) -> torch.Tensor:
        """Scores ``(B, L, K)`` of a draw theta_u ~ P(theta_u | psi = hyper, data) (HierTS Alg. 1).

        ``scale`` inflates the draw's deviation from the conditional mean (1 = exact draw).
        """
        theta = self.posterior.sample_units(self._query(ids), hyper, self.streams, scale=scale)
        return dot(features, self._per_slot(theta, ids))

    def _bound(
        self, ids: torch.Tensor, features: torch.Tensor, width: float, hyper: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x^T m + width sqrt(x^T S x)`` ``(B, L, K)`` (negative width: a lower bound).

        ``(m, S)`` is the marginal posterior (eq. (8)) when ``hyper`` is None, else the conditional
        posterior given ``psi = hyper`` (eq. (6)).
        """
        query = self._query(ids)
        if hyper is None:
            mean, cov = self.posterior.marginal_posterior(query)
        else:
            mean, cov = self.posterior.conditional(query, hyper)
        return self._linear_bound(ids, features, mean, cov, width)

    def _linear_bound(
        self, ids: torch.Tensor, features: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, width: float
    ) -> torch.Tensor:
        """``x^T m + width sqrt(x^T S x)`` ``(B, L, K)`` for per-unit ``mean`` ``(B, n, d)`` and
        ``cov`` ``(B, n, d, d)`` in :meth:`_query` order."""
        d = mean.shape[-1]
        mean, cov = self._per_slot(mean, ids), self._per_slot(cov, ids)
        var = torch.einsum("blkd,blkde,blke->blk", features, cov.expand(*features.shape, d), features)
        return (features * mean).sum(-1) + width * var.clamp_min(0.0).sqrt()

    def _true_hyper(self) -> torch.Tensor:
        """The true hyper-parameter ``(B, D)`` read from the env (oracle agents)."""
        truth = np.asarray(self.hierarchy.truth(self._read_instance()), dtype=np.float64)
        if truth.ndim == 1:
            truth = truth[None]
        if truth.shape != (self.num_envs, self.hierarchy.hyper_dim):
            raise ValueError(
                f"the env's truth has shape {truth.shape}, the agent needs ({self.num_envs}, "
                f"{self.hierarchy.hyper_dim}): build oracle agents from a vector env with num_envs=B"
            )
        return torch.as_tensor(truth, device=self.device, dtype=self.dtype)
