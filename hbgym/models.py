"""Generative models: the public description of an environment (``env.unwrapped.model``) and the
sampled truth of one episode (``env.unwrapped.instance``).

A *model* is everything an agent may know: sizes, the schedule, the hyper-prior, the task-prior
covariance, noise scales, mixing weights. Agents are built from it (``HierTS.from_env(env)``).
An *instance* is the truth drawn at ``reset``: hyper-parameter, task parameters, effects. Only oracle
agents and tests read it.

Every family's public model and instance lives here (agents import this module, never an env
module): :class:`HierGaussianModel` serves HierGaussian-v0, MovieLensMulti-v0 and MNISTMulti-v0
(instances :class:`HierGaussianInstance`, :class:`MovieLensInstance`, :class:`MNISTInstance`);
:class:`MixedEffectModel` serves MixedEffect-v0 and MovieLensEffects-v0; :class:`MultiBanditModel`
serves MultiBandit-v0; :class:`PartialContextModel` (with its true :func:`conditional_prior`)
serves PartialContext-v0.

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
    "MovieLensInstance",
    "MNISTInstance",
    "MultiBanditModel",
    "MultiBanditInstance",
    "MTTSPrior",
    "PartialContextModel",
    "PartialContextInstance",
    "conditional_prior",
    "feature_map",
    "logistic",
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
    """What every multi-task bandit env publishes (the same names in every family).

    Attributes:
        num_tasks: m, number of tasks (units that own a parameter; 1 for single-task families).
        num_actions: K, actions per slot per round.
        tasks_per_round: L, slots per round (length of ``obs["task"]``).
        num_rounds: rounds per episode = ``env.step`` calls until ``terminated``.
        dim: d, the length of one parameter vector (a task's theta; an arm's beta in MultiBandit,
            whose ``"features"`` are ``K * d`` long).
        horizon: n, interactions per task (expected, under random arrival), not rounds: an
            episode has ``num_rounds = num_tasks * horizon / tasks_per_round`` rounds, e.g.
            ``HierGaussian-v0`` with ``horizon=5`` (m=10, L=5) runs 10 rounds.
        noise_std: sigma, the reward noise standard deviation (``(K,)`` per arm in MultiBandit).
    """

    num_tasks: int
    num_actions: int
    tasks_per_round: int
    num_rounds: int
    dim: int
    horizon: int
    noise_std: float | np.ndarray


@dataclass(frozen=True, eq=False)
class HierGaussianModel(BanditModel):
    """Two-level Gaussian linear bandit (HierTS paper eq. (2)).

    mu* ~ N(hyper_mean, hyper_cov); theta_s | mu* ~ N(mu*, task_cov); Y ~ N(x^T theta_s, noise_std^2).

    ``dim`` is ``K`` for one-hot action sets; for Bernoulli-reward data envs ``noise_std`` is the
    sigma Gaussian agents should assume, as the papers do.

    Attributes:
        hyper_mean: ``(d,)`` mu_q.
        hyper_cov: ``(d, d)`` Sigma_q.
        task_cov: ``(d, d)`` Sigma_0.
        action_set: ``"fixed"`` | ``"resampled"`` | ``"one_hot"`` | a data family's own name.
        schedule: the :class:`~hbgym.schedules.TaskSchedule`.
        reward: ``"gaussian"`` or ``"bernoulli"``.
        source: provenance of a data-built model (dataset name and checksum), else None.
    """

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

    One task (``num_tasks = 1``): the actions are the units, so ``horizon = num_rounds``;
    ``noise_std`` is used by the linear reward only.

    Attributes:
        num_effects: L_e, number of effects (not to be confused with slots per round, which is 1).
        effect_mean: ``(L_e, d)``.
        effect_cov: ``(L_e, d, d)``.
        mixing_weights: ``(K, L_e)`` b_i, known to agents, when they are fixed for every episode
            (``mixing_episode is None``); None when every episode draws its own weights.
        action_cov: ``(d, d)`` Sigma_{0,i}, shared by all actions.
        reward: ``"linear"`` or ``"logistic"``.
        source: provenance of a data-built model, else None.
        mixing_episode: None (weights fixed: ``mixing_weights``) or the distribution every episode
            draws its weights from (``"signed"``: ``b_il ~ U[-1, 1]``; ``"simplex"``: rows
            ~ Dirichlet(1)). Per-episode weights are public: each observation carries them under
            the key ``"mixing"`` ``(1, K, L_e)`` (and the instance under ``mixing_weights``).
    """

    num_effects: int
    effect_mean: np.ndarray
    effect_cov: np.ndarray
    mixing_weights: np.ndarray | None
    action_cov: np.ndarray
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


