"""PartialContext-v0: the partially observed, dynamically recruited multi-user bandit of
Mukherjee et al. (CoCo bandits), Sec. 2 and App. C.1-C.3."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from hbgym import rng
from hbgym.envs.core import BanditSimulator, MultiTaskBanditEnv, MultiTaskBanditVectorEnv, gaussian_rewards
from hbgym.envs.limits import F64, check_episode_memory, size_or_none
from hbgym.models import (
    ARM_SLOPES,
    DELTA_STD,
    LATENT_MEAN,
    LATENT_STD,
    MIXTURE_MEANS,
    NUM_ACTIONS,
    PARTIAL_LINEAR_W,
    THETA_MEAN,
    THETA_STD,
    MTTSPrior,
    PartialContextInstance,
    PartialContextModel,
    check_positive,
    conditional_prior,
    feature_map,
    logistic,
)

__all__ = [
    "SCENARIOS",
    "ARM_SLOPES",
    "MIXTURE_MEANS",
    "PARTIAL_LINEAR_W",
    "MTTSPrior",
    "PartialContextModel",
    "PartialContextInstance",
    "PartialContextSimulator",
    "PartialContextEnv",
    "PartialContextVectorEnv",
    "conditional_prior",
    "feature_map",
    "make_partial_context_model",
]

SCENARIOS = ("mixture", "partial_linear", "lmm", "lmm_mixture")

#: paper defaults per scenario: (num_batches, batch_size, steps_per_user)
DEFAULT_SCHEDULES: dict[str, tuple[int, int, int]] = {
    "mixture": (30, 5, 5),  # App. C.1: 30 recruitment rounds x 5 users x 5 steps
    "partial_linear": (30, 5, 5),  # App. C.2: same recruitment as C.1
    "lmm": (1, 50, 5),  # App. C.3 correctly specified: all 50 users at once, 5 rounds
    "lmm_mixture": (20, 5, 5),  # App. C.3 misspecified: 20 batches of 5 users, 5 rounds each
}

# counter words of the instance stream
_X_OBS, _COMPONENT, _MU_NOISE, _X_LATENT, _THETA_COMPONENT, _THETA = 0, 1, 2, 3, 4, 5
_THETA_USER_COMPONENT, _THETA_USER = 6, 7


# --------------------------------------------------------------------------- simulator


class PartialContextSimulator(BanditSimulator):
    """Batched dynamics of the partial-context bandit (see :class:`PartialContextEnv`)."""

    def __init__(self, model: PartialContextModel) -> None:
        self.model = model

    def observation_space(self) -> spaces.Dict:
        m = self.model
        L, K = m.tasks_per_round, m.num_actions
        bound = float(max(1.0, np.abs(m.arm_slopes).max()))
        return spaces.Dict(
            {
                "task": spaces.MultiDiscrete(np.full(L, m.num_tasks, dtype=np.int64)),
                "context": spaces.Box(-1.0, 1.0, shape=(L, 1), dtype=np.float64),
                "features": spaces.Box(-bound, bound, shape=(L, K, 2), dtype=np.float64),
            }
        )

    def sample_instance(self, keys: np.ndarray) -> PartialContextInstance:
        m = self.model
        n, K, B = m.num_tasks, m.num_actions, len(keys)
        key_u = keys[:, None]  # (B, 1)
        users = np.arange(n)[None, :]
        x = 2.0 * rng.uniform(key_u, rng.STREAM_INSTANCE, _X_OBS, users) - 1.0  # (B, n)
        u_comp = rng.uniform(key_u, rng.STREAM_INSTANCE, _COMPONENT, users)  # (B, n)
        i, a = rng.indexed((n, K))
        z_mu = rng.normal(keys[:, None, None], rng.STREAM_INSTANCE, _MU_NOISE, i, a)  # (B, n, K)
        theta = np.zeros((B, 0))
        theta_comp = np.zeros(B, dtype=np.int64)
        components = np.zeros((B, n), dtype=np.int64)
        if m.scenario == "mixture":
            components = (u_comp >= logistic(x)).astype(np.int64)  # 0 with prob v1(x)
            mu = MIXTURE_MEANS[components] + (0.2 + 0.1 * x)[..., None] * z_mu
            contexts = x[..., None]
        elif m.scenario == "partial_linear":
            x_c = LATENT_MEAN + LATENT_STD * rng.normal(key_u, rng.STREAM_INSTANCE, _X_LATENT, users)
            components = (u_comp < logistic(x)).astype(np.int64)  # x_d ~ Bernoulli(sigmoid(x_o))
            contexts = np.stack([x, x_c, components.astype(np.float64), np.ones_like(x)], axis=-1)
            mu = contexts @ PARTIAL_LINEAR_W.T
        else:
            theta, comp = self._sample_theta(keys)  # (B, [n,] 2), (B, [n])
            if m.theta_per_user:
                components = comp
                user_theta = theta
            else:
                theta_comp = comp
                user_theta = theta[:, None, :]
            mu = np.einsum("bnkd,bnd->bnk", feature_map(x), user_theta) + DELTA_STD * z_mu
            contexts = x[..., None]
        return PartialContextInstance(contexts, components, mu, theta, theta_comp)

    def _sample_theta(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """theta ``(B, 2)`` (or ``(B, n, 2)`` per user) and its mixture mode ``(B,)`` (``(B, n)``)."""
        m = self.model
        per_user = m.theta_per_user
        shape = (m.num_tasks,) if per_user else ()
        key = keys.reshape((-1,) + (1,) * (len(shape) + 1))
        word = _THETA_USER if per_user else _THETA
        z = rng.normal(key, rng.STREAM_INSTANCE, word, *rng.indexed((*shape, 2)))  # (B, *shape, 2)
        comp = np.zeros(z.shape[:-1], dtype=np.int64)
        if m.scenario == "lmm_mixture":
            word = _THETA_USER_COMPONENT if per_user else _THETA_COMPONENT
            u = rng.uniform(key[..., 0], rng.STREAM_INSTANCE, word, *rng.indexed(shape))
            comp = (u < 0.5).astype(np.int64)
            centre = np.where(comp == 1, 1.0, -1.0)[..., None]
        else:
            centre = np.full(comp.shape + (1,), THETA_MEAN)
        return centre + THETA_STD * z, comp

    def observe(
        self, keys: np.ndarray, instance: PartialContextInstance, state: Any, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        users = self.model.users_in_round(t)  # (L,)
        B = len(keys)
        x = instance.contexts[:, users, 0]  # (B, L)
        # every user's features, mapped once per episode (the same numbers as feature_map(x))
        every_user = self.blocks.constant("features", keys, lambda: feature_map(instance.contexts[..., 0]))
        obs = {
            "task": np.repeat(users.astype(np.int64)[None], B, axis=0),
            "context": x[..., None].copy(),
            "features": every_user[:, users],
        }
        return obs, instance.mu[:, users]

    def draw_rewards(
        self, keys: np.ndarray, t: int, actions: np.ndarray, means: np.ndarray
    ) -> np.ndarray:
        m = self.model
        return gaussian_rewards(keys, t, actions, means, m.sigma, self.blocks, m.num_actions)


# --------------------------------------------------------------------------- envs


class PartialContextEnv(MultiTaskBanditEnv):
    """Users recruited in batches, each with a partially observed context (CoCo bandits).

    ## Description
    Mukherjee et al., "CoCo bandits" (Sec. 2, App. C). Users (tasks) arrive in batches of
    ``batch_size``; a batch acts concurrently for ``steps_per_user`` rounds and then leaves, and the
    next batch joins. Each user ``i`` has a fixed context of which only the scalar ``x_obs,i`` is
    observed, and a fixed latent mean-reward vector ``mu_i in R^3`` over ``K = 3`` arms. The
    population structure ``P*(mu | x_obs)`` is shared by all users, so earlier users teach the agent
    a context-dependent prior for later ones (co-exploration).

    ## Generative model
    ``scenario=`` (App. C.1-C.3; ``x_obs ~ U[-1, 1]`` i.i.d. per user in every scenario):

    * ``"mixture"`` (C.1): ``mu | x ~ v(x) N(mu^(1), s(x)^2 I) + (1 - v(x)) N(mu^(2), s(x)^2 I)`` with
      ``v = sigmoid(x)``, ``mu^(1) = [1.8, 1.0, -1.0]``, ``mu^(2) = [1.0, 1.9, -1.8]``,
      ``s(x) = 0.2 + 0.1 x``. Default 30 batches x 5 users x 5 steps.
    * ``"partial_linear"`` (C.2): full context ``x = [x_o, x_c, x_d, 1]``, ``x_o = x_obs``,
      ``x_c ~ N(0.5, 0.1^2)``, ``x_d ~ Bernoulli(sigmoid(x_o))``; ``mu = W x`` with the paper's
      fixed ``W`` (:data:`PARTIAL_LINEAR_W`). Default 30 x 5 x 5.
    * ``"lmm"`` (C.3, correctly specified for MTTS): ``theta ~ N(1_2, 0.25 I)`` drawn **once per
      episode** and shared by all users; ``mu_i = Phi_i theta + delta_i``,
      ``delta_i ~ N(0, 0.05^2 I_3)``, ``Phi_i`` rows ``phi(x_i, a) = [rho_a x_i, 1]``,
      ``rho = [0.9, -1.1, 0.2]``. Default: all 50 users at once (1 batch x 50 users x 5 steps).
    * ``"lmm_mixture"`` (C.3, misspecified): as ``"lmm"`` but
      ``theta ~ 0.5 N(-1_2, 0.25 I) + 0.5 N(+1_2, 0.25 I)``. Default 20 batches x 5 users x 5 steps.

    ``theta_per_user=True`` (lmm scenarios only) draws theta independently for every user instead
    of once per episode. The paper does not say which it means for ``"lmm_mixture"``; a single
    shared theta is learnt by MTTS from a few users whatever its prior, whereas the paper reports
    linear regret for MTTS there, which per-user thetas (a bimodal population that MTTS's one
    Gaussian theta cannot fit) reproduce. Default False (one theta per episode, as Wan et al.).

    Rewards ``r ~ N(mu_{i,a}, sigma^2)``, ``sigma = 0.1``. :func:`conditional_prior` returns the
    true ``P*(mu | x_obs)`` of each scenario as a Gaussian mixture (used by OraclePriorTS).

    ## Defaults where the paper is silent (our choices)
    CoCo App. C states the scenario parameters above, ``K = 3``, ``sigma = 0.1`` and the recruitment
    schedules. Ours: ``x_obs ~ U[-1, 1]`` i.i.d. per user (the distribution of the observed context);
    ``theta`` once per episode in ``"lmm_mixture"`` unless ``theta_per_user=True`` (the coco and paper
    suites use True, which reproduces the paper's linear MTTS regret); 10 seeds in the ``coco`` suite
    and 50 in ``paper``; the regret is the pseudo-regret of the acting users (the paper's bottom row
    evaluates a held-out batch).

    ## Action Space
    ``MultiDiscrete([3] * L)``, ``L = batch_size``: one arm per acting user.

    ## Observation Space
    ``Dict``:

    * ``"task"``: ``MultiDiscrete([num_tasks] * L)`` — the ids of the acting users: in round ``t``
      users ``b L, ..., b L + L - 1`` with ``b = t // steps_per_user`` (slot ``j`` is user
      ``b L + j``).
    * ``"context"``: ``Box(-1, 1, (L, 1), float64)`` — ``x_obs`` of each acting user.
    * ``"features"``: ``Box(-1.1, 1.1, (L, 3, 2), float64)`` — the known MTTS feature map
      ``phi(x_obs, a) = [rho_a x_obs, 1]`` for each arm. In the lmm scenarios it is exactly the
      map of the generative model; in ``"mixture"`` and ``"partial_linear"`` it is the same map,
      which is what MTTS is given in the paper's comparison (there it is misspecified).

    ## Rewards
    The sum of the ``L`` realised rewards; ``info["rewards"]`` has them per slot. Noise is a common
    random number of (round, slot, arm), so agents run on the same seed are paired.

    ## Regret
    ``info["regret"]`` ``(L,)`` is the pseudo-regret ``max_a mu_{i,a} - mu_{i,A}`` per acting
    user; summed over rounds and averaged over resets it gives the Bayes regret (Sec. 2.3). The
    paper's multi-task regret (eq. (3)) is the difference between an agent's cumulative regret and
    that of OraclePriorTS (TS with the true ``P*(mu | x_obs)``) run on the same seeds.

    ## Starting State
    ``reset`` draws every user's context and ``mu`` (and theta) up front from the instance stream;
    the recruitment schedule is deterministic.

    ## Episode End
    ``terminated=True`` after ``num_batches * steps_per_user`` rounds; never truncated.

    ## Arguments
    * ``scenario`` (``"mixture"``): one of ``"mixture"``, ``"partial_linear"``, ``"lmm"``,
      ``"lmm_mixture"``.
    * ``num_batches``, ``batch_size``, ``steps_per_user``: positive integers; ``None`` takes the
      scenario's paper default (see above).
    * ``sigma`` (0.1): reward noise standard deviation.
    * ``theta_per_user`` (False): lmm scenarios only, see above.

    Invalid values raise ``ValueError`` naming the parameter and what is allowed.
    * ``render_mode``: None (default), ``"rgb_array"`` or ``"ansi"`` (see :mod:`hbgym.envs.render`);
      ``max_memory_gib``: limit on the estimated memory of one episode (default
      ``$HBGYM_MAX_MEMORY_GIB`` or 4 GiB), above which construction raises ``ValueError`` with the
      estimate (see :mod:`hbgym.envs.limits`).

    ## Public model and truth
    ``env.unwrapped.model`` is a :class:`PartialContextModel` (sizes, schedule, ``arm_slopes``,
    ``sigma``, ``scenario`` and ``mtts_prior``: the LMM MTTS assumes — ``mu_theta = 1_2``,
    ``Sigma_theta = 0.25 I``, ``Sigma_delta = 0.05^2 I`` — in every scenario).
    ``env.unwrapped.instance`` is a :class:`PartialContextInstance` (full contexts, latent
    components, ``mu``, theta).

    ## Vectorized environment
    ``gym.make_vec("PartialContext-v0", num_envs=B)`` returns :class:`PartialContextVectorEnv`;
    slot ``i`` reset with seed ``s + i`` equals the single env reset with seed ``s + i``.

    ## Example
    >>> import gymnasium as gym, hbgym
    >>> env = gym.make("PartialContext-v0", scenario="lmm")
    >>> obs, info = env.reset(seed=0)
    >>> obs["task"].shape, obs["context"].shape, obs["features"].shape
    ((50,), (50, 1), (50, 3, 2))
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["regret"].shape
    (50,)

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        scenario: str = "mixture",
        num_batches: int | None = None,
        batch_size: int | None = None,
        steps_per_user: int | None = None,
        sigma: float = 0.1,
        theta_per_user: bool = False,
        render_mode: str | None = None,
        max_memory_gib: float | None = None,
    ) -> None:
        defaults = DEFAULT_SCHEDULES.get(scenario, (1, 1, 1)) if isinstance(scenario, str) else (1, 1, 1)
        nb, bs = size_or_none(num_batches) or defaults[0], size_or_none(batch_size) or defaults[1]
        # per user: observed and latent contexts, components, uniforms (~12 arrays), K means and gaps
        self.episode_bytes = check_episode_memory(
            f"PartialContext (num_batches={num_batches}, batch_size={batch_size})",
            {"users": nb * bs * (12 + 3 * NUM_ACTIONS) * F64, "round": 4 * bs * NUM_ACTIONS * 2 * F64},
            max_memory_gib,
        )
        model = make_partial_context_model(
            scenario=scenario,
            num_batches=num_batches,
            batch_size=batch_size,
            steps_per_user=steps_per_user,
            sigma=sigma,
            theta_per_user=theta_per_user,
        )
        super().__init__(PartialContextSimulator(model), render_mode=render_mode)


