"""Generative models: the public description of an environment (``env.unwrapped.model``) and the
sampled truth of one episode (``env.unwrapped.instance``).

A *model* is everything an agent may know: sizes, the schedule, the hyper-prior, the task-prior
covariance, noise scales, mixing weights. Agents are built from it (``HierTS.from_env(env)``).
An *instance* is the truth drawn at ``reset``: hyper-parameter, task parameters, effects. Only oracle
agents and tests read it.

Models shared by several env families live here: :class:`HierGaussianModel` serves HierGaussian-v0,
MovieLensMulti-v0 and MNISTMulti-v0; :class:`MixedEffectModel` serves MixedEffect-v0 and
MovieLensEffects-v0. Family-specific models live in their env file.

Conventions: ``m`` tasks, ``K`` actions, ``d`` parameter dimension, ``L`` tasks (slots) per round.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hbgym.schedules import TaskSchedule

__all__ = [
    "BanditModel",
    "HierGaussianModel",
    "HierGaussianInstance",
    "MixedEffectModel",
    "MixedEffectInstance",
    "check_positive",
    "check_probabilities",
    "check_cov",
    "psd_factor",
    "as_cov",
    "take_slot",
]


# --------------------------------------------------------------------------- validation helpers


def check_positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> Any:
    """Return ``value`` if it is a positive (or non-negative) finite number, else raise ValueError."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "integer" if integer else "number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite {what} {bound}, got {value!r}")
    return value


def check_probabilities(name: str, probs: Any, size: int) -> np.ndarray:
    """Validate a probability vector of length ``size`` (non-negative, sums to 1)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (size,) or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must be {size} non-negative finite numbers, got {probs!r}")
    if not np.isclose(p.sum(), 1.0, atol=1e-8):
        raise ValueError(f"{name} must sum to 1, it sums to {p.sum():.6g}")
    return p / p.sum()


def check_cov(name: str, cov: Any, dim: int) -> np.ndarray:
    """Validate a ``(dim, dim)`` symmetric positive semi-definite covariance matrix."""
    c = np.asarray(cov, dtype=np.float64)
    if c.shape != (dim, dim) or not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must be a finite {dim}x{dim} matrix, got shape {c.shape}")
    if not np.allclose(c, c.T, atol=1e-10, rtol=1e-8):
        raise ValueError(f"{name} must be symmetric")
    eig = np.linalg.eigvalsh(c)
    if eig.min() < -1e-10 * max(1.0, abs(eig.max())):
        raise ValueError(
            f"{name} must be positive semi-definite; its smallest eigenvalue is {eig.min():.3g}"
        )
    return (c + c.T) / 2


def as_cov(name: str, value: Any, dim: int) -> np.ndarray:
    """A covariance given as a scalar standard deviation (``s -> s^2 I``) or as a matrix."""
    if np.ndim(value) == 0:
        value = value.item() if isinstance(value, np.ndarray) else value
        check_positive(name, value, allow_zero=True)
        return float(value) ** 2 * np.eye(dim)
    return check_cov(name, value, dim)


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """A square-root factor ``S`` with ``S S^T = cov`` (Cholesky, or eigen for singular PSD)."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0.0, None))


def take_slot(instance: Any, index: int) -> Any:
    """Slot ``index`` of a batched instance dataclass (every array field loses its leading dim)."""
    values = {}
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        values[f.name] = np.array(value[index]) if isinstance(value, np.ndarray) else value
    return dataclasses.replace(instance, **values)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, eq=False)
class BanditModel:
    """What every multi-task bandit env publishes.

    Attributes:
        num_tasks: m, number of tasks (units that own a parameter; 1 for single-task families).
        num_actions: K, actions per slot per round.
        tasks_per_round: L, slots per round (length of ``obs["task"]``).
        num_rounds: rounds per episode (steps until ``terminated``).
    """

    num_tasks: int
    num_actions: int
    tasks_per_round: int
    num_rounds: int


