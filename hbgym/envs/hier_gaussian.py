"""HierGaussian-v0 and HierGaussianMAB-v0: the hierarchical Gaussian bandit of Hong et al. (2022)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from hbgym import rng
from hbgym.envs.core import BanditSimulator, MultiTaskBanditEnv, MultiTaskBanditVectorEnv, gaussian_rewards
from hbgym.envs.limits import F64, check_episode_memory, size_or_none
from hbgym.models import (
    HierGaussianInstance,
    HierGaussianModel,
    as_cov,
    check_positive,
    psd_factor,
)
from hbgym.schedules import TaskSchedule

ACTION_SETS = ("fixed", "resampled", "one_hot")


class HierGaussianSimulator(BanditSimulator):
    """Batched dynamics of the hierarchical Gaussian bandit (see :class:`HierGaussianEnv`)."""

    def __init__(self, model: HierGaussianModel) -> None:
        self.model = model
        self._hyper_factor = psd_factor(model.hyper_cov)
        self._task_factor = psd_factor(model.task_cov)

    def observation_space(self) -> spaces.Dict:
        m = self.model
        low, high = (0.0, 1.0) if m.action_set == "one_hot" else (-0.5, 0.5)
        shape = (m.tasks_per_round, m.num_actions, m.dim)
        return spaces.Dict(
            {
                "task": spaces.MultiDiscrete(np.full(m.tasks_per_round, m.num_tasks, dtype=np.int64)),
                "features": spaces.Box(low, high, shape=shape, dtype=np.float64),
            }
        )

    def sample_instance(self, keys: np.ndarray) -> HierGaussianInstance:
        m = self.model
        hyper = rng.multivariate_normal(keys, (rng.STREAM_INSTANCE, 0), m.hyper_mean, self._hyper_factor)
        deviations = rng.multivariate_normal(
            keys, (rng.STREAM_INSTANCE, 1), np.zeros(m.dim), self._task_factor, (m.num_tasks,)
        )
        if m.action_set == "fixed":
            k, j = rng.indexed((m.num_actions, m.dim))
            features = rng.uniform(keys[:, None, None], rng.STREAM_INSTANCE, 2, k, j) - 0.5
        else:
            features = np.zeros((len(keys), 0, m.dim))
        return HierGaussianInstance(hyper, hyper[:, None, :] + deviations, features)

    def prepare(self, keys: np.ndarray, instance: HierGaussianInstance) -> Any:
        return self.model.schedule.prepare(keys)

    def observe(
        self, keys: np.ndarray, instance: HierGaussianInstance, state: Any, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        m = self.model
        num_envs, width = len(keys), m.tasks_per_round
        tasks = self.blocks.get(
            "tasks", keys, t, num_envs * width, lambda ts: m.schedule.tasks(state, keys, ts)
        )  # (B, L)
        theta = instance.task_params[np.arange(num_envs)[:, None], tasks]  # (B, L, d)
        shape = (num_envs, width, m.num_actions, m.dim)
        if m.action_set == "one_hot":
            eye = np.eye(m.num_actions)
            features = self.blocks.constant("features", keys, lambda: np.broadcast_to(eye, shape))
            means = theta
        else:
            if m.action_set == "fixed":
                features = self.blocks.constant(
                    "features", keys, lambda: np.broadcast_to(instance.action_features[:, None], shape)
                )
            else:

                def block(ts: np.ndarray) -> np.ndarray:  # (B, T, L, K, d)
                    slot, k, j = rng.indexed(shape[1:])
                    key = keys[:, None, None, None, None]
                    return rng.uniform(key, rng.STREAM_ACTIONS, ts[None, :, None, None, None], slot, k, j)

                features = self.blocks.get("features", keys, t, math.prod(shape), block) - 0.5
            means = np.einsum("blkd,bld->blk", features, theta)
        return {"task": tasks, "features": features}, means

    def draw_rewards(
        self, keys: np.ndarray, t: int, actions: np.ndarray, means: np.ndarray
    ) -> np.ndarray:
        m = self.model
        return gaussian_rewards(keys, t, actions, means, m.noise_std, self.blocks, m.num_actions)


class HierGaussianEnv(MultiTaskBanditEnv):
    """Hierarchical Gaussian bandit: m similar linear bandit tasks whose parameters share an unknown
    hyper-parameter (Hong, Kveton, Zaheer, Ghavamzadeh. Hierarchical Bayesian Bandits. AISTATS 2022,
    Sec. 4.2 and Sec. 7).

    ## Description
    Each episode is one problem instance drawn from the hierarchical prior. In every round a set of
    ``L`` tasks acts (the schedule); the agent picks one of ``K`` actions for each acting task and
    observes a noisy linear reward. Information about one task is informative about all others
    through the shared hyper-parameter mu*, which is what hierarchical agents (HierTS) exploit.

    ## Generative model
    ``mu* ~ N(mu_q, Sigma_q)``; ``theta_s | mu* ~ N(mu*, Sigma_0)`` for each task ``s < m``;
    ``Y_{s,t} ~ N(x_{A_{s,t}}^T theta_s, sigma^2)``. Paper defaults: ``d=2``, ``K=10``, ``m=10``,
    ``n=200`` interactions per task, ``L=5``, ``mu_q=0``, ``Sigma_q = sigma_q^2 I`` with
    ``sigma_q=1`` (Fig. 2b; 0.5 in Fig. 2a), ``Sigma_0 = sigma_0^2 I`` with ``sigma_0=0.1``,
    ``sigma=0.5``. Action sets:

    * ``"fixed"``: ``K`` action vectors ~ U[-0.5, 0.5]^d drawn once per instance (Sec. 7).
    * ``"resampled"``: fresh U[-0.5, 0.5]^d action vectors for every slot of every round.
    * ``"one_hot"``: the K-armed Gaussian bandit of Sec. 4.1 / App. D; ``d = K`` and feature
      vectors are the standard basis, so ``theta_s`` holds the arm means.

    ## Defaults where the papers are silent (our choices)
    HierTS Sec. 7 states ``d``, ``K``, the action distribution, ``L``, ``n = 200 m / L`` with the
    random-permutation schedule, ``sigma_q``, ``sigma_0`` and ``sigma``. It does not state: the number
    of tasks ``m`` (ours 10), the hyper-prior mean ``mu_q`` (ours 0), whether the ``K`` action vectors
    are shared by all tasks (ours: one set per instance, shared) or redrawn per run (ours: per
    episode), nor the number of runs (ours: 100 in ``benchmarks/hierts_reproduction.py``, 50 in the
    ``paper`` suite). HierOPO Sec. 7.1 (``action_set="resampled"``, ``d=4``, ``K=5``, ``sigma_0=0.5``,
    ``m=10``) does not state ``mu_q`` (ours 0), how the task of a logged sample is chosen (ours:
    uniformly) nor how the policy value is integrated over contexts (ours: a fixed Monte Carlo sample
    of contexts per task, :func:`hbgym.offline.evaluation_contexts`).

    ## Action Space
    ``MultiDiscrete([K] * L)``: one action index per acting task (slot). With ``L == 1`` a scalar
    integer is also accepted.

    ## Observation Space
    ``Dict``:

    * ``"task"``: ``MultiDiscrete([m] * L)``, int64 ``(L,)`` — the tasks acting this round.
    * ``"features"``: ``Box(float64, (L, K, d))`` — the feature vector of each action for each slot.

    ## Rewards
    The step reward is the sum of the ``L`` realised rewards. ``info["rewards"]`` has them per slot.
    Reward noise is a common random number of (round, slot, action): two agents run with the same
    seed observe the same noise whenever they take the same action.

    ## Regret
    ``info["regret"]`` ``(L,)`` is the pseudo-regret ``max_a x_a^T theta_s - x_A^T theta_s`` of the
    chosen actions (expected gap, not realised noise); ``info["expected_rewards"]`` and
    ``info["optimal_actions"]`` give the chosen mean reward and the best action. Averaging the
    cumulative regret over resets estimates the Bayes regret BR(m, n).

    ## Starting State
    ``reset`` draws mu*, theta_1..theta_m (and the fixed action set) from the generative model and
    the task schedule from its own random stream.

    ## Episode End
    ``terminated=True`` after ``num_rounds = m * n / L`` rounds; never truncated.

    ## Arguments
    * ``num_tasks`` (m, 10), ``num_actions`` (K, 10), ``dim`` (d, 2; must equal K for one_hot, where
      it defaults to K), ``horizon`` (n, 200 interactions per task).
    * ``schedule``: ``"concurrent"`` (default; random permutation of the task list batched by L),
      ``"sequential"`` (L=1), ``"meta"`` (task after task, L=1), ``"arrival"`` (each slot's task
      i.i.d. from ``arrival_probs``). See :mod:`hbgym.schedules`.
    * ``tasks_per_round`` (L): default 5 for concurrent/arrival, 1 otherwise; ``m * n`` must be
      divisible by L.
    * ``arrival_probs``: ``(m,)`` probabilities for ``schedule="arrival"`` (uniform by default).
    * ``sigma_q`` (1.0) and ``sigma_0`` (0.1): a standard deviation (``Sigma = s^2 I``) or a
      ``(d, d)`` PSD covariance matrix; ``sigma`` (0.5) the reward noise standard deviation;
      ``hyper_mean`` mu_q (scalar or ``(d,)``, default 0).
    * ``action_set``: ``"fixed"`` | ``"resampled"`` | ``"one_hot"``.

    Invalid values raise ``ValueError`` naming the parameter (non-PSD covariance, ``sigma <= 0``,
    a schedule that does not divide, unknown schedule or action set, bad probabilities).
    * ``render_mode``: None (default), ``"rgb_array"`` or ``"ansi"`` (see :mod:`hbgym.envs.render`);
      ``max_memory_gib``: limit on the estimated memory of one episode (default
      ``$HBGYM_MAX_MEMORY_GIB`` or 4 GiB), above which construction raises ``ValueError`` with the
      estimate (see :mod:`hbgym.envs.limits`).

    ## Public model and truth
    ``env.unwrapped.model`` is a :class:`hbgym.models.HierGaussianModel` (everything above);
    ``env.unwrapped.instance`` a :class:`hbgym.models.HierGaussianInstance` (mu*, theta, actions).

    ## Vectorized environment
    ``gym.make_vec("HierGaussian-v0", num_envs=B)`` returns :class:`HierGaussianVectorEnv`, which
    simulates ``B`` instances with array operations; slot ``i`` reset with seed ``s + i`` equals the
    single env reset with seed ``s + i``.

    ## Example
    >>> import gymnasium as gym, hbgym
    >>> env = gym.make("HierGaussian-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs["task"].shape, obs["features"].shape
    ((5,), (5, 10, 2))
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> sorted(info)
    ['expected_rewards', 'optimal_actions', 'regret', 'rewards', 'round']

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        num_tasks: int = 10,
        num_actions: int = 10,
        dim: int | None = None,
        horizon: int = 200,
        tasks_per_round: int | None = None,
        schedule: str = "concurrent",
        arrival_probs: Any = None,
        sigma_q: Any = 1.0,
        sigma_0: Any = 0.1,
        sigma: float = 0.5,
        hyper_mean: Any = 0.0,
        action_set: str = "fixed",
        render_mode: str | None = None,
        max_memory_gib: float | None = None,
    ) -> None:
        self.episode_bytes = check_episode_memory(
            f"HierGaussian (num_tasks={num_tasks}, horizon={horizon}, dim={dim})",
            episode_parts(num_tasks, num_actions, dim, horizon, tasks_per_round, schedule, action_set),
            max_memory_gib,
        )
        model = make_hier_gaussian_model(
            num_tasks=num_tasks,
            num_actions=num_actions,
            dim=dim,
            horizon=horizon,
            tasks_per_round=tasks_per_round,
            schedule=schedule,
            arrival_probs=arrival_probs,
            sigma_q=sigma_q,
            sigma_0=sigma_0,
            sigma=sigma,
            hyper_mean=hyper_mean,
            action_set=action_set,
        )
        super().__init__(HierGaussianSimulator(model), render_mode=render_mode)