class PartialContextVectorEnv(MultiTaskBanditVectorEnv):
    """Native vector version of :class:`PartialContextEnv` (same keyword arguments plus ``num_envs``)."""

    env_class = PartialContextEnv


# --------------------------------------------------------------------------- validation


def make_partial_context_model(
    *,
    scenario: str,
    num_batches: int | None,
    batch_size: int | None,
    steps_per_user: int | None,
    sigma: float,
    theta_per_user: bool = False,
) -> PartialContextModel:
    """Validate PartialContext arguments and build the public model (errors name the parameter)."""
    if not isinstance(scenario, str) or scenario not in SCENARIOS:
        raise ValueError(f"scenario={scenario!r} is unknown; allowed: {', '.join(SCENARIOS)}")
    defaults = DEFAULT_SCHEDULES[scenario]
    sizes = []
    for name, value, default in zip(
        ("num_batches", "batch_size", "steps_per_user"),
        (num_batches, batch_size, steps_per_user),
        defaults,
        strict=True,
    ):
        sizes.append(default if value is None else int(check_positive(name, value, integer=True)))
    nb, bs, spu = sizes
    check_positive("sigma", sigma)
    if not isinstance(theta_per_user, (bool, np.bool_)):
        raise ValueError(f"theta_per_user must be True or False, got {theta_per_user!r}")
    if theta_per_user and scenario not in ("lmm", "lmm_mixture"):
        raise ValueError(f"theta_per_user=True needs scenario 'lmm' or 'lmm_mixture', got {scenario!r}")
    K = NUM_ACTIONS
    prior = MTTSPrior(
        mu_theta=np.full(2, THETA_MEAN),
        Sigma_theta=THETA_STD**2 * np.eye(2),
        Sigma_delta=DELTA_STD**2 * np.eye(K),
    )
    return PartialContextModel(
        num_tasks=nb * bs,
        num_actions=K,
        tasks_per_round=bs,
        num_rounds=nb * spu,
        dim=2,
        horizon=spu,
        noise_std=float(sigma),
        batch_size=bs,
        num_batches=nb,
        steps_per_user=spu,
        context_dim=1,
        arm_slopes=ARM_SLOPES.copy(),
        scenario=scenario,
        mtts_prior=prior,
        theta_per_user=bool(theta_per_user),
    )