@dataclass(frozen=True, eq=False)
class HierGaussianModel(BanditModel):
    """Two-level Gaussian linear bandit (HierTS paper eq. (2)).

    mu* ~ N(hyper_mean, hyper_cov); theta_s | mu* ~ N(mu*, task_cov); Y ~ N(x^T theta_s, noise_std^2).

    Attributes:
        dim: d, feature dimension (``K`` for one-hot action sets).
        horizon: n, interactions per task.
        noise_std: sigma, the reward noise (for Bernoulli-reward data envs: the sigma Gaussian
            agents should assume, as the papers do).
        hyper_mean: ``(d,)`` mu_q.
        hyper_cov: ``(d, d)`` Sigma_q.
        task_cov: ``(d, d)`` Sigma_0.
        action_set: ``"fixed"`` | ``"resampled"`` | ``"one_hot"`` | a data family's own name.
        schedule: the :class:`~hbgym.schedules.TaskSchedule`.
        reward: ``"gaussian"`` or ``"bernoulli"``.
        source: provenance of a data-built model (dataset name and checksum), else None.
    """

    dim: int
    horizon: int
    noise_std: float
    hyper_mean: np.ndarray
    hyper_cov: np.ndarray
    task_cov: np.ndarray
    action_set: str
    schedule: TaskSchedule
    reward: str = "gaussian"
    source: dict | None = field(default=None)


@dataclass(frozen=True, eq=False)
class HierGaussianInstance:
    """Truth of one HierGaussian episode (leading batch dim ``B`` inside vector envs).

    Attributes:
        hyper_param: ``(d,)`` mu*.
        task_params: ``(m, d)`` theta_{s,*}.
        action_features: ``(K, d)`` the fixed action set (``fixed`` action sets; else ``(0, d)``).
    """

    hyper_param: np.ndarray
    task_params: np.ndarray
    action_features: np.ndarray


@dataclass(frozen=True, eq=False)
class MixedEffectModel(BanditModel):
    """Mixed-effect bandit (meTS poster, "Linear in effects"): actions are the units.

    psi_l ~ N(effect_mean_l, effect_cov_l) for l < num_effects; theta_i | psi ~ N(sum_l b_il psi_l,
    action_cov); Y_t ~ N(X_{t,A}^T theta_A, noise_std^2) or Bernoulli(sigmoid(X_{t,A}^T theta_A)).

    Attributes:
        dim: d.
        num_effects: L_e, number of effects (not to be confused with slots per round, which is 1).
        effect_mean: ``(L_e, d)``.
        effect_cov: ``(L_e, d, d)``.
        mixing_weights: ``(K, L_e)`` b_i, known to agents, when they are fixed for every episode
            (``mixing_episode is None``); None when every episode draws its own weights.
        action_cov: ``(d, d)`` Sigma_{0,i}, shared by all actions.
        noise_std: sigma (linear reward).
        reward: ``"linear"`` or ``"logistic"``.
        source: provenance of a data-built model, else None.
        mixing_episode: None (weights fixed: ``mixing_weights``) or the distribution every episode
            draws its weights from (``"signed"``: ``b_il ~ U[-1, 1]``; ``"simplex"``: rows
            ~ Dirichlet(1)). Per-episode weights are public: each observation carries them under
            the key ``"mixing"`` ``(1, K, L_e)`` (and the instance under ``mixing_weights``).
    """

    dim: int
    num_effects: int
    effect_mean: np.ndarray
    effect_cov: np.ndarray
    mixing_weights: np.ndarray | None
    action_cov: np.ndarray
    noise_std: float
    reward: str
    source: dict | None = field(default=None)
    mixing_episode: str | None = None


@dataclass(frozen=True, eq=False)
class MixedEffectInstance:
    """Truth of one mixed-effect episode.

    Attributes:
        effects: ``(L_e, d)`` psi_*.
        action_params: ``(K, d)`` theta_{*,i}.
        mixing_weights: ``(K, L_e)`` the episode's b_i (public: also in every observation).
    """

    effects: np.ndarray
    action_params: np.ndarray
    mixing_weights: np.ndarray | None = None
