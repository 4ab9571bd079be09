"""Model -> prior-hierarchy builders: the one home of the :class:`GaussianHierarchy` an agent assumes
for each env family's public model (:mod:`hbgym.models`), and of the unit layouts that map
observations onto posterior units.

* HierGaussian (HierTS eq. (2)): units are tasks, ``A_u = I``, psi = mu*.
* MixedEffect (meTS): units are actions, psi = stacked effects, ``A_i = b_i^T (x) I_d``, read from
  the observation when the env draws weights per episode (``collapsed="paper"``: the single-effect
  HierTS baseline as the meTS authors built it).
* PartialContext (MTTS's Gaussian LMM, CoCo App. C.3): units are users, ``A_u = Phi_u`` revealed
  online by the observation.

:func:`hierarchy_for` looks a model's builder up along its class hierarchy; other families register
theirs with :func:`register_hierarchy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from hbgym.models import HierGaussianModel, MixedEffectModel, PartialContextModel

__all__ = [
    "ActionUnits",
    "GaussianHierarchy",
    "LMMUserUnits",
    "MixedEffectUnits",
    "OneHotUserUnits",
    "TaskUnits",
    "UnitLayout",
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

    def mixing_source(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The observation entry that :meth:`mixing` is a function of (None when the prior fixes
        ``A_u``): policies rebuild ``A_u`` only when it (or :meth:`mixing_units`) changes."""
        return None

    def mixing(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``A_u`` ``(B, n, d, D)`` of units :meth:`mixing_units` when it is revealed by the observation
        (units met over time, e.g. MTTS users with design ``Phi_u``; per-episode meTS weights);
        None when the prior fixes it."""
        return None

    def mixing_units(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit ids ``(B, n)`` whose ``A_u`` :meth:`mixing` returns (default: each slot's acting task)."""
        return self.unit_ids(obs)[..., 0]


class TaskUnits(UnitLayout):
    """Units are tasks: every action of slot ``l`` is scored with the parameter of task ``task[l]``."""

    def unit_ids(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["task"][..., None]


class ActionUnits(UnitLayout):
    """Units are actions: action ``k`` has its own parameter (the meTS model); one slot per round."""

    all_units = True

    def __init__(self, num_actions: int) -> None:
        self.num_actions = num_actions
        self._ids: torch.Tensor | None = None  # arange(K), built once per device

    def unit_ids(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        task = obs["task"]
        ids = self._ids
        if ids is None or ids.device != task.device:
            ids = self._ids = torch.arange(self.num_actions, device=task.device)
        return ids.expand(*task.shape, self.num_actions)


class MixedEffectUnits(ActionUnits):
    """Action units whose mixing matrices ``A_i = b_i^T (x) I_d`` come from the observation's
    ``"mixing"`` key ``(B, 1, K, L_e)`` (MixedEffect-v0 reveals each episode's weights there)."""

    def __init__(self, num_actions: int, dim: int) -> None:
        super().__init__(num_actions)
        self.dim = dim

    def mixing_source(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return obs.get("mixing")  # None e.g. on MovieLensEffects-v0: the model fixes the weights

    def mixing(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        weights = self.mixing_source(obs)
        if weights is None:
            return None
        eye = torch.eye(self.dim, dtype=weights.dtype, device=weights.device)
        a = torch.einsum("bkl,ij->bkilj", weights[:, 0], eye)  # (B, K, d, L_e, d)
        return a.reshape(*a.shape[:3], -1)

    def mixing_units(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.unit_ids(obs)[:, 0]


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
        marginal_online: True for a flat prior (:meth:`flattened`) whose per-unit covariance
            ``S0_u + A_u S_psi A_u^T`` is set once ``A_u`` is revealed.
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
    marginal_online: bool = False

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
        """The same marginal prior per unit with the hierarchy removed (the papers' "TS" baseline).

        With ``online_mixing`` the marginal covariance ``S0_u + A_u S_psi A_u^T`` is only known once
        ``A_u`` is revealed: the flat hierarchy has ``marginal_online`` and ``unit_cov`` is a
        placeholder that :meth:`marginal_unit_cov_given` replaces (zero prior mean required).
        """
        if not self.online_mixing:
            return replace(self, unit_cov=self.marginal_unit_cov(), diagonal=False)
        if np.any(self.hyper_mean != 0):
            raise ValueError("a flat prior with mixing matrices revealed online needs a zero hyper mean "
                             f"(the per-unit prior means A_u mu would differ), got {self.hyper_mean}")
        d = self.unit_cov.shape[-1]
        return replace(self, hyper_mean=np.zeros(d), hyper_cov=np.eye(d), mixing=None, diagonal=False,
                       marginal_online=True)

    def marginal_unit_cov_given(self, mixing: torch.Tensor) -> torch.Tensor:
        """``S0_u + A_u S_psi A_u^T`` ``(B, n, d, d)`` for revealed ``A_u`` ``mixing`` ``(B, n, d, D)``."""
        like = {"dtype": mixing.dtype, "device": mixing.device}
        unit_cov = torch.as_tensor(self.unit_cov, **like)
        hyper_cov = torch.as_tensor(self.hyper_cov, **like)
        return unit_cov + mixing @ hyper_cov @ mixing.transpose(-1, -2)


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
def _mixed_effect(model: MixedEffectModel, collapsed: str | None = None) -> GaussianHierarchy:
    """meTS (poster, "Closed-form posteriors"): units are actions, psi = stacked effects,
    ``A_i = b_i^T (x) I_d``. Per-episode weights (``model.mixing_weights is None``) are read from
    each observation (``online_mixing``; zeros until the first observation).

    ``collapsed`` gives the single-effect hierarchy of the meTS paper's HierTS baseline (``A_i = I``):

    * ``"paper"`` - as the meTS authors built it: ``psi ~ N(mean_l mu_l, (1/L_e^2) sum_l S_l)`` and
      ``theta_i | psi ~ N(psi, S_0)``; it ignores the mixing weights;
    * ``"weighted"`` - our earlier prior: mean ``mean_i sum_l b_il mu_l`` and covariance
      ``mean_i sum_l b_il^2 S_l`` (keeps the average marginal prior variance; needs fixed weights).

    Logistic models are handled as linear-Gaussian with the Bernoulli variance bound 1/4 as noise
    (the papers' "meTS-Lin").
    """
    d, weights = model.dim, model.mixing_weights
    noise_var = model.noise_std**2 if model.reward == "linear" else 0.25
    online = False
    if collapsed == "paper":
        hyper_mean = model.effect_mean.mean(0)
        hyper_cov = model.effect_cov.sum(0) / model.num_effects**2
        mixing = None

        def truth(instance: Any) -> np.ndarray:
            return np.asarray(instance.effects).mean(-2)
    elif collapsed == "weighted":
        if weights is None:
            raise ValueError('collapsed="weighted" needs mixing weights fixed in the model '
                             '(mixing_seed=...); this env draws them per episode: use collapsed="paper"')
        hyper_mean = (weights @ model.effect_mean).mean(0)
        hyper_cov = np.einsum("kl,lij->ij", weights**2, model.effect_cov) / model.num_actions
        mixing = None

        def truth(instance: Any) -> np.ndarray:
            return (weights @ instance.effects).mean(-2)
    elif collapsed is None:
        hyper_mean = model.effect_mean.reshape(-1)
        hyper_cov = np.zeros((model.num_effects * d,) * 2)
        for l, cov in enumerate(model.effect_cov):
            hyper_cov[l * d : (l + 1) * d, l * d : (l + 1) * d] = cov
        online = weights is None
        b = np.zeros((model.num_actions, model.num_effects)) if online else weights
        mixing = np.einsum("kl,ij->kilj", b, np.eye(d)).reshape(model.num_actions, d, -1)

        def truth(instance: Any) -> np.ndarray:
            effects = np.asarray(instance.effects)
            return effects.reshape(*effects.shape[:-2], -1)
    else:
        raise ValueError(f'collapsed={collapsed!r} is unknown; allowed: None, "paper", "weighted"')

    return GaussianHierarchy(
        num_units=model.num_actions,
        hyper_mean=hyper_mean,
        hyper_cov=hyper_cov,
        unit_cov=model.action_cov,
        mixing=mixing,
        noise_var=noise_var,
        layout=MixedEffectUnits(model.num_actions, d),
        truth=truth,
        online_mixing=online,
    )


# --------------------------------------------------------------------------- PartialContext (MTTS)


class OneHotUserUnits(TaskUnits):
    """Units are users; arm ``a`` of a user is read through the one-hot feature ``e_a`` ``(B, L, K, K)``."""

    def __init__(self, num_actions: int) -> None:
        self.num_actions = num_actions

    def features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        task = obs["task"]
        eye = torch.eye(self.num_actions, dtype=obs["features"].dtype, device=task.device)
        return eye.expand(*task.shape, self.num_actions, self.num_actions)


class LMMUserUnits(OneHotUserUnits):
    """As :class:`OneHotUserUnits`, and the observation reveals ``A_u = Phi_u`` ``(B, L, K, 2)``."""

    def mixing_source(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["features"]

    def mixing(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["features"]


@register_hierarchy(PartialContextModel)
def _partial_context(model: PartialContextModel, **options: Any) -> GaussianHierarchy:
    """MTTS's Gaussian LMM (Wan et al. 2021; see :mod:`hbgym.agents.coco_baselines`); the ``A_u``
    placeholders are filled online."""
    if options:
        raise ValueError(f"unknown options for PartialContext models: {sorted(options)}")
    prior, K = model.mtts_prior, model.num_actions
    return GaussianHierarchy(
        num_units=model.num_tasks,
        hyper_mean=prior.mu_theta,
        hyper_cov=prior.Sigma_theta,
        unit_cov=prior.Sigma_delta,
        mixing=np.zeros((model.num_tasks, K, model.feature_dim)),
        noise_var=model.sigma**2,
        layout=LMMUserUnits(K),
        truth=lambda instance: instance.theta,
        online_mixing=True,
    )