@dataclass(frozen=True, eq=False)
class MovieLensInstance(HierGaussianInstance):
    """Truth of one MovieLensMulti episode.

    Attributes:
        hyper_param: ``(d,)`` mu*, the centre of the largest user cluster (the same every episode).
        task_params: ``(m, d)`` the ALS factors U_i of the sampled users.
        action_features: ``(0, d)`` (movies are resampled every round).
        user_ids: ``(m,)`` row indices (into the factorisation) of the sampled users.
    """

    user_ids: np.ndarray


@dataclass(frozen=True, eq=False)
class MNISTInstance(HierGaussianInstance):
    """Truth of one MNISTMulti episode.

    Attributes:
        hyper_param: ``(d,)`` mu* of the positive digit (estimated on the training split).
        task_params: ``(m, d)`` theta_s: the linear probe of each task's image pool.
        action_features: ``(0, d)`` (images are resampled every round).
        pools: ``(m, P)`` indices (into the test split) of each task's images.
        digit: the positive class (scalar).
    """

    pools: np.ndarray
    digit: np.ndarray


# --------------------------------------------------------------------------- MultiBandit-v0


@dataclass(frozen=True, eq=False)
class MultiBanditModel(BanditModel):
    """Multi-bandit with arm-specific parameters (Jiang & Zhu, Sec. 3, eq. (3.1)).

    ``beta_k ~ N(hyper_mean_k, hyper_cov_k)``; ``beta_{s,k} = beta_k + delta_{s,k}`` with
    ``delta_{s,k} ~ N(0, task_cov_k)`` (``heterogeneity="gaussian"``) or a sparse deviation
    (``"sparse"``); ``Y = x^T beta_{s,k} + eps``, ``eps ~ N(0, noise_std_k^2)``.

    ``dim`` is the context dimension; ``horizon`` the expected interactions per instance under
    balanced arrival (``num_rounds = M * n``, the paper's T); ``noise_std`` is ``(K,)``: sigma_k,
    per-arm reward noise (heteroscedastic across arms).

    Attributes:
        hyper_mean: ``(K, d)`` prior mean of the shared arm parameters beta_k.
        hyper_cov: ``(K, d, d)`` prior covariance of beta_k.
        task_cov: ``(K, d, d)`` Sigma_k, the covariance of the instance deviations delta_{s,k}. For
            ``heterogeneity="sparse"`` it is the implied (second-moment) covariance
            ``sparsity / d * sparse_std^2 * I``; the deviations are then not Gaussian.
        arrival_probs: ``(M,)`` probabilities p_s that the arriving individual belongs to instance s.
        arrival: ``"balanced"``, ``"data_poor"`` or ``"custom"`` (explicit probabilities).
        context: ``"mixture"`` or ``"uniform"``.
        mixture_means, mixture_stds, mixture_weights: ``(C,)`` the element-wise context mixture.
        heterogeneity: ``"gaussian"`` or ``"sparse"``.
        sparsity: number of non-zero coordinates of each sparse deviation (``"sparse"`` only).
        sparse_std: standard deviation of the non-zero coordinates (``"sparse"`` only).
        features: whether observations carry ``"features"`` (disjoint-arm encoding) besides
            ``"context"``.
        schedule: the ``arrival`` :class:`~hbgym.schedules.TaskSchedule` (L = 1).
    """

    hyper_mean: np.ndarray
    hyper_cov: np.ndarray
    task_cov: np.ndarray
    arrival_probs: np.ndarray
    arrival: str
    context: str
    mixture_means: np.ndarray
    mixture_stds: np.ndarray
    mixture_weights: np.ndarray
    heterogeneity: str
    sparsity: int
    sparse_std: float
    features: bool
    schedule: TaskSchedule = field(repr=False)


@dataclass(frozen=True, eq=False)
class MultiBanditInstance:
    """Truth of one multi-bandit episode (leading batch dim ``B`` inside vector envs).

    Attributes:
        hyper_params: ``(K, d)`` the shared arm parameters beta_k.
        task_params: ``(M, K, d)`` the instance-specific arm parameters beta_{s,k}.
    """

    hyper_params: np.ndarray
    task_params: np.ndarray


# --------------------------------------------------------------------------- PartialContext-v0 (CoCo)

NUM_ACTIONS = 3
#: rho_a of the known feature map phi(x, a) = [rho_a x, 1] (App. C.3)
ARM_SLOPES = np.array([0.9, -1.1, 0.2])
#: App. C.1 component means mu^(1), mu^(2)
MIXTURE_MEANS = np.array([[1.8, 1.0, -1.0], [1.0, 1.9, -1.8]])
#: App. C.2 weight matrix W (K x 4), mu = W [x_o, x_c, x_d, 1]
PARTIAL_LINEAR_W = np.array(
    [[0.6, 0.1, 1.0, -0.9], [0.3, 0.3, -1.0, 0.9], [0.1, -0.2, -0.3, 0.1]]
)
#: App. C.2 latent continuous feature x_c ~ N(0.5, 0.1^2)
LATENT_MEAN, LATENT_STD = 0.5, 0.1
#: App. C.3 hyper-prior of theta and random-effect scale
THETA_MEAN, THETA_STD, DELTA_STD = 1.0, 0.5, 0.05


