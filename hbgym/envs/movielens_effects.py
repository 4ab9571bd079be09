"""MovieLensEffects-v0: movies as actions whose factors mix a few cluster effects, users as
contexts (meTS poster, Aouali et al. 2023, "Proxy Structure from Offline Embeddings"), on the
MixedEffect machinery."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces

from hbgym import rng
from hbgym.envs.core import MultiTaskBanditEnv, MultiTaskBanditVectorEnv
from hbgym.envs.limits import check_episode_memory
from hbgym.envs.mixed_effect import REWARDS, MixedEffectSimulator, episode_parts, sigmoid
from hbgym.envs.movielens_multi import feature_bound
from hbgym.models import MixedEffectInstance, MixedEffectModel, as_cov, check_positive


class MovieLensEffectsSimulator(MixedEffectSimulator):
    """Batched dynamics of :class:`MovieLensEffectsEnv`.

    The instance is the same real one in every episode (movie factors; the proxy effects are the
    cluster centres); episodes differ in the sequence of arriving users and in the reward noise.
    Reward draws (Gaussian / Bernoulli, common random numbers) are MixedEffect's.

    Args:
        model: the public model.
        movies: ``(K, d)`` factors of the K movies (the action parameters).
        users: ``(N_users, d)`` user factors (contexts arrive uniformly from these).
    """

    def __init__(self, model: MixedEffectModel, movies: np.ndarray, users: np.ndarray) -> None:
        super().__init__(model)
        self.movies = np.asarray(movies, dtype=np.float64)
        self.users = np.asarray(users, dtype=np.float64)
        self.bound = feature_bound(self.users)

    def observation_space(self) -> spaces.Dict:
        m = self.model
        return spaces.Dict(
            {
                "task": spaces.MultiDiscrete(np.ones(1, dtype=np.int64)),
                "features": spaces.Box(-self.bound, self.bound, shape=(1, m.num_actions, m.dim),
                                       dtype=np.float64),
            }
        )

    def sample_instance(self, keys: np.ndarray) -> MixedEffectInstance:
        m, num_envs = self.model, len(keys)
        effects = np.broadcast_to(m.effect_mean, (num_envs, *m.effect_mean.shape)).copy()
        params = np.broadcast_to(self.movies, (num_envs, *self.movies.shape)).copy()
        return MixedEffectInstance(effects, params)

    def observe(
        self, keys: np.ndarray, instance: MixedEffectInstance, state: Any, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        m = self.model
        u = rng.uniform(keys, rng.STREAM_CONTEXT, t)  # (B,)
        user = np.minimum((u * len(self.users)).astype(np.int64), len(self.users) - 1)
        context = self.users[user]  # (B, d): X_{t,i} = U_user for every movie i
        features = np.broadcast_to(context[:, None, None, :], (len(keys), 1, m.num_actions, m.dim)).copy()
        logits = np.einsum("bd,bkd->bk", context, instance.action_params)
        means = logits if m.reward == "linear" else sigmoid(logits)
        return {"task": np.zeros((len(keys), 1), dtype=np.int64), "features": features}, means[:, None]


class MovieLensEffectsEnv(MultiTaskBanditEnv):
    """Movie recommendation with a mixed-effect structure learnt from real MovieLens ratings
    (Aouali, Kveton, Katariya. Mixed-Effect Thompson Sampling. AISTATS 2023; poster "Proxy
    Structure from Offline Embeddings" and Fig. 2, MovieLens: K = 100, L = 5, d = 5).

    ## Description
    ``K`` movies are the actions. Each round a real user arrives (uniformly at random from all
    users); the agent recommends one movie and observes the user's rating of it (linear) or a
    like / dislike (logistic). Movie parameters are tied through ``L_e`` effects: a Gaussian
    mixture over movie factors gives the effects (cluster centres and covariances) and each movie's
    mixing weights ``b_i`` (its cluster-membership probabilities), the "proxy structure" of the
    poster that meTS plugs into its prior. Rating one movie teaches about every movie that shares
    its clusters.

    ## Data provenance and license
    MovieLens ratings by GroupLens Research, under the GroupLens usage license (research use only,
    no commercial use, no redistribution; cite F. M. Harper and J. A. Konstan, The MovieLens
    Datasets: History and Context, ACM TiiS 5(4), 2015). Found/downloaded as in MovieLensMulti-v0
    (``dataset="auto"``: MovieLens 1M, else MovieLens 100K, e.g. the offline copy inside
    ``recbole`` 1.2.1); nothing is shipped. ``model.source`` records the dataset, its sha256, the
    fit and the ids of the chosen movies.

    ## Construction (once; cached by data checksum and parameters)
    1. Rank-``rank`` (5, the poster's d) ALS factorisation of the ratings centred by their global
       mean, ``r_ij - mean ~ U_i^T V_j`` (regularised, deterministic under ``fit_seed``); centring
       makes ``sigmoid(U_i^T V_j)`` a meaningful like-probability (our choice).
    2. A Gaussian mixture with ``L_e`` (5) components over the factors of movies with at least
       ``min_ratings`` (20) ratings. Effect prior: ``psi_l ~ N(mu_l, Sigma_l)``, the centres and
       covariances of the components (poster: "cluster centers, covariances = effect prior
       mean/cov").
    3. ``K`` (100) movies drawn once (``movie_seed``) from those movies; their membership
       probabilities are the mixing weights ``b_i`` (public). Action covariance ``Sigma_0``: the mean
       of ``(V_i - sum_l b_il mu_l)(V_i - sum_l b_il mu_l)^T`` over the clustered movies (our
       choice; ``action_std`` overrides it).

    ## Generative model (per episode)
    Action parameters ``theta_i = V_i`` (the real factors of the K movies) and effects
    ``psi_l = mu_l`` (the proxy) are fixed; each round ``t`` a user ``u_t`` arrives uniformly and
    every movie's context is ``X_{t,i} = U_{u_t}``; reward ``Y_t ~ N(X_{t,A}^T theta_A, sigma^2)``
    with ``sigma`` the residual standard deviation of the fit (``reward="linear"``) or
    ``Bernoulli(sigmoid(X_{t,A}^T theta_A))`` (``reward="logistic"``). Averaging over resets averages
    over user sequences and noise for this real instance.

    ## Action Space
    ``MultiDiscrete([K])`` (one slot; a scalar integer is also accepted).

    ## Observation Space
    ``Dict``: ``"task"`` ``MultiDiscrete([1])`` (always 0) and ``"features"``
    ``Box(-b, b, (1, K, d), float64)``: row ``i`` is the context ``X_{t,i}`` (the arriving user's
    factor, identical for all movies), ``b`` the largest absolute user-factor entry.

    ## Rewards
    The realised reward of the chosen movie (common random numbers of (round, action)).

    ## Regret
    ``info["regret"]`` = ``max_i mu(X_t^T theta_i) - mu(X_t^T theta_A)`` with ``mu`` the identity or
    the sigmoid.

    ## Starting State
    ``reset`` starts a new user sequence (context stream) and noise; the instance is the data's.

    ## Episode End
    ``terminated=True`` after ``horizon`` rounds; never truncated.

    ## Arguments
    ``dataset`` (``"auto"``), ``data_dir``, ``download`` (as in MovieLensMulti-v0); ``num_actions``
    (K, 100), ``num_effects`` (L_e, 5), ``rank`` (d, 5), ``horizon`` (n, 5000), ``reward``
    (``"linear"`` | ``"logistic"``), ``sigma`` (None: the residual standard deviation),
    ``action_std`` (None: the residual covariance above; or a scalar / ``(d, d)`` covariance),
    ``min_ratings`` (20), ``movie_seed`` (0), ``reg`` (0.1), ``fit_seed`` (0).
    * ``render_mode``: None (default), ``"rgb_array"`` or ``"ansi"`` (see :mod:`hbgym.envs.render`);
      ``max_memory_gib``: limit on the estimated memory of one episode (default
      ``$HBGYM_MAX_MEMORY_GIB`` or 4 GiB), above which construction raises ``ValueError`` with the
      estimate (see :mod:`hbgym.envs.limits`).

    ## Public model and truth
    ``env.unwrapped.model`` is a :class:`hbgym.models.MixedEffectModel` (effect prior, mixing
    weights, action covariance, ``source``); ``env.unwrapped.instance`` a
    :class:`hbgym.models.MixedEffectInstance` (proxy effects, movie factors).

    ## Vectorized environment
    :class:`MovieLensEffectsVectorEnv` (``gym.make_vec("MovieLensEffects-v0", num_envs=B)``).

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        dataset: str | os.PathLike = "auto",
        data_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        num_actions: int = 100,
        num_effects: int = 5,
        rank: int = 5,
        horizon: int = 5000,
        reward: str = "linear",
        sigma: float | None = None,
        action_std: Any = None,
        min_ratings: int = 20,
        movie_seed: int = 0,
        reg: float = 0.1,
        fit_seed: int = 0,
        render_mode: str | None = None,
        max_memory_gib: float | None = None,
    ) -> None:
        self.episode_bytes = check_episode_memory(
            f"MovieLensEffects (num_actions={num_actions}, num_effects={num_effects}, rank={rank})",
            episode_parts(num_actions, num_effects, rank),
            max_memory_gib,
        )
        if reward not in REWARDS:
            raise ValueError(f"reward={reward!r} is unknown; allowed: {', '.join(REWARDS)}")
        check_positive("num_actions", num_actions, integer=True)
        check_positive("num_effects", num_effects, integer=True)
        check_positive("rank", rank, integer=True)
        check_positive("horizon", horizon, integer=True)
        check_positive("min_ratings", min_ratings, integer=True)
        check_positive("reg", reg)
        if sigma is not None:
            check_positive("sigma", sigma)
        if num_actions < 2:
            raise ValueError(f"num_actions must be at least 2, got {num_actions}")
        from hbgym.datasets.movielens import fit_factorization, load_ratings

        ratings = load_ratings(dataset, data_dir=data_dir, download=download)
        fit = fit_factorization(ratings, rank=rank, reg=reg, seed=fit_seed, center=True)
        mixture, rows = fit.mixture("items", num_effects, seed=fit_seed, min_ratings=min_ratings)
        if num_actions > len(rows):
            raise ValueError(
                f"num_actions={num_actions} exceeds the {len(rows)} movies with at least "
                f"min_ratings={min_ratings} ratings; lower one of them"
            )
        chosen = np.sort(np.random.default_rng(movie_seed).choice(len(rows), num_actions, replace=False))
        weights = mixture.probabilities[chosen]  # (K, L_e)
        if action_std is None:
            resid = fit.item_factors[rows] - mixture.probabilities @ mixture.means
            action_cov = resid.T @ resid / len(rows)
        else:
            action_cov = as_cov("action_std", action_std, rank)
        model = MixedEffectModel(
            num_tasks=1,
            num_actions=num_actions,
            tasks_per_round=1,
            num_rounds=horizon,
            horizon=horizon,
            dim=rank,
            num_effects=num_effects,
            effect_mean=mixture.means.copy(),
            effect_cov=mixture.covariances.copy(),
            mixing_weights=weights,
            action_cov=action_cov,
            noise_std=float(fit.sigma if sigma is None else sigma),
            reward=reward,
            source={
                **fit.source,
                "clusters": {"k": int(num_effects), "seed": int(fit_seed), "min_ratings": int(min_ratings),
                             "sizes": mixture.counts.tolist()},
                "movie_seed": int(movie_seed),
                "movie_ids": [int(v) for v in fit.item_ids[rows[chosen]]],
            },
        )
        simulator = MovieLensEffectsSimulator(model, fit.item_factors[rows[chosen]], fit.user_factors)
        super().__init__(simulator, render_mode=render_mode)


class MovieLensEffectsVectorEnv(MultiTaskBanditVectorEnv):
    """Native vector version of :class:`MovieLensEffectsEnv`."""

    env_class = MovieLensEffectsEnv


__all__ = ["MovieLensEffectsEnv", "MovieLensEffectsSimulator", "MovieLensEffectsVectorEnv"]
