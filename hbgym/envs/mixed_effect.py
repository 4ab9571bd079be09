"""MixedEffect-v0 and MixedEffectLogistic-v0: the mixed-effect bandit of Aouali et al. (2023)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from hbgym import rng
from hbgym.envs.core import (
    BanditSimulator,
    MultiTaskBanditEnv,
    MultiTaskBanditVectorEnv,
    bernoulli_rewards,
    gaussian_rewards,
)
from hbgym.envs.limits import F64, check_episode_memory, size_or_none
from hbgym.models import (
    MixedEffectInstance,
    MixedEffectModel,
    as_cov,
    check_positive,
    psd_factor,
)

REWARDS = ("linear", "logistic")
MIXINGS = ("signed", "simplex")
CONTEXTS = ("pool", "uniform")
EFFECT_STD = float(np.sqrt(3.0))  # psi_l ~ N(0, 3 I_d) in the poster's synthetic study


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class MixedEffectSimulator(BanditSimulator):
    """Batched dynamics of the mixed-effect bandit (see :class:`MixedEffectEnv`)."""

    def __init__(self, model: MixedEffectModel, contexts: str = "pool", pool_size: int = 100) -> None:
        self.model = model
        self.contexts = contexts
        self.pool_size = int(pool_size)
        self._effect_factors = np.stack([psd_factor(c) for c in model.effect_cov])  # (L_e, d, d)
        self._action_factor = psd_factor(model.action_cov)
        if model.mixing_weights is not None:
            weights = model.mixing_weights
            low, high = min(-1.0, float(weights.min())), max(1.0, float(weights.max()))
        else:
            low, high = (0.0, 1.0) if model.mixing_episode == "simplex" else (-1.0, 1.0)
        self._mixing_bounds = (low, high)

    def observation_space(self) -> spaces.Dict:
        m = self.model
        low, high = self._mixing_bounds
        return spaces.Dict(
            {
                "task": spaces.MultiDiscrete(np.ones(1, dtype=np.int64)),
                "features": spaces.Box(-1.0, 1.0, shape=(1, m.num_actions, m.dim), dtype=np.float64),
                "mixing": spaces.Box(low, high, shape=(1, m.num_actions, m.num_effects), dtype=np.float64),
            }
        )

    def _episode_weights(self, keys: np.ndarray) -> np.ndarray:
        """The mixing weights ``(B, K, L_e)`` of each episode (fixed ones broadcast)."""
        m = self.model
        if m.mixing_weights is not None:
            return np.broadcast_to(m.mixing_weights, (len(keys), *m.mixing_weights.shape)).copy()
        k, l = rng.indexed((m.num_actions, m.num_effects))
        u = rng.uniform(keys[:, None, None], rng.STREAM_INSTANCE, 2, k, l)  # (B, K, L_e)
        if m.mixing_episode == "signed":
            return 2.0 * u - 1.0
        exponential = -np.log(u)  # normalised Exp(1) draws are Dirichlet(1) rows
        return exponential / exponential.sum(-1, keepdims=True)

    def sample_instance(self, keys: np.ndarray) -> MixedEffectInstance:
        m = self.model
        index = rng.indexed((m.num_effects, m.dim))
        z = rng.normal(keys[:, None, None], rng.STREAM_INSTANCE, 0, *index)  # (B, L_e, d)
        effects = m.effect_mean + np.einsum("lij,blj->bli", self._effect_factors, z)
        weights = self._episode_weights(keys)
        centre = np.einsum("bkl,bld->bkd", weights, effects)  # sum_l b_il psi_l
        params = rng.multivariate_normal(
            keys, (rng.STREAM_INSTANCE, 1), centre, self._action_factor, (m.num_actions,)
        )
        return MixedEffectInstance(effects, params, weights)

    def prepare(self, keys: np.ndarray, instance: MixedEffectInstance) -> np.ndarray | None:
        """The episode's feature pool ``(B, P, d)`` of ``U[-1, 1]^d`` points (None: fresh contexts)."""
        if self.contexts != "pool":
            return None
        p, j = rng.indexed((self.pool_size, self.model.dim))
        return 2.0 * rng.uniform(keys[:, None, None], rng.STREAM_CONTEXT, 1, p, j) - 1.0

    def observe(
        self, keys: np.ndarray, instance: MixedEffectInstance, state: np.ndarray | None, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        m = self.model
        if state is None:

            def block(ts: np.ndarray) -> np.ndarray:  # (B, T, K, d)
                k, j = rng.indexed((m.num_actions, m.dim))
                key = keys[:, None, None, None]
                return rng.uniform(key, rng.STREAM_CONTEXT, ts[None, :, None, None], k, j)

            u = self.blocks.get("contexts", keys, t, len(keys) * m.num_actions * m.dim, block)
            contexts = 2.0 * u - 1.0  # (B, K, d)
        else:
            u = rng.uniform(keys[:, None], rng.STREAM_CONTEXT, 2, t, np.arange(m.num_actions))  # (B, K)
            pick = np.minimum((u * self.pool_size).astype(np.int64), self.pool_size - 1)
            contexts = np.take_along_axis(state, pick[..., None], axis=1)  # (B, K, d)
        logits = np.einsum("bkd,bkd->bk", contexts, instance.action_params)
        means = logits if m.reward == "linear" else sigmoid(logits)
        tasks = np.zeros((len(keys), 1), dtype=np.int64)
        obs = {"task": tasks, "features": contexts[:, None], "mixing": instance.mixing_weights[:, None]}
        return obs, means[:, None]

    def draw_rewards(
        self, keys: np.ndarray, t: int, actions: np.ndarray, means: np.ndarray
    ) -> np.ndarray:
        m = self.model
        if m.reward == "linear":
            return gaussian_rewards(keys, t, actions, means, self.model.noise_std, self.blocks, m.num_actions)
        return bernoulli_rewards(keys, t, actions, means, self.blocks, m.num_actions)


def episode_parts(num_actions: Any, num_effects: Any, dim: Any) -> dict[str, float]:
    """Estimated bytes of one mixed-effect episode by part (see :mod:`hbgym.envs.limits`)."""
    k, le, d = (size_or_none(v) or 1 for v in (num_actions, num_effects, dim))
    return {
        "covariances": 3 * (le + 1) * d * d * F64,
        "mixing weights": 2 * k * le * F64,
        "instance": (le * d + 2 * k * d) * F64,
        "round": 4 * k * d * F64,
    }


class MixedEffectEnv(MultiTaskBanditEnv):
    """Mixed-effect bandit: many actions whose parameters mix a few shared effects (Aouali, Kveton,
    Katariya. Mixed-Effect Thompson Sampling. AISTATS 2023; poster "Model" and "Experiments").

    ## Description
    A contextual bandit with ``K`` actions, each with its own parameter ``theta_i``. The parameters
    are tied through ``L_e`` latent effects: ``theta_i`` is centred at a known mixture
    ``sum_l b_il psi_l`` of the unknown effects, so pulling one action teaches the agent about every
    action that shares its effects (meTS). Each round every action comes with a fresh context.

    ## Generative model
    ``psi_l ~ N(0, effect_std^2 I_d)`` for ``l < L_e``; ``theta_i | psi ~ N(sum_l b_il psi_l,
    action_std^2 I_d)``; reward ``Y_t ~ N(X_{t,A}^T theta_A, sigma^2)`` (``reward="linear"``) or
    ``Bernoulli(sigmoid(X_{t,A}^T theta_A))`` (``reward="logistic"``).

    Defaults = the meTS authors' own synthetic experiment (their public experiment code, poster
    Fig. 1): ``K=100``, ``L_e=3``, ``d=2``, ``n=5000``, ``effect_std^2=3``, ``action_std=1``,
    ``sigma=1``; signed mixing weights ``b_il ~ U[-1, 1]`` drawn anew for every episode
    (``mixing="signed"``, ``mixing_seed=None``); contexts from a pool of ``pool_size=100`` points
    ``U[-1, 1]^d`` drawn once per episode, each round each action's feature vector a uniform draw
    from the pool (``contexts="pool"``). ``MixedEffectLogistic-v0`` has the same structure with
    Bernoulli rewards (the poster's logistic panel: ``K=100``, ``L=3``, ``d=2``).

    Other options: ``mixing="simplex"`` draws Dirichlet(1) rows (membership probabilities, as in the
    poster's MovieLens proxy structure); an integer ``mixing_seed`` fixes the weights for every
    episode (drawn once at construction: the v0 behaviour before the paper-defaults change was
    ``mixing="simplex", mixing_seed=0, contexts="uniform"``); ``mixing_weights`` ``(K, L_e)`` sets
    them; ``contexts="uniform"`` draws fresh ``X_{t,i} ~ U[-1, 1]^d`` every round.

    ## Public mixing weights
    The weights are public in every configuration: every observation carries the episode's
    ``b`` under ``"mixing"`` (constant within an episode). Agents built by ``from_env`` before
    ``reset`` read them from the observation. When the weights are fixed they are also in
    ``env.unwrapped.model.mixing_weights``; when they are drawn per episode that field is None and
    ``model.mixing_episode`` names their distribution.

    ## Action Space
    ``MultiDiscrete([K])`` (one slot; a scalar integer is also accepted).

    ## Observation Space
    ``Dict``: ``"task"`` ``MultiDiscrete([1])`` (always 0: one task whose units are the actions),
    ``"features"`` ``Box(-1, 1, (1, K, d), float64)``, the contexts ``X_{t,i}`` of all actions, and
    ``"mixing"`` ``Box(lo, hi, (1, K, L_e), float64)``, the episode's mixing weights ``b``.

    ## Rewards
    The realised reward of the chosen action; Gaussian noise / Bernoulli draws are common random
    numbers of (round, action).

    ## Regret
    ``info["regret"]`` is the pseudo-regret ``max_i mu(X_{t,i}^T theta_i) - mu(X_{t,A}^T theta_A)``
    with ``mu`` the identity (linear) or the sigmoid (logistic).

    ## Starting State
    ``reset`` draws the mixing weights (per-episode mode), the effects, the action parameters and
    the feature pool; contexts come from their own stream.

    ## Episode End
    ``terminated=True`` after ``horizon`` rounds; never truncated.

    ## Arguments
    ``num_actions`` (K, 100), ``num_effects`` (L_e, 3), ``dim`` (d, 2), ``horizon`` (n, 5000 rounds),
    ``effect_std`` (sqrt 3; or an ``(L_e, d, d)`` / ``(d, d)`` covariance), ``action_std`` (1; or a
    ``(d, d)`` covariance), ``sigma`` (1, linear only), ``reward`` (``"linear"`` | ``"logistic"``),
    ``mixing_weights`` (``(K, L_e)`` real weights, or None), ``mixing`` (``"signed"`` |
    ``"simplex"``, used when ``mixing_weights`` is None), ``mixing_seed`` (None: weights redrawn
    every episode; an int: fixed at construction), ``contexts`` (``"pool"`` | ``"uniform"``),
    ``pool_size`` (100).
    * ``render_mode``: None (default), ``"rgb_array"`` or ``"ansi"`` (see :mod:`hbgym.envs.render`);
      ``max_memory_gib``: limit on the estimated memory of one episode (default
      ``$HBGYM_MAX_MEMORY_GIB`` or 4 GiB), above which construction raises ``ValueError`` with the
      estimate (see :mod:`hbgym.envs.limits`).

    ## Public model and truth
    ``env.unwrapped.model`` is a :class:`hbgym.models.MixedEffectModel`; ``env.unwrapped.instance``
    a :class:`hbgym.models.MixedEffectInstance` (effects, action parameters).

    ## Vectorized environment
    :class:`MixedEffectVectorEnv` (``gym.make_vec("MixedEffect-v0", num_envs=B)``).

    ## Version History
    * v0: initial release. Defaults changed to the authors' experiment (signed per-episode weights,
      feature pool, ``"mixing"`` observation key) without an id bump: every suite using it bumped
      its version, so no stored result is silently compared with new numbers.
    """

    def __init__(
        self,
        num_actions: int = 100,
        num_effects: int = 3,
        dim: int = 2,
        horizon: int = 5000,
        effect_std: Any = EFFECT_STD,
        action_std: Any = 1.0,
        sigma: float = 1.0,
        reward: str = "linear",
        mixing_weights: Any = None,
        mixing: str = "signed",
        mixing_seed: int | None = None,
        contexts: str = "pool",
        pool_size: int = 100,
        render_mode: str | None = None,
        max_memory_gib: float | None = None,
    ) -> None:
        self.episode_bytes = check_episode_memory(
            f"MixedEffect (num_actions={num_actions}, num_effects={num_effects}, dim={dim})",
            episode_parts(num_actions, num_effects, dim),
            max_memory_gib,
        )
        if reward not in REWARDS:
            raise ValueError(f"reward={reward!r} is unknown; allowed: {', '.join(REWARDS)}")
        check_positive("num_actions", num_actions, integer=True)
        check_positive("num_effects", num_effects, integer=True)
        check_positive("dim", dim, integer=True)
        check_positive("horizon", horizon, integer=True)
        check_positive("sigma", sigma)
        if num_actions < 2:
            raise ValueError(f"num_actions must be at least 2, got {num_actions}")
        if mixing not in MIXINGS:
            raise ValueError(f"mixing={mixing!r} is unknown; allowed: {', '.join(MIXINGS)}")
        if contexts not in CONTEXTS:
            raise ValueError(f"contexts={contexts!r} is unknown; allowed: {', '.join(CONTEXTS)}")
        check_positive("pool_size", pool_size, integer=True)
        if mixing_seed is not None and (
            isinstance(mixing_seed, bool) or not isinstance(mixing_seed, (int, np.integer)) or mixing_seed < 0
        ):
            raise ValueError(f"mixing_seed must be None (weights redrawn every episode) or an int >= 0, "
                             f"got {mixing_seed!r}")
        if mixing_weights is None and mixing_seed is None:
            weights = None
        elif mixing_weights is None:
            weight_rng = np.random.default_rng(mixing_seed)
            if mixing == "simplex":
                weights = weight_rng.dirichlet(np.ones(num_effects), size=num_actions)
            else:
                weights = weight_rng.uniform(-1.0, 1.0, size=(num_actions, num_effects))
        else:
            weights = np.asarray(mixing_weights, dtype=np.float64)
            if weights.shape != (num_actions, num_effects) or not np.all(np.isfinite(weights)):
                raise ValueError(
                    f"mixing_weights must be a finite ({num_actions}, {num_effects}) array, "
                    f"got shape {weights.shape}"
                )
        if np.ndim(effect_std) == 3:
            effect_std = np.asarray(effect_std, dtype=np.float64)
            if effect_std.shape[0] != num_effects:
                raise ValueError(f"effect_std as covariances must have shape ({num_effects}, {dim}, {dim})")
            effect_cov = np.stack([as_cov("effect_std", c, dim) for c in effect_std])
        else:
            effect_cov = np.repeat(as_cov("effect_std", effect_std, dim)[None], num_effects, axis=0)
        model = MixedEffectModel(
            num_tasks=1,
            num_actions=num_actions,
            tasks_per_round=1,
            num_rounds=horizon,
            horizon=horizon,
            dim=dim,
            num_effects=num_effects,
            effect_mean=np.zeros((num_effects, dim)),
            effect_cov=effect_cov,
            mixing_weights=weights,
            action_cov=as_cov("action_std", action_std, dim),
            noise_std=float(sigma),
            reward=reward,
            mixing_episode=mixing if weights is None else None,
        )
        super().__init__(MixedEffectSimulator(model, contexts, pool_size), render_mode=render_mode)


class MixedEffectVectorEnv(MultiTaskBanditVectorEnv):
    """Native vector version of :class:`MixedEffectEnv`."""

    env_class = MixedEffectEnv


__all__ = ["MixedEffectEnv", "MixedEffectSimulator", "MixedEffectVectorEnv"]