def logistic(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` element-wise, in exactly this form (PartialContext-v0's seeded truth uses it)."""
    return 1.0 / (1.0 + np.exp(-x))


def feature_map(x_obs: np.ndarray) -> np.ndarray:
    """The known MTTS feature map: ``x_obs`` ``(...)`` -> ``Phi`` ``(..., K, 2)`` rows ``[rho_a x, 1]``."""
    x = np.asarray(x_obs, dtype=np.float64)
    return np.stack([ARM_SLOPES * x[..., None], np.ones(x.shape + (NUM_ACTIONS,))], axis=-1)


@dataclass(frozen=True, eq=False)
class MTTSPrior:
    """The Gaussian linear mixed model MTTS assumes (Wan et al. 2021; CoCo App. C.3):
    ``mu_i = Phi_i theta + delta_i``, ``theta ~ N(mu_theta, Sigma_theta)``, ``delta_i ~ N(0, Sigma_delta)``.

    Attributes:
        mu_theta: ``(2,)`` = ``1_2``.
        Sigma_theta: ``(2, 2)`` = ``0.25 I``.
        Sigma_delta: ``(K, K)`` = ``0.05^2 I``.
    """

    mu_theta: np.ndarray
    Sigma_theta: np.ndarray
    Sigma_delta: np.ndarray


@dataclass(frozen=True, eq=False)
class PartialContextModel(BanditModel):
    """Public model of PartialContext-v0 (what agents may know).

    Tasks are users: ``horizon`` is ``steps_per_user`` (interactions per user), ``dim`` is 2, the
    length of ``phi(x, a) = [rho_a x, 1]``, and ``noise_std`` the reward noise. ``sigma`` and
    ``feature_dim`` are read-only aliases of ``noise_std`` and ``dim`` (kept for the CoCo agents).

    Attributes:
        batch_size: users recruited together; they act concurrently (= ``tasks_per_round``).
        num_batches: recruitment rounds; ``num_tasks = num_batches * batch_size``.
        steps_per_user: rounds each user acts before leaving.
        context_dim: 1, the observed context ``x_obs``.
        arm_slopes: ``(K,)`` rho.
        scenario: one of :data:`hbgym.envs.partial_context.SCENARIOS`.
        mtts_prior: the :class:`MTTSPrior` MTTS is given in every scenario (it is the true model
            only for ``"lmm"``).
        theta_per_user: lmm scenarios: each user draws its own theta (else one per episode).
    """

    batch_size: int
    num_batches: int
    steps_per_user: int
    context_dim: int
    arm_slopes: np.ndarray
    scenario: str
    mtts_prior: MTTSPrior = field(repr=False)
    theta_per_user: bool = False

    @property
    def sigma(self) -> float:
        """Read-only alias of ``noise_std``."""
        return self.noise_std

    @property
    def feature_dim(self) -> int:
        """Read-only alias of ``dim``."""
        return self.dim

    def users_in_round(self, t: int) -> np.ndarray:
        """User ids ``(L,)`` acting in round ``t``: batch ``t // steps_per_user``, in slot order."""
        if not 0 <= t < self.num_rounds:
            raise ValueError(f"round must be in [0, {self.num_rounds - 1}], got {t}")
        return (t // self.steps_per_user) * self.batch_size + np.arange(self.batch_size)


@dataclass(frozen=True, eq=False)
class PartialContextInstance:
    """Truth of one episode (leading batch dim ``B`` inside vector envs).

    Attributes:
        contexts: ``(n, D)`` full user contexts: ``D = 4`` ``[x_o, x_c, x_d, 1]`` for
            ``"partial_linear"``, else ``D = 1`` (``x_obs`` is the whole context).
        components: ``(n,)`` int, the latent mixture component of each user (``"mixture"``: j - 1;
            ``"partial_linear"``: x_d; ``"lmm_mixture"`` with ``theta_per_user``: the user's theta
            mode, 0 for -1 and 1 for +1; else 0).
        mu: ``(n, K)`` user mean rewards.
        theta: ``(2,)`` population fixed effect (lmm scenarios; ``(n, 2)`` one per user with
            ``theta_per_user``; ``(0,)`` otherwise).
        theta_component: int, the mode theta was drawn from (``"lmm_mixture"``: 0 for -1, 1 for +1;
            else 0).
    """

    contexts: np.ndarray
    components: np.ndarray
    mu: np.ndarray
    theta: np.ndarray
    theta_component: np.ndarray

    @property
    def x_obs(self) -> np.ndarray:
        """``(..., n)`` the observed context of each user."""
        return self.contexts[..., 0]


def conditional_prior(
    model: PartialContextModel, instance: PartialContextInstance | None, x_obs: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true conditional prior ``P*(mu | x_obs)`` of a user, a Gaussian mixture over ``R^K``.

    * ``"mixture"`` (App. C.1): weights ``[sigmoid(x), 1 - sigmoid(x)]``, means ``mu^(1), mu^(2)``,
      covariances ``(0.2 + 0.1 x)^2 I``.
    * ``"partial_linear"`` (App. C.2): component ``j = x_d in {0, 1}`` with weight
      ``[1 - sigmoid(x), sigmoid(x)]``, mean ``W [x, 0.5, j, 1]``, covariance
      ``0.1^2 w_c w_c^T`` (``w_c`` = column 2 of W): **rank one, singular** — consumers must use
      forms that do not invert it.
    * ``"lmm"`` / ``"lmm_mixture"`` (App. C.3): with ``instance`` given, the oracle knows the
      population draw theta: one component ``N(Phi(x) theta, 0.05^2 I)``. With ``instance=None``,
      the marginal over theta: ``"lmm"`` one component ``N(Phi 1_2, 0.25 Phi Phi^T + 0.05^2 I)``,
      ``"lmm_mixture"`` two equal-weight components with means ``-+Phi 1_2``. With
      ``model.theta_per_user`` this marginal is the true population prior and ``instance`` is
      ignored (knowing a user's own theta would be knowing its mu up to ``Sigma_delta``).

    Args:
        model: the public model (selects the scenario).
        instance: the episode's truth; needed only to condition lmm scenarios on theta. Its
            ``theta`` ``(*lead, 2)`` is broadcast against ``x_obs`` ``(*lead, n)`` (one trailing user
            axis; e.g. ``(B, 2)`` with ``(B, n)`` for a vector env's instance).
        x_obs: observed contexts, any shape ``(...)``.

    Returns:
        weights ``(..., C)``, means ``(..., C, K)``, covs ``(..., C, K, K)`` (float64).
    """
    x = np.asarray(x_obs, dtype=np.float64)
    K = NUM_ACTIONS
    eye = np.eye(K)
    if model.scenario == "mixture":
        v1 = logistic(x)
        weights = np.stack([v1, 1.0 - v1], axis=-1)
        means = np.broadcast_to(MIXTURE_MEANS, x.shape + (2, K)).copy()
        scale = (0.2 + 0.1 * x)[..., None, None, None] ** 2
        covs = scale * np.broadcast_to(eye, (2, K, K))
        return weights, means, covs
    if model.scenario == "partial_linear":
        p1 = logistic(x)
        weights = np.stack([1.0 - p1, p1], axis=-1)
        w = PARTIAL_LINEAR_W
        base = w[:, 0] * x[..., None] + w[:, 1] * LATENT_MEAN + w[:, 3]  # (..., K)
        means = np.stack([base, base + w[:, 2]], axis=-2)
        rank_one = LATENT_STD**2 * np.outer(w[:, 1], w[:, 1])
        covs = np.broadcast_to(rank_one, x.shape + (2, K, K)).copy()
        return weights, means, covs
    phi = feature_map(x)  # (..., K, 2)
    delta_cov = model.mtts_prior.Sigma_delta
    if instance is not None and not model.theta_per_user:
        theta = np.asarray(instance.theta, dtype=np.float64)
        if theta.shape[-1:] != (2,):
            raise ValueError(f"instance.theta must end with dimension 2, got shape {theta.shape}")
        theta = theta.reshape(theta.shape[:-1] + (1,) * (x.ndim - theta.ndim + 1) + (2,))
        means = np.einsum("...kd,...d->...k", phi, theta)[..., None, :]
        covs = np.broadcast_to(delta_cov, means.shape[:-1] + (K, K)).copy()
        return np.ones(means.shape[:-1]), means, covs
    centres = (-1.0, 1.0) if model.scenario == "lmm_mixture" else (THETA_MEAN,)
    spread = THETA_STD**2 * np.einsum("...kd,...jd->...kj", phi, phi) + delta_cov
    means = np.stack([c * phi.sum(axis=-1) for c in centres], axis=-2)
    covs = np.broadcast_to(spread[..., None, :, :], means.shape + (K,)).copy()
    weights = np.full(means.shape[:-1], 1.0 / len(centres))
    return weights, means, covs