def episode_parts(
    num_tasks: Any, num_actions: Any, dim: Any, horizon: Any, tasks_per_round: Any, schedule: Any,
    action_set: Any,
) -> dict[str, float]:
    """Estimated bytes of one episode by part (see :mod:`hbgym.envs.limits`); raw arguments."""
    m, k, n = size_or_none(num_tasks) or 1, size_or_none(num_actions) or 1, size_or_none(horizon) or 1
    d = k if action_set == "one_hot" else size_or_none(dim) or 2
    width = size_or_none(tasks_per_round) or 5
    # the concurrent/sequential task list: uniform scores, argsort, task ids (m * n entries)
    listed = schedule in ("concurrent", "sequential")
    return {
        "covariances": 6 * d * d * F64,
        "instance": (2 * m * d + 3 * k * d) * F64,
        "schedule": 3.5 * m * n * F64 if listed else 0.0,
        "round": 4 * width * k * d * F64,
    }


class HierGaussianVectorEnv(MultiTaskBanditVectorEnv):
    """Native vector version of :class:`HierGaussianEnv` (same keyword arguments plus ``num_envs``)."""

    env_class = HierGaussianEnv


def make_schedule(
    schedule: str, num_tasks: int, horizon: int, tasks_per_round: int | None, arrival_probs: Any
) -> TaskSchedule:
    """A :class:`TaskSchedule` with the family default L (5 concurrent/arrival, 1 otherwise)."""
    if tasks_per_round is None:
        tasks_per_round = 5 if schedule in ("concurrent", "arrival") else 1
    return TaskSchedule(schedule, num_tasks, horizon, tasks_per_round, arrival_probs)


