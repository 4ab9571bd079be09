"""Policies over the two-level Gaussian posterior: the shared layer under HierTS, meTS and friends.

Three pieces connect an env's public model to :class:`~hbgym.agents.posteriors.gaussian.HierarchicalGaussian`:

* a :class:`GaussianHierarchy` — the prior an agent assumes (hyper mean/cov, unit covariance,
  mixing matrices ``A_u``, noise variance), derived from the model by a registered builder;
* a :class:`UnitLayout` — which posterior unit and feature vector each (slot, action) of an
  observation refers to: units are tasks (HierGaussian: one parameter per acting task, shared by
  its actions) or actions (MixedEffect: one parameter per action);
* :class:`GaussianPolicy` — updates the posterior with the chosen (unit, feature, reward) triples
  and leaves only the scoring rule to subclasses (Thompson sample, upper bound, lower bound, mean).

Other families register their own hierarchy builder with :func:`register_hierarchy`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from hbgym.agents.base import TorchAgent
from hbgym.agents.posteriors.gaussian import DiagonalHierarchicalGaussian, HierarchicalGaussian

from hbgym.models import HierGaussianModel, MixedEffectModel

__all__ = [
    "GaussianHierarchy",
    "UnitLayout",
    "TaskUnits",
    "ActionUnits",
    "GaussianPolicy",
    "hierarchy_for",
    "register_hierarchy",
]


# --------------------------------------------------------------------------- layouts


class UnitLayout:
    """Maps observations to posterior units.

    ``unit_ids(obs)`` is ``(B, L, K')`` long with ``K' = 1`` (one unit per slot, shared by its
    actions) or ``K' = K`` (one unit per action); ``features(obs)`` is ``(B, L, K, d)``.
    ``all_units`` is True when ``unit_ids`` is always every unit in order (the posterior then
    reads its tables without gathering).
    """

    all_units: bool = False

    def unit_ids(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["features"]

    def mixing(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``A_u`` ``(B, L, d, D)`` of the acting units when it is revealed by the observation (units
        met over time, e.g. MTTS users with design ``Phi_u``); None when the prior fixes it."""
        return None


class TaskUnits(UnitLayout):
    """Units are tasks: every action of slot ``l`` is scored with the parameter of task ``task[l]``."""

    def unit_ids(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["task"][..., None]


class ActionUnits(UnitLayout):
    """Units are actions: action ``k`` has its own parameter (the meTS model); one slot per round."""

    all_units = True

    def __init__(self, num_actions: int) -> None:
        self.num_actions = num_actions

    def unit_ids(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        task = obs["task"]
        ids = torch.arange(self.num_actions, device=task.device)
        return ids.expand(*task.shape, self.num_actions)


# --------------------------------------------------------------------------- hierarchies


@dataclass(frozen=True, eq=False)
class GaussianHierarchy:
    """The two-level Gaussian prior an agent assumes (NumPy arrays; see the posterior's docstring).

    Attributes:
        num_units: U.
        hyper_mean: ``(D,)``; hyper_cov: ``(D, D)``.
        unit_cov: ``(d, d)`` or ``(U, d, d)``.
        mixing: None (``A_u = I``) or ``(U, d, D)``.
        noise_var: the reward noise variance the agent assumes.
        layout: how observations map onto units.
        truth: maps the env's instance to the true hyper-parameter ``(..., D)`` (oracle agents).
        diagonal: True when the K-armed fast path applies (one-hot features, diagonal covariances).
        online_mixing: True when ``A_u`` is revealed by observations (``layout.mixing``) and
            ``mixing`` is only a placeholder until then.
    """

    num_units: int
    hyper_mean: np.ndarray
    hyper_cov: np.ndarray
    unit_cov: np.ndarray
    mixing: np.ndarray | None
    noise_var: float
    layout: UnitLayout
    truth: Callable[[Any], np.ndarray]
    diagonal: bool = False
    online_mixing: bool = False

    @property
    def hyper_dim(self) -> int:
        return len(self.hyper_mean)

    def marginal_unit_cov(self) -> np.ndarray:
        """``S0_u + A_u S_psi A_u^T`` ``(U or 1, d, d)``: each unit's prior with psi integrated out."""
        unit_cov = self.unit_cov if self.unit_cov.ndim == 3 else self.unit_cov[None]
        if self.mixing is None:
            return unit_cov + self.hyper_cov
        return unit_cov + self.mixing @ self.hyper_cov @ self.mixing.transpose(0, 2, 1)

    def flattened(self) -> GaussianHierarchy:
        """The same marginal prior per unit with the hierarchy removed (the papers' "TS" baseline)."""
        if self.online_mixing:
            raise ValueError("this hierarchy's mixing matrices A_u are revealed online; it has no fixed "
                             "marginal prior per unit to flatten")
        return replace(self, unit_cov=self.marginal_unit_cov(), diagonal=False)


_BUILDERS: dict[type, Callable[..., GaussianHierarchy]] = {}


def register_hierarchy(model_type: type) -> Callable:
    """Decorator: register ``builder(model, **options) -> GaussianHierarchy`` for a model type."""

    def decorate(builder: Callable[..., GaussianHierarchy]) -> Callable[..., GaussianHierarchy]:
        _BUILDERS[model_type] = builder
        return builder

    return decorate


def hierarchy_for(model: Any, **options: Any) -> GaussianHierarchy:
    """The Gaussian hierarchy an agent assumes for ``model`` (an env's public model)."""
    for model_type in type(model).__mro__:
        if model_type in _BUILDERS:
            return _BUILDERS[model_type](model, **options)
    known = ", ".join(sorted(t.__name__ for t in _BUILDERS))
    raise ValueError(
        f"no Gaussian hierarchy is registered for {type(model).__name__}; Gaussian agents support {known}"
    )


@register_hierarchy(HierGaussianModel)
def _hier_gaussian(model: HierGaussianModel, **options: Any) -> GaussianHierarchy:
    """HierTS eq. (2): units are tasks, ``A_u = I``, psi = mu*."""
    if options:
        raise ValueError(f"unknown options for HierGaussian models: {sorted(options)}")
    diagonal = model.action_set == "one_hot" and all(
        np.allclose(c, np.diag(np.diag(c))) for c in (model.hyper_cov, model.task_cov)
    )
    return GaussianHierarchy(
        num_units=model.num_tasks,
        hyper_mean=model.hyper_mean,
        hyper_cov=model.hyper_cov,
        unit_cov=model.task_cov,
        mixing=None,
        noise_var=model.noise_std**2,
        layout=TaskUnits(),
        truth=lambda instance: instance.hyper_param,
        diagonal=diagonal,
    )


@register_hierarchy(MixedEffectModel)
def _mixed_effect(model: MixedEffectModel, collapsed: bool = False) -> GaussianHierarchy:
    """meTS: units are actions, psi = stacked effects, ``A_i = b_i^T (x) I_d``.

    ``collapsed=True`` gives the single-effect hierarchy of the meTS paper's HierTS baseline: one
    shared effect with ``A_i = I``, prior mean ``mean_i sum_l b_il mu_l`` and covariance
    ``mean_i sum_l b_il^2 S_l`` (so the average marginal prior variance is kept, but every pair of
    actions is assumed equally correlated). Logistic models are handled as linear-Gaussian with the
    Bernoulli variance bound 1/4 as noise (the papers' "meTS-Lin").
    """
    d, weights = model.dim, model.mixing_weights
    noise_var = model.noise_std**2 if model.reward == "linear" else 0.25
    if collapsed:
        hyper_mean = (weights @ model.effect_mean).mean(0)
        hyper_cov = np.einsum("kl,lij->ij", weights**2, model.effect_cov) / model.num_actions
        mixing = None

        def truth(instance: Any) -> np.ndarray:
            return (weights @ instance.effects).mean(-2)
    else:
        hyper_mean = model.effect_mean.reshape(-1)
        hyper_cov = np.zeros((model.num_effects * d,) * 2)
        for l, cov in enumerate(model.effect_cov):
            hyper_cov[l * d : (l + 1) * d, l * d : (l + 1) * d] = cov
        mixing = np.einsum("kl,ij->kilj", weights, np.eye(d)).reshape(model.num_actions, d, -1)

        def truth(instance: Any) -> np.ndarray:
            effects = np.asarray(instance.effects)
            return effects.reshape(*effects.shape[:-2], -1)

    return GaussianHierarchy(
        num_units=model.num_actions,
        hyper_mean=hyper_mean,
        hyper_cov=hyper_cov,
        unit_cov=model.action_cov,
        mixing=mixing,
        noise_var=noise_var,
        layout=ActionUnits(model.num_actions),
        truth=truth,
    )


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
    #: per model type, options for its hierarchy builder (e.g. ``{MixedEffectModel: {"collapsed": True}}``)
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

    def _sync_mixing(self, obs: dict[str, torch.Tensor]) -> None:
        """Give the posterior the ``A_u`` the observation reveals (see :meth:`UnitLayout.mixing`);
        priors without mixing (e.g. the ridge prior of LinTS) ignore it."""
        mixing = self.layout.mixing(obs)
        if mixing is not None and getattr(self.posterior, "mixing", None) is not None:
            self.posterior.set_mixing(self.layout.unit_ids(obs)[..., 0], mixing)

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
        ids = self.layout.unit_ids(obs)
        features = self.layout.features(obs)
        if ids.shape[-1] == 1:
            chosen_ids = ids[..., 0]
        else:
            chosen_ids = ids.gather(-1, action[..., None])[..., 0]
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
        theta = self.posterior.sample_units(self._query(ids), hyper, self.generator, scale=scale)
        return torch.linalg.vecdot(features, self._per_slot(theta, ids))

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
