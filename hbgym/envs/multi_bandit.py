"""MultiBandit-v0 and presets: the empirical-Bayes multi-bandit of Jiang & Zhu (ebmTS / ebmUCB)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from hbgym import rng
from hbgym.envs.core import BanditSimulator, MultiTaskBanditEnv, MultiTaskBanditVectorEnv, gaussian_rewards
from hbgym.envs.limits import F64, check_episode_memory, size_or_none
from hbgym.models import (
    MultiBanditInstance,
    MultiBanditModel,
    as_cov,
    check_positive,
    check_probabilities,
    psd_factor,
)
from hbgym.schedules import TaskSchedule

ARRIVALS = ("balanced", "data_poor")
CONTEXTS = ("mixture", "uniform")
HETEROGENEITY = ("gaussian", "sparse")

#: defaults of the element-wise Gaussian-mixture context (our choice: the paper's numbers were lost)
MIXTURE_MEANS = (-1.0, 1.0)
MIXTURE_STDS = (0.5, 0.5)
MIXTURE_WEIGHTS = (0.5, 0.5)

#: largest |z| that :func:`hbgym.rng.normal` can return (Box-Muller with u1 >= 2^-54)
NORMAL_BOUND = float(np.sqrt(-2.0 * np.log(2.0**-54)))

_TRUTH_HYPER, _TRUTH_DEVIATION, _TRUTH_SUPPORT = 0, 1, 2
_CONTEXT_COMPONENT, _CONTEXT_VALUE = 0, 1


# --------------------------------------------------------------------------- simulator


class MultiBanditSimulator(BanditSimulator):
    """Batched dynamics of the multi-bandit (see :class:`MultiBanditEnv`)."""

    def __init__(self, model: MultiBanditModel) -> None:
        self.model = model
        self._hyper_factors = np.stack([psd_factor(c) for c in model.hyper_cov])  # (K, d, d)
        self._task_factors = np.stack([psd_factor(c) for c in model.task_cov])  # (K, d, d)
        self._mixture_cdf = np.cumsum(model.mixture_weights)

    def observation_space(self) -> spaces.Dict:
        m = self.model
        if m.context == "uniform":
            low, high = -1.0, 1.0
        else:  # exact bounds: hbgym.rng's normal draws satisfy |z| <= NORMAL_BOUND
            high = float(np.max(np.abs(m.mixture_means) + m.mixture_stds * NORMAL_BOUND))
            low = -high
        space = {
            "task": spaces.MultiDiscrete(np.full(1, m.num_tasks, dtype=np.int64)),
            "context": spaces.Box(low, high, shape=(1, m.dim), dtype=np.float64),
        }
        if m.features:
            shape = (1, m.num_actions, m.num_actions * m.dim)
            space["features"] = spaces.Box(low, high, shape=shape, dtype=np.float64)
        return spaces.Dict(space)

    def sample_instance(self, keys: np.ndarray) -> MultiBanditInstance:
        m = self.model
        M, K, d = m.num_tasks, m.num_actions, m.dim
        k, j = rng.indexed((K, d))
        z = rng.normal(keys[:, None, None], rng.STREAM_INSTANCE, _TRUTH_HYPER, k, j)  # (B, K, d)
        hyper = m.hyper_mean + np.einsum("kij,bkj->bki", self._hyper_factors, z)
        s, k, j = rng.indexed((M, K, d))
        z = rng.normal(keys[:, None, None, None], rng.STREAM_INSTANCE, _TRUTH_DEVIATION, s, k, j)
        if m.heterogeneity == "gaussian":
            deviations = np.einsum("kij,bskj->bski", self._task_factors, z)  # (B, M, K, d)
        else:
            # support: the `sparsity` coordinates with the smallest uniform scores, per (s, k)
            scores = rng.uniform(keys[:, None, None, None], rng.STREAM_INSTANCE, _TRUTH_SUPPORT, s, k, j)
            ranks = np.argsort(np.argsort(scores, axis=-1, kind="stable"), axis=-1, kind="stable")
            deviations = np.where(ranks < m.sparsity, m.sparse_std * z, 0.0)
        return MultiBanditInstance(hyper, hyper[:, None] + deviations)

    def prepare(self, keys: np.ndarray, instance: MultiBanditInstance) -> Any:
        return self.model.schedule.prepare(keys)

    def contexts(self, keys: np.ndarray, t: int | np.ndarray) -> np.ndarray:
        """Round ``t``'s contexts ``(B, d)``: i.i.d. elements from the mixture or U[-1, 1].

        ``t`` may also be rounds ``(T,)``: then contexts ``(B, T, d)`` (the same numbers).
        """
        m = self.model
        if np.ndim(t):
            j = np.arange(m.dim)[None, None, :]
            key = keys[:, None, None]
            t = np.asarray(t)[None, :, None]
        else:
            j = np.arange(m.dim)[None, :]
            key = keys[:, None]
        if m.context == "uniform":
            return 2.0 * rng.uniform(key, rng.STREAM_CONTEXT, t, _CONTEXT_VALUE, j) - 1.0
        u = rng.uniform(key, rng.STREAM_CONTEXT, t, _CONTEXT_COMPONENT, j)
        comp = rng.categorical(u, m.mixture_weights)  # (B, d)
        z = rng.normal(key, rng.STREAM_CONTEXT, t, _CONTEXT_VALUE, j)
        return m.mixture_means[comp] + m.mixture_stds[comp] * z

    def observe(
        self, keys: np.ndarray, instance: MultiBanditInstance, state: Any, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        m = self.model
        tasks = self.blocks.get(
            "tasks", keys, t, len(keys) * m.tasks_per_round, lambda ts: m.schedule.tasks(state, keys, ts)
        )  # (B, 1)
        x = self.blocks.get("contexts", keys, t, len(keys) * m.dim, lambda ts: self.contexts(keys, ts))
        beta = instance.task_params[np.arange(len(keys)), tasks[:, 0]]  # (B, K, d)
        means = np.einsum("bkd,bd->bk", beta, x)[:, None]  # (B, 1, K)
        obs = {"task": tasks, "context": x[:, None]}
        if m.features:
            obs["features"] = disjoint_features(x, m.num_actions)[:, None]
        return obs, means

    def draw_rewards(
        self, keys: np.ndarray, t: int, actions: np.ndarray, means: np.ndarray
    ) -> np.ndarray:
        m = self.model
        return gaussian_rewards(keys, t, actions, means, m.noise_std[actions], self.blocks, m.num_actions)


def disjoint_features(x: np.ndarray, num_actions: int) -> np.ndarray:
    """Disjoint-arm features ``e_k (x) x``: contexts ``(B, d)`` -> ``(B, K, K * d)``.

    With these, ``x^T beta_{s,k} = phi_k^T vec(beta_{s,1..K})``: the multi-bandit is the
    hierarchical linear bandit of HierGaussian with parameter dimension ``K * d`` and block-diagonal
    covariances (DESIGN.md sec. 3).
    """
    eye = np.eye(num_actions)
    return np.einsum("kl,bd->bkld", eye, x).reshape(x.shape[0], num_actions, num_actions * x.shape[1])


# --------------------------------------------------------------------------- env


class MultiBanditEnv(MultiTaskBanditEnv):
    """Multi-bandit with arm-specific parameters shared through an arm-level prior (Jiang, Zhu.
    Empirical Bayesian Multi-Bandit Learning, 2025, Sec. 3 and Sec. 7.1; arrival settings after Xu &
    Bastani, Multitask Learning and Bandits via Robust Statistics, Management Science 2025).

    ## Description
    ``M`` related contextual bandit instances (e.g. users), each with the same ``K`` arms (e.g.
    movies). In every round one individual with a context ``x_t`` arrives at one instance ``s_t``
    (drawn from arrival probabilities ``p``); the agent pulls one arm and observes a noisy linear
    reward. Every arm of every instance has its own parameter vector ``beta_{s,k}``; arm ``k`` of all
    instances shares the centre ``beta_k`` and covariance ``Sigma_k``, so data on arm ``k`` in one
    instance is informative about arm ``k`` everywhere. ebmTS / ebmUCB learn ``Sigma_k`` and
    ``sigma_k`` by empirical Bayes; the data-poor setting tests whether a rarely visited instance
    profits from the others (cold start).

    ## Generative model
    ``beta_k ~ N(mu_k, Sigma_q)`` for each arm ``k < K`` (public hyper-prior: ``mu_k = 0``,
    ``Sigma_q = sigma_q^2 I``, ``sigma_q = 1``);
    ``beta_{s,k} = beta_k + delta_{s,k}`` for each instance ``s < M`` with

    * ``heterogeneity="gaussian"`` (the ebm model): ``delta_{s,k} ~ N(0, Sigma_k)``; default
      ``Sigma_k = tau^2 R``, ``R_ij = r^{|i-j|}`` (an AR(1) correlation: approximately sparse, the
      class Bickel & Levina's thresholding targets), ``tau = 0.5``, ``r = 0.5``;
    * ``heterogeneity="sparse"`` (Xu & Bastani's sparse heterogeneity; the ebm model is then
      misspecified): ``delta_{s,k}`` has exactly ``sparsity`` non-zero coordinates, chosen
      uniformly at random per (s, k), each ``N(0, sparse_std^2)``; ``model.task_cov`` then holds
      the implied covariance ``sparsity / d * sparse_std^2 * I``.

    Arrival: ``s_t ~ Categorical(p)`` i.i.d. per round: ``"balanced"`` ``p_s = 1/M``;
    ``"data_poor"`` ``p_0 = rare_prob`` (0.02) and ``p_s = (1 - p_0)/(M - 1)`` otherwise; or any
    explicit ``(M,)`` probability vector. Contexts ``x_t`` (dimension ``d``), i.i.d. per round:
    ``"mixture"`` — each element independently from the Gaussian mixture
    ``sum_c w_c N(m_c, s_c^2)`` (default ``0.5 N(-1, 0.5^2) + 0.5 N(1, 0.5^2)``); ``"uniform"`` — each
    element ~ U[-1, 1]. Reward ``Y_t = x_t^T beta_{s_t, A_t} + eps_t``,
    ``eps_t ~ N(0, sigma_{A_t}^2)`` (heteroscedastic: one ``sigma_k`` per arm; default 0.5 for all).
    Defaults: ``M = 10``, ``K = 5``, ``d = 5``, ``n = 200`` expected rounds per instance (``T = 2000``).
    The paper's own numbers were lost in extraction; these are our choices in its spirit.

    Defaults where the paper (as we have it) is silent, all ours: ``M = 10``, ``K = 5``, ``d = 5``,
    ``T = 2000``; ``beta_k ~ N(0, I)``; ``Sigma_k = 0.25 AR(1, 0.5)``; ``sigma_k = 0.5``; the mixture
    context ``0.5 N(-1, 0.5^2) + 0.5 N(1, 0.5^2)`` per element; data-poor ``p_0 = 0.02``; sparse
    heterogeneity with one non-zero coordinate ``N(0, 1)``. The paper states 100 seeds per experiment
    and ebmTS/ebmUCB's tuning constants (see :mod:`hbgym.agents.ebm`).

    ## Action Space
    ``MultiDiscrete([K])`` (one slot: the arriving individual); a scalar integer is also accepted.

    ## Observation Space
    ``Dict``:

    * ``"task"``: ``MultiDiscrete([M])``, int64 ``(1,)`` — the instance ``s_t`` the individual
      arrived at.
    * ``"context"``: ``Box(float64, (1, d))`` — ``x_t`` (bounds ``[-1, 1]`` for uniform contexts;
      for the mixture ``+-max_c(|m_c| + 8.66 s_c)``, exact because hbgym's normal draws are bounded
      by ``sqrt(108 ln 2) ~ 8.65``).
    * ``"features"`` (only with ``features=True``): ``Box(float64, (1, K, K * d))`` — the
      disjoint-arm encoding ``e_k (x) x_t`` of each arm, so that generic linear agents that read
      per-action feature vectors (and observation wrappers built for them) run unchanged; it is a
      function of the context, so family-aware agents ignore it.

    ## Rewards
    The realised reward of the pulled arm. Noise is a common random number of (round, slot, arm):
    agents run with the same seed see the same noise whenever they pull the same arm.

    ## Regret
    ``info["regret"]`` ``(1,)`` is the pseudo-regret ``max_k x_t^T beta_{s_t,k} - x_t^T
    beta_{s_t,A_t}`` (regret against the optimal policy that knows every ``beta_{s,k}``, the paper's
    Sec. 3 definition). The instance-specific regret of instance ``s`` is the sum over the rounds with
    ``obs["task"] == s``; averaging over resets gives the Bayes regret.

    ## Starting State
    ``reset`` draws ``beta_k`` and ``beta_{s,k}`` from the generative model; arrivals, contexts and
    noise come from their own random streams.

    ## Episode End
    ``terminated=True`` after ``num_rounds = M * n`` rounds; never truncated.

    ## Arguments
    * ``num_tasks`` (M, 10), ``num_actions`` (K, 5), ``dim`` (d, 5), ``horizon`` (n, 200: expected
      rounds per instance under balanced arrival; ``T = M * n``).
    * ``arrival``: ``"balanced"`` | ``"data_poor"`` | an ``(M,)`` probability vector;
      ``rare_prob`` (0.02): ``p_0`` of ``"data_poor"``, in ``(0, 1/M)``.
    * ``context``: ``"mixture"`` | ``"uniform"``; ``mixture_means``, ``mixture_stds``,
      ``mixture_weights``: the element-wise mixture components (defaults above).
    * ``sigma_q`` (1.0): prior of ``beta_k`` — a standard deviation or a ``(d, d)`` covariance;
      ``hyper_mean`` (0): scalar, ``(d,)`` or ``(K, d)``.
    * ``heterogeneity``: ``"gaussian"`` | ``"sparse"``.
    * ``task_std`` (0.5) and ``task_corr`` (0.5): ``Sigma_k = task_std^2 * R(task_corr)``; or pass
      ``task_cov``: a ``(d, d)`` or ``(K, d, d)`` PSD covariance (then ``task_std``/``task_corr``
      are ignored). Gaussian heterogeneity only.
    * ``sparsity`` (1) and ``sparse_std`` (1.0): sparse heterogeneity only.
    * ``sigma`` (0.5): reward noise — a scalar or ``(K,)`` per-arm standard deviations.
    * ``features`` (False): add the ``"features"`` observation key.

    Invalid values raise ``ValueError`` naming the parameter (non-PSD covariance, ``sigma <= 0``,
    unknown arrival / context / heterogeneity, bad probabilities, ``sparsity`` outside ``[1, d]``).
    * ``render_mode``: None (default), ``"rgb_array"`` or ``"ansi"`` (see :mod:`hbgym.envs.render`);
      ``max_memory_gib``: limit on the estimated memory of one episode (default
      ``$HBGYM_MAX_MEMORY_GIB`` or 4 GiB), above which construction raises ``ValueError`` with the
      estimate (see :mod:`hbgym.envs.limits`).

    ## Public model and truth
    ``env.unwrapped.model`` is a :class:`MultiBanditModel`: everything above, including the true
    ``task_cov`` and ``noise_std`` — empirical-Bayes agents (EbmTS, EbmUCB) deliberately do not read
    them but estimate them, oracle-covariance variants do. ``env.unwrapped.instance`` is a
    :class:`MultiBanditInstance` (``beta_k``, ``beta_{s,k}``).

    ## Vectorized environment
    ``gym.make_vec("MultiBandit-v0", num_envs=B)`` returns :class:`MultiBanditVectorEnv`, which
    simulates ``B`` instances with array operations; slot ``i`` reset with seed ``s + i`` equals the
    single env reset with seed ``s + i``.

    ## Example
    >>> import gymnasium as gym, hbgym
    >>> env = gym.make("MultiBandit-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs["task"].shape, obs["context"].shape
    ((1,), (1, 5))
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["regret"].shape
    (1,)

    ## Version History
    * v0: initial release. Presets: ``MultiBanditDataPoor-v0`` (``arrival="data_poor"``),
      ``MultiBanditSparse-v0`` (``heterogeneity="sparse"``), ``MultiBanditUniform-v0``
      (``context="uniform"``).
    """

    def __init__(
        self,
        num_tasks: int = 10,
        num_actions: int = 5,
        dim: int = 5,
        horizon: int = 200,
        arrival: Any = "balanced",
        rare_prob: float = 0.02,
        context: str = "mixture",
        mixture_means: Any = MIXTURE_MEANS,
        mixture_stds: Any = MIXTURE_STDS,
        mixture_weights: Any = MIXTURE_WEIGHTS,
        sigma_q: Any = 1.0,
        hyper_mean: Any = 0.0,
        heterogeneity: str = "gaussian",
        task_std: float = 0.5,
        task_corr: float = 0.5,
        task_cov: Any = None,
        sparsity: int = 1,
        sparse_std: float = 1.0,
        sigma: Any = 0.5,
        features: bool = False,
        render_mode: str | None = None,
        max_memory_gib: float | None = None,
    ) -> None:
        m, k, d = (size_or_none(v) or 1 for v in (num_tasks, num_actions, dim))
        self.episode_bytes = check_episode_memory(
            f"MultiBandit (num_tasks={num_tasks}, num_actions={num_actions}, dim={dim})",
            {
                "covariances": 4 * k * d * d * F64,
                "instance": 3 * m * k * d * F64,
                "arrival": 2 * m * F64,
                "round": (2 * k * k * d if features else 2 * k * d) * F64,
            },
            max_memory_gib,
        )
        model = make_multi_bandit_model(
            num_tasks=num_tasks,
            num_actions=num_actions,
            dim=dim,
            horizon=horizon,
            arrival=arrival,
            rare_prob=rare_prob,
            context=context,
            mixture_means=mixture_means,
            mixture_stds=mixture_stds,
            mixture_weights=mixture_weights,
            sigma_q=sigma_q,
            hyper_mean=hyper_mean,
            heterogeneity=heterogeneity,
            task_std=task_std,
            task_corr=task_corr,
            task_cov=task_cov,
            sparsity=sparsity,
            sparse_std=sparse_std,
            sigma=sigma,
            features=features,
        )
        super().__init__(MultiBanditSimulator(model), render_mode=render_mode)


class MultiBanditVectorEnv(MultiTaskBanditVectorEnv):
    """Native vector version of :class:`MultiBanditEnv` (same keyword arguments plus ``num_envs``)."""

    env_class = MultiBanditEnv


# --------------------------------------------------------------------------- validation


def ar1_correlation(dim: int, corr: float) -> np.ndarray:
    """``(d, d)`` AR(1) correlation matrix ``R_ij = corr^{|i - j|}``."""
    idx = np.arange(dim)
    return corr ** np.abs(idx[:, None] - idx[None, :]).astype(np.float64)


def _per_arm_covs(name: str, value: Any, num_actions: int, dim: int) -> np.ndarray:
    """A scalar std, ``(d, d)`` or ``(K, d, d)`` covariance -> ``(K, d, d)`` validated covariances."""
    if np.ndim(value) == 3:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape[0] != num_actions:
            raise ValueError(f"{name} as per-arm covariances must have shape ({num_actions}, {dim}, {dim}), "
                             f"got {arr.shape}")
        return np.stack([as_cov(f"{name}[{k}]", c, dim) for k, c in enumerate(arr)])
    return np.repeat(as_cov(name, value, dim)[None], num_actions, axis=0)


def _arrival_probs(arrival: Any, rare_prob: float, num_tasks: int) -> tuple[np.ndarray, str]:
    if isinstance(arrival, str):
        if arrival == "balanced":
            return np.full(num_tasks, 1.0 / num_tasks), arrival
        if arrival == "data_poor":
            if num_tasks < 2:
                raise ValueError(f"arrival='data_poor' needs num_tasks >= 2, got {num_tasks}")
            check_positive("rare_prob", rare_prob)
            if not rare_prob < 1.0 / num_tasks:
                raise ValueError(
                    f"rare_prob must be in (0, 1/num_tasks) = (0, {1.0 / num_tasks:.4g}) so that "
                    f"instance 0 is rarer than the others, got {rare_prob!r}"
                )
            probs = np.full(num_tasks, (1.0 - rare_prob) / (num_tasks - 1))
            probs[0] = rare_prob
            return probs, arrival
        raise ValueError(
            f"arrival={arrival!r} is unknown; allowed: {', '.join(ARRIVALS)} or {num_tasks} probabilities"
        )
    return check_probabilities("arrival", arrival, num_tasks), "custom"


def _vector(name: str, value: Any, size: int, *, positive: bool) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    arr = np.full(size, float(arr)) if arr.ndim == 0 else arr
    if arr.shape != (size,) or not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        what = "positive finite" if positive else "finite"
        raise ValueError(f"{name} must be a {what} scalar or {size} {what} numbers, got {value!r}")
    return arr


def make_multi_bandit_model(
    *,
    num_tasks: int,
    num_actions: int,
    dim: int,
    horizon: int,
    arrival: Any,
    rare_prob: float,
    context: str,
    mixture_means: Any,
    mixture_stds: Any,
    mixture_weights: Any,
    sigma_q: Any,
    hyper_mean: Any,
    heterogeneity: str,
    task_std: float,
    task_corr: float,
    task_cov: Any,
    sparsity: int,
    sparse_std: float,
    sigma: Any,
    features: bool,
) -> MultiBanditModel:
    """Validate MultiBandit arguments and build the public model (errors name the parameter)."""
    check_positive("num_tasks", num_tasks, integer=True)
    check_positive("num_actions", num_actions, integer=True)
    check_positive("dim", dim, integer=True)
    check_positive("horizon", horizon, integer=True)
    if num_actions < 2:
        raise ValueError(f"num_actions must be at least 2, got {num_actions}")
    if context not in CONTEXTS:
        raise ValueError(f"context={context!r} is unknown; allowed: {', '.join(CONTEXTS)}")
    if heterogeneity not in HETEROGENEITY:
        raise ValueError(f"heterogeneity={heterogeneity!r} is unknown; allowed: {', '.join(HETEROGENEITY)}")
    if not isinstance(features, (bool, np.bool_)):
        raise ValueError(f"features must be True or False, got {features!r}")
    K, d = num_actions, dim
    probs, arrival_kind = _arrival_probs(arrival, rare_prob, num_tasks)

    means = np.atleast_1d(np.asarray(mixture_means, dtype=np.float64))
    num_comp = means.shape[0] if means.ndim == 1 else -1
    if num_comp < 1 or not np.all(np.isfinite(means)):
        raise ValueError(f"mixture_means must be a non-empty finite 1-d sequence, got {mixture_means!r}")
    stds = _vector("mixture_stds", mixture_stds, num_comp, positive=True)
    weights = check_probabilities("mixture_weights", mixture_weights, num_comp)

    mean = np.asarray(hyper_mean, dtype=np.float64)
    if mean.ndim == 0:
        mean = np.full((K, d), float(mean))
    elif mean.shape == (d,):
        mean = np.repeat(mean[None], K, axis=0)
    if mean.shape != (K, d) or not np.all(np.isfinite(mean)):
        raise ValueError(f"hyper_mean must be a finite scalar, ({d},) or ({K}, {d}) array, got shape "
                         f"{np.shape(hyper_mean)}")
    hyper_cov = _per_arm_covs("sigma_q", sigma_q, K, d)
    noise = _vector("sigma", sigma, K, positive=True)

    check_positive("sparse_std", sparse_std)
    check_positive("sparsity", sparsity, integer=True)
    if sparsity > d:
        raise ValueError(f"sparsity must be in [1, dim] = [1, {d}], got {sparsity}")
    if heterogeneity == "gaussian":
        if task_cov is None:
            check_positive("task_std", task_std, allow_zero=True)
            corr_ok = isinstance(task_corr, (int, float, np.integer, np.floating)) and -1 < task_corr < 1
            if not corr_ok:
                raise ValueError(f"task_corr must be a number in (-1, 1), got {task_corr!r}")
            task_cov = float(task_std) ** 2 * ar1_correlation(d, float(task_corr))
        cov = _per_arm_covs("task_cov", task_cov, K, d)
    else:
        if task_cov is not None:
            raise ValueError("task_cov is only used with heterogeneity='gaussian'; "
                             "use sparsity and sparse_std for heterogeneity='sparse'")
        cov = np.repeat((sparsity / d * float(sparse_std) ** 2 * np.eye(d))[None], K, axis=0)

    schedule = TaskSchedule("arrival", num_tasks, horizon, 1, probs)
    return MultiBanditModel(
        num_tasks=num_tasks,
        num_actions=K,
        tasks_per_round=1,
        num_rounds=schedule.num_rounds,
        dim=d,
        horizon=horizon,
        hyper_mean=mean,
        hyper_cov=hyper_cov,
        task_cov=cov,
        noise_std=noise,
        arrival_probs=probs,
        arrival=arrival_kind,
        context=context,
        mixture_means=means,
        mixture_stds=stds,
        mixture_weights=weights,
        heterogeneity=heterogeneity,
        sparsity=int(sparsity),
        sparse_std=float(sparse_std),
        features=bool(features),
        schedule=schedule,
    )


__all__ = [
    "MultiBanditEnv",
    "MultiBanditInstance",
    "MultiBanditModel",
    "MultiBanditSimulator",
    "MultiBanditVectorEnv",
    "ar1_correlation",
    "disjoint_features",
    "make_multi_bandit_model",
]