def make_hier_gaussian_model(
    *,
    num_tasks: int,
    num_actions: int,
    dim: int | None,
    horizon: int,
    tasks_per_round: int | None,
    schedule: str,
    arrival_probs: Any,
    sigma_q: Any,
    sigma_0: Any,
    sigma: float,
    hyper_mean: Any,
    action_set: str,
) -> HierGaussianModel:
    """Validate HierGaussian arguments and build the public model (errors name the parameter)."""
    if action_set not in ACTION_SETS:
        raise ValueError(f"action_set={action_set!r} is unknown; allowed: {', '.join(ACTION_SETS)}")
    check_positive("num_tasks", num_tasks, integer=True)
    check_positive("num_actions", num_actions, integer=True)
    check_positive("horizon", horizon, integer=True)
    check_positive("sigma", sigma)
    if action_set == "one_hot":
        if dim is not None and dim != num_actions:
            raise ValueError(f"action_set='one_hot' needs dim == num_actions ({num_actions}), got {dim}")
        dim = num_actions
    dim = 2 if dim is None else check_positive("dim", dim, integer=True)
    if num_actions < 2:
        raise ValueError(f"num_actions must be at least 2, got {num_actions}")
    sched = make_schedule(schedule, num_tasks, horizon, tasks_per_round, arrival_probs)
    mean = np.asarray(hyper_mean, dtype=np.float64)
    mean = np.full(dim, float(mean)) if mean.ndim == 0 else mean
    if mean.shape != (dim,) or not np.all(np.isfinite(mean)):
        raise ValueError(f"hyper_mean must be a finite scalar or a vector of length {dim}")
    return HierGaussianModel(
        num_tasks=num_tasks,
        num_actions=num_actions,
        tasks_per_round=sched.tasks_per_round,
        num_rounds=sched.num_rounds,
        dim=dim,
        horizon=horizon,
        noise_std=float(sigma),
        hyper_mean=mean,
        hyper_cov=as_cov("sigma_q", sigma_q, dim),
        task_cov=as_cov("sigma_0", sigma_0, dim),
        action_set=action_set,
        schedule=sched,
    )
