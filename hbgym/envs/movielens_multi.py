"""MovieLensMulti-v0: users as tasks, movies as actions, built from real MovieLens ratings
(HierOPO, Hong et al. 2023, Sec. 7.2), on the HierGaussian machinery."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
from gymnasium import spaces

from hbgym import rng
from hbgym.envs.core import MultiTaskBanditEnv, MultiTaskBanditVectorEnv
from hbgym.envs.hier_gaussian import HierGaussianSimulator, episode_parts, make_hier_gaussian_model
from hbgym.envs.limits import check_episode_memory, size_or_none
from hbgym.models import HierGaussianModel, MovieLensInstance, check_positive

#: stream words of this family (above 100, see hbgym.rng)
_USERS = 101


def feature_bound(factors: np.ndarray) -> float:
    """A finite observation bound covering every row of ``factors`` (max |entry|, rounded up)."""
    return float(np.ceil(np.abs(factors).max() * 100.0 + 1.0) / 100.0)


def regularized_cov(cov: np.ndarray, ridge: float) -> np.ndarray:
    """``cov + ridge * (tr(cov) / d) I``: a positive-definite version of an empirical covariance."""
    d = cov.shape[0]
    return cov + ridge * np.trace(cov) / d * np.eye(d)


class MovieLensMultiSimulator(HierGaussianSimulator):
    """Batched dynamics of :class:`MovieLensMultiEnv`: real users of one cluster as tasks.

    Reuses the HierGaussian schedule, reward noise and (through the base class) the info/regret
    machinery; only the instance (real user factors instead of Gaussian draws) and the action sets
    (random real movies) differ.

    Args:
        model: the public model.
        cluster_users: ``(N_c, d)`` factors of the users of the largest cluster (the task pool).
        movies: ``(N_movies, d)`` movie factors V (the action pool).
        centre: ``(d,)`` mu*, the centre of that cluster.
    """

    def __init__(
        self, model: HierGaussianModel, cluster_users: np.ndarray, movies: np.ndarray, centre: np.ndarray
    ) -> None:
        super().__init__(model)
        self.cluster_users = np.asarray(cluster_users, dtype=np.float64)
        self.movies = np.asarray(movies, dtype=np.float64)
        self.centre = np.asarray(centre, dtype=np.float64)
        self.bound = feature_bound(self.movies)

    def observation_space(self) -> spaces.Dict:
        m = self.model
        shape = (m.tasks_per_round, m.num_actions, m.dim)
        return spaces.Dict(
            {
                "task": spaces.MultiDiscrete(np.full(m.tasks_per_round, m.num_tasks, dtype=np.int64)),
                "features": spaces.Box(-self.bound, self.bound, shape=shape, dtype=np.float64),
            }
        )

    def sample_instance(self, keys: np.ndarray) -> MovieLensInstance:
        m, pool = self.model, len(self.cluster_users)
        scores = rng.uniform(keys[:, None], rng.STREAM_INSTANCE, _USERS, np.arange(pool)[None, :])
        users = np.argsort(scores, axis=1, kind="stable")[:, : m.num_tasks]  # m users w/o replacement
        hyper = np.broadcast_to(self.centre, (len(keys), m.dim)).copy()
        return MovieLensInstance(hyper, self.cluster_users[users], np.zeros((len(keys), 0, m.dim)), users)

    def observe(
        self, keys: np.ndarray, instance: MovieLensInstance, state: Any, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        m = self.model
        tasks = m.schedule.tasks(state, keys, t)  # (B, L)
        slot, k = rng.indexed((m.tasks_per_round, m.num_actions))
        u = rng.uniform(keys[:, None, None], rng.STREAM_ACTIONS, t, slot, k)  # (B, L, K)
        movie = np.minimum((u * len(self.movies)).astype(np.int64), len(self.movies) - 1)
        features = self.movies[movie]  # (B, L, K, d)
        theta = np.take_along_axis(instance.task_params, tasks[..., None], axis=1)  # (B, L, d)
        means = np.einsum("blkd,bld->blk", features, theta)
        return {"task": tasks, "features": features}, means


class MovieLensMultiEnv(MultiTaskBanditEnv):
    """Multi-user movie recommendation from real MovieLens ratings (Hong, Kveton, Katariya, Zaheer,
    Ghavamzadeh. Multi-task Off-policy Learning from Bandit Feedback. ICML 2023, Sec. 7.2), played
    online with the task schedules of HierGaussian-v0.

    ## Description
    Tasks are real users from one cluster of similar users; actions are movies. In each round every
    acting user is shown ``K`` movies drawn uniformly at random and the agent recommends one; the
    reward is the user's (noisy, model-completed) rating of it. Users of one cluster share a
    centre, so what is learnt about one user helps with the others (HierTS). The task parameters are
    the users' real ALS factors, not draws from a Gaussian: the Gaussian model published to agents
    is an estimate, and Gaussian agents are misspecified, as in reality.

    ## Data provenance and license
    MovieLens ratings by GroupLens Research (https://grouplens.org/datasets/movielens/), under the
    GroupLens usage license: research use only, no commercial use, no redistribution; cite F. M.
    Harper and J. A. Konstan, The MovieLens Datasets: History and Context, ACM TiiS 5(4), 2015.
    hbgym ships no ratings and nothing fitted on them. ``dataset="auto"`` (default) uses
    MovieLens 1M (the paper's data) when it is in a data directory, the cache or downloadable, and
    otherwise MovieLens 100K (last resort: the copy inside the ``recbole`` 1.2.1 wheel, installed
    with ``pip install --no-deps recbole==1.2.1``). See :mod:`hbgym.datasets` for the lookup order.
    ``env.unwrapped.model.source`` records the dataset, file, sha256, origin and fit parameters.

    ## Construction (once; cached by data checksum and parameters)
    1. Rank-``rank`` (10) factorisation ``M ~ U V^T`` of the rating matrix by regularised
       alternating least squares (weighted lambda ``reg=0.1``; deterministic under ``fit_seed``).
       The residual standard deviation is the reward noise ``sigma`` (0.762 on MovieLens 100K;
       the paper reports 0.759 on 1M).
    2. A Gaussian mixture with ``num_clusters`` (7) full-covariance components over the user
       factors (scikit-learn, ``random_state=fit_seed``).
    3. Hyper-prior ``N(mu_q, Sigma_q)``: the mean and the covariance of the cluster centres; as 7
       centres span at most 6 of the 10 dimensions, ``Sigma_q`` gets a ridge of ``hyper_ridge``
       (0.01) times its mean eigenvalue so that it is positive definite (our choice).
    4. Task prior: ``mu*`` and ``Sigma_0`` are the centre and covariance of the cluster with the most
       users (hard assignment); the tasks are users of that cluster.

    ## Generative model (per episode)
    ``m`` users drawn uniformly without replacement from the largest cluster; ``theta_i = U_i``
    (their real factors) and ``mu*`` = that cluster's centre. Each round and acting slot, ``K``
    movies are drawn uniformly (with replacement) from all rated movies, with features ``V_j``;
    reward ``Y ~ N(V_j^T U_i, sigma^2)``. Defaults: ``m=100`` (as in HierOPO), ``K=10``, ``d=10``,
    ``n=200`` interactions per user, ``L=5`` users per round, ``schedule="concurrent"``.

    ## Action Space
    ``MultiDiscrete([K] * L)``: one movie (index into this round's ``K`` movies) per acting user.

    ## Observation Space
    ``Dict``: ``"task"`` ``MultiDiscrete([m] * L)`` (acting users, task ids ``0..m-1``) and
    ``"features"`` ``Box(-b, b, (L, K, d), float64)``, the factors of the offered movies, with ``b``
    the largest absolute movie-factor entry.

    ## Rewards
    ``N(V_j^T U_i, sigma^2)`` per slot, noise a common random number of (round, slot, action); the
    env reward is the sum over slots, ``info["rewards"]`` the per-slot values.

    ## Regret
    ``info["regret"]`` = ``max_k V_k^T U_i - V_A^T U_i`` per slot (pseudo-regret over this round's
    ``K`` movies); averaging over resets estimates the Bayes regret over users of the cluster.

    ## Starting State
    ``reset`` samples the ``m`` users (instance stream) and the task schedule (schedule stream).

    ## Episode End
    ``terminated=True`` after ``m * n / L`` rounds; never truncated.

    ## Arguments
    * ``dataset`` (``"auto"``), ``data_dir`` (None), ``download`` (None: allowed unless
      ``HBGYM_OFFLINE`` is set): where the ratings come from (``"ml-100k"``, ``"ml-1m"``,
      ``"ml-latest-small"``, ``"ml-10m"``, ``"synthetic"`` or a path; see :mod:`hbgym.datasets`).
    * ``num_tasks`` (m, 100; at most the size of the largest cluster), ``num_actions`` (K, 10),
      ``horizon`` (n, 200), ``schedule``, ``tasks_per_round``, ``arrival_probs``: as in
      HierGaussian-v0.
    * ``sigma`` (None: the residual standard deviation of the fit).
    * ``rank`` (10), ``reg`` (0.1), ``num_clusters`` (7), ``fit_seed`` (0), ``hyper_ridge`` (0.01).
    * ``render_mode``: None (default), ``"rgb_array"`` or ``"ansi"`` (see :mod:`hbgym.envs.render`);
      ``max_memory_gib``: limit on the estimated memory of one episode (default
      ``$HBGYM_MAX_MEMORY_GIB`` or 4 GiB), above which construction raises ``ValueError`` with the
      estimate (see :mod:`hbgym.envs.limits`).

    ## Public model and truth
    ``env.unwrapped.model`` is a :class:`hbgym.models.HierGaussianModel` with ``action_set=
    "movielens"``, the estimated ``hyper_mean``, ``hyper_cov``, ``task_cov`` and ``source`` (data
    provenance, license, fit); ``env.unwrapped.instance`` a :class:`MovieLensInstance`.

    ## Vectorized environment
    :class:`MovieLensMultiVectorEnv` (``gym.make_vec("MovieLensMulti-v0", num_envs=B)``); slot ``i``
    reset with seed ``s + i`` equals the single env reset with seed ``s + i``.

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        dataset: str | os.PathLike = "auto",
        data_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        num_tasks: int = 100,
        num_actions: int = 10,
        horizon: int = 200,
        tasks_per_round: int | None = None,
        schedule: str = "concurrent",
        arrival_probs: Any = None,
        sigma: float | None = None,
        rank: int = 10,
        reg: float = 0.1,
        num_clusters: int = 7,
        fit_seed: int = 0,
        hyper_ridge: float = 0.01,
        render_mode: str | None = None,
        max_memory_gib: float | None = None,
    ) -> None:
        self.episode_bytes = check_episode_memory(
            f"MovieLensMulti (num_tasks={num_tasks}, horizon={horizon})",
            episode_parts(num_tasks, num_actions, rank if size_or_none(rank) else None,
                          horizon, tasks_per_round, schedule, "fixed"),
            max_memory_gib,
        )
        check_positive("rank", rank, integer=True)
        check_positive("reg", reg)
        check_positive("num_clusters", num_clusters, integer=True)
        check_positive("hyper_ridge", hyper_ridge, allow_zero=True)
        check_positive("num_tasks", num_tasks, integer=True)
        if sigma is not None:
            check_positive("sigma", sigma)
        from hbgym.datasets.movielens import fit_factorization, load_ratings

        ratings = load_ratings(dataset, data_dir=data_dir, download=download)
        fit = fit_factorization(ratings, rank=rank, reg=reg, seed=fit_seed)
        mixture, rows = fit.mixture("users", num_clusters, seed=fit_seed)
        members = rows[mixture.labels == 0]  # component 0 has the most users
        if num_tasks > len(members):
            raise ValueError(
                f"num_tasks={num_tasks} exceeds the {len(members)} users of the largest cluster of "
                f"{fit.source['dataset']}; choose num_tasks <= {len(members)}"
            )
        centres = mixture.means
        hyper_cov = regularized_cov(np.atleast_2d(np.cov(centres, rowvar=False)), hyper_ridge)
        model = make_hier_gaussian_model(
            num_tasks=num_tasks,
            num_actions=num_actions,
            dim=rank,
            horizon=horizon,
            tasks_per_round=tasks_per_round,
            schedule=schedule,
            arrival_probs=arrival_probs,
            sigma_q=hyper_cov,
            sigma_0=mixture.covariances[0],
            sigma=fit.sigma if sigma is None else sigma,
            hyper_mean=centres.mean(axis=0),
            action_set="resampled",
        )
        source = {
            **fit.source,
            "clusters": {"k": int(num_clusters), "seed": int(fit_seed), "sizes": mixture.counts.tolist(),
                         "task_cluster": 0, "hyper_ridge": float(hyper_ridge)},
            "num_movies": int(len(fit.item_factors)),
        }
        model = dataclasses.replace(model, action_set="movielens", source=source)
        simulator = MovieLensMultiSimulator(model, fit.user_factors[members], fit.item_factors, centres[0])
        super().__init__(simulator, render_mode=render_mode)


class MovieLensMultiVectorEnv(MultiTaskBanditVectorEnv):
    """Native vector version of :class:`MovieLensMultiEnv` (same keyword arguments plus ``num_envs``)."""

    env_class = MovieLensMultiEnv


__all__ = ["MovieLensInstance", "MovieLensMultiEnv", "MovieLensMultiSimulator", "MovieLensMultiVectorEnv"]
