"""Machinery shared by every env family: one batched simulator drives both the single env and the
native vector env, so slot ``i`` of ``gym.make_vec(id, num_envs=B)`` reproduces ``gym.make(id)``
reset with the matching seed, with array operations and no Python loop over ``B``.

A family implements :class:`BanditSimulator` (sample an instance, produce a round's observation and
mean rewards, draw rewards) and subclasses :class:`MultiTaskBanditEnv` (its docstring is the spec)
and :class:`MultiTaskBanditVectorEnv` (two lines). Everything else — action validation, regret,
``info``, termination, seeding, autoreset — lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hbgym import rng
from hbgym.envs.limits import check_episode_memory
from hbgym.envs.render import RENDER_MODES, EpisodeRecorder, check_render_mode
from hbgym.models import BanditModel, take_slot

__all__ = [
    "BanditSimulator",
    "EpisodeBatch",
    "MultiTaskBanditEnv",
    "MultiTaskBanditVectorEnv",
    "RoundBlocks",
    "bernoulli_rewards",
    "common_noise",
    "gaussian_rewards",
]

INFO_KEYS = ("rewards", "expected_rewards", "optimal_actions", "regret")


class RoundBlocks:
    """Per-round random draws computed for a block of rounds at once, for small batches.

    A draw that is a pure function of (episode key, round, indices) — contexts, the common reward
    noise of every (slot, action) — costs the single env mostly NumPy's per-call overhead when made
    one round at a time. :meth:`get` instead evaluates ``draw(ts)`` for ``ts`` = the next block of
    rounds and serves round ``t`` from it: the same numbers (the counter-based hash is elementwise),
    fewer calls. Blocks hold at most ``budget`` numbers; when one round of the batch needs more
    (large vector envs), ``draw`` is called for round ``t`` alone and nothing is cached.
    """

    def __init__(self, budget: int = 8192) -> None:
        self.budget = budget
        self._keys: np.ndarray | None = None
        self._blocks: dict[str, tuple[int, int, np.ndarray]] = {}
        self._constants: dict[str, Any] = {}

    def _start(self, keys: np.ndarray) -> None:
        if keys is not self._keys:
            self._keys, self._blocks, self._constants = keys, {}, {}

    def constant(self, name: str, keys: np.ndarray, make: Any) -> Any:
        """``make()`` computed once per episode batch ``keys`` (e.g. a broadcast view reused every round)."""
        self._start(keys)
        if name not in self._constants:
            self._constants[name] = make()
        return self._constants[name]

    def rounds_per_block(self, per_round: int) -> int:
        """How many rounds a block holds when one round needs ``per_round`` numbers (>= 1)."""
        return max(1, self.budget // max(1, per_round))

    def get(self, name: str, keys: np.ndarray, t: int, per_round: int, draw: Any) -> np.ndarray:
        """``draw(ts)[:, i]`` where ``ts[i] == t``.

        Args:
            name: which draw (one cache entry per name).
            keys: ``(B,)`` episode keys; a different array object starts new blocks.
            t: the round.
            per_round: numbers one round of the whole batch needs (sizes the block).
            draw: ``ts`` ``(T,)`` int64 -> array ``(B, T, ...)``.
        """
        cached = self._blocks.get(name) if keys is self._keys else None
        if cached is not None and cached[0] <= t < cached[1]:  # the common case: served from the block
            return cached[2][:, t - cached[0]]
        block = self.rounds_per_block(per_round)
        if block == 1:
            return draw(np.array([t], dtype=np.int64))[:, 0]
        self._start(keys)
        start = t - t % block
        values = draw(np.arange(start, start + block, dtype=np.int64))
        self._blocks[name] = (start, start + block, values)
        return values[:, t - start]

def common_noise(
    kind: str, keys: np.ndarray, t: int, actions: np.ndarray, num_actions: int, blocks: RoundBlocks | None
) -> np.ndarray:
    """The common random number ``(B, L)`` of (key, t, slot, action): standard ``"normal"`` or
    ``"uniform"``. With ``blocks`` (small batches) the numbers of every action of a block of rounds
    are drawn at once and looked up; the values are the same either way."""
    draw = rng.normal if kind == "normal" else rng.uniform
    num_envs, width = actions.shape
    slots = np.arange(width)[None, :]
    if blocks is None or blocks.rounds_per_block(num_envs * width * num_actions) == 1:
        return draw(keys[:, None], rng.STREAM_NOISE, t, slots, actions)
    every = np.arange(num_actions)[None, None, None, :]

    def block(ts: np.ndarray) -> np.ndarray:  # (B, T, L, K)
        key = keys[:, None, None, None]
        return draw(key, rng.STREAM_NOISE, ts[None, :, None, None], slots[..., None], every)

    table = blocks.get("noise_" + kind, keys, t, num_envs * width * num_actions, block)  # (B, L, K)
    return table[np.arange(num_envs)[:, None], slots, actions]


def gaussian_rewards(
    keys: np.ndarray,
    t: int,
    actions: np.ndarray,
    means: np.ndarray,
    noise_std: float | np.ndarray,
    blocks: RoundBlocks | None = None,
    num_actions: int = 0,
) -> np.ndarray:
    """``means + noise_std * eps`` with eps the common random number of (key, t, slot, action)."""
    return means + noise_std * common_noise("normal", keys, t, actions, num_actions, blocks)


def bernoulli_rewards(
    keys: np.ndarray,
    t: int,
    actions: np.ndarray,
    means: np.ndarray,
    blocks: RoundBlocks | None = None,
    num_actions: int = 0,
) -> np.ndarray:
    """Bernoulli(``means``) rewards from the common uniform of (key, t, slot, action)."""
    u = common_noise("uniform", keys, t, actions, num_actions, blocks)
    return (u < means).astype(np.float64)


class BanditSimulator(ABC):
    """Batched dynamics of one env configuration: ``B`` independent episodes in lockstep.

    Subclasses set ``model`` and implement the four abstract methods; every array they return has a
    leading batch dimension ``B``. All randomness must come from :mod:`hbgym.rng` keyed by the
    episode ``keys`` ``(B,)`` uint64 and the round, so that results are a pure function of the keys.
    """

    model: BanditModel

    @abstractmethod
    def observation_space(self) -> spaces.Dict:
        """Observation space of one episode (no batch dimension); must contain ``"task"``."""

    @abstractmethod
    def sample_instance(self, keys: np.ndarray) -> Any:
        """The sampled truth for ``keys`` ``(B,)``: a dataclass whose arrays lead with ``B``."""

    @abstractmethod
    def observe(
        self, keys: np.ndarray, instance: Any, state: Any, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Round ``t``'s observation (dict of ``(B, ...)`` arrays) and mean rewards ``(B, L, K)``."""

    @abstractmethod
    def draw_rewards(
        self, keys: np.ndarray, t: int, actions: np.ndarray, means: np.ndarray
    ) -> np.ndarray:
        """Realised rewards ``(B, L)`` of ``actions`` ``(B, L)`` whose mean rewards are ``means``.

        Common random numbers: the noise may depend on (key, t, slot, action) only.
        """

    def prepare(self, keys: np.ndarray, instance: Any) -> Any:
        """Per-episode state fixed at reset (e.g. the task schedule); None by default."""
        return None

    @property
    def blocks(self) -> RoundBlocks:
        """This simulator's :class:`RoundBlocks` (created on first use)."""
        blocks = self.__dict__.get("_round_blocks")
        if blocks is None:
            blocks = self.__dict__["_round_blocks"] = RoundBlocks()
        return blocks


class EpisodeBatch:
    """``B`` episodes of one simulator: instance, schedule state, round counter, current round.

    Both env classes delegate to this; it never validates (the envs do, before touching it).
    """

    def __init__(self, simulator: BanditSimulator) -> None:
        self.simulator = simulator
        self.keys: np.ndarray | None = None
        self.instance: Any = None
        self.state: Any = None
        self.t = 0
        self.obs: dict[str, np.ndarray] | None = None
        self.means: np.ndarray | None = None
        self._index: tuple[np.ndarray, np.ndarray] = (np.zeros((0, 1), np.int64), np.zeros((1, 0), np.int64))

    @property
    def num_rounds(self) -> int:
        return self.simulator.model.num_rounds

    def reset(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        """Start ``len(keys)`` new episodes; returns the observation of round 0."""
        sim = self.simulator
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.instance = sim.sample_instance(self.keys)
        self.state = sim.prepare(self.keys, self.instance)
        self.t = 0
        self.obs, self.means = sim.observe(self.keys, self.instance, self.state, 0)
        num_envs, width = self.means.shape[:2]
        self._index = (np.arange(num_envs)[:, None], np.arange(width)[None, :])  # gathers (B, L)
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray, dict[str, np.ndarray], bool]:
        """Play ``actions`` ``(B, L)`` in the current round.

        Returns:
            next observation, rewards ``(B, L)``, info arrays ``(B, L)`` plus ``round`` ``(B,)``,
            and whether the episodes ended.
        """
        sim, t = self.simulator, self.t
        means = self.means
        rows, slots = self._index
        chosen = means[rows, slots, actions]  # (B, L)
        rewards = sim.draw_rewards(self.keys, t, actions, chosen)
        info = {
            "rewards": rewards,
            "expected_rewards": chosen,
            "optimal_actions": means.argmax(axis=-1),
            "regret": np.maximum(means.max(axis=-1) - chosen, 0.0),
            "round": np.full(len(self.keys), t, dtype=np.int64),
        }
        self.t = t + 1
        done = self.t >= self.num_rounds
        if not done:
            self.obs, self.means = sim.observe(self.keys, self.instance, self.state, self.t)
        return self.obs, rewards, info, done


def _check_actions(actions: Any, shape: tuple[int, ...], num_actions: int, what: str) -> np.ndarray:
    """Validate integer actions of ``shape`` in ``[0, num_actions)``; return them as int64."""
    a = np.asarray(actions)
    if a.dtype.kind not in "iu":
        raise ValueError(
            f"{what} must be integers in [0, {num_actions - 1}] (dtype int), got dtype {a.dtype}"
        )
    if a.shape != shape:
        if a.size == int(np.prod(shape)) and a.ndim <= len(shape) and shape[-1] == 1:
            a = a.reshape(shape)  # scalar or (B,) actions when L == 1
        else:
            raise ValueError(f"{what} must have shape {shape}, got shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= num_actions):
        raise ValueError(
            f"{what} must be in [0, {num_actions - 1}] (MultiDiscrete([{num_actions}] * "
            f"{shape[-1]})), got {a.tolist()}"
        )
    return a.astype(np.int64, copy=False)


check_actions = _check_actions  # public: the leaderboard checks agents' actions exactly as the env does


class MultiTaskBanditEnv(gym.Env):
    """Base of every hbgym env: one episode = one problem instance, run over the task schedule.

    Subclasses build a :class:`BanditSimulator` and call ``super().__init__(simulator)``.
    ``env.unwrapped.model`` is the public model; ``env.unwrapped.instance`` the sampled truth.

    Rendering (``render_mode="rgb_array"`` or ``"ansi"``, see :mod:`hbgym.envs.render`): the
    cumulative regret curve, per-task cumulative regret and the latest round's actions vs the optimal
    ones. With ``render_mode=None`` (default) nothing extra is recorded.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 30}

    def __init__(self, simulator: BanditSimulator, render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode)
        self.simulator = simulator
        model = simulator.model
        self._recorder = None if render_mode is None else EpisodeRecorder(
            model.num_tasks, model.num_actions, model.tasks_per_round, model.num_rounds
        )
        self.observation_space = simulator.observation_space()
        self.action_space = spaces.MultiDiscrete(
            np.full(model.tasks_per_round, model.num_actions, dtype=np.int64)
        )
        self._batch = EpisodeBatch(simulator)
        self._running = False

    @property
    def model(self) -> BanditModel:
        """Public knowledge about this configuration (what agents may read)."""
        return self.simulator.model

    @property
    def instance(self) -> Any:
        """The sampled truth of the current episode (privileged: oracle agents and tests only)."""
        if self._batch.instance is None:
            raise RuntimeError("no instance yet: call reset() first")
        return take_slot(self._batch.instance, 0)

    @property
    def round(self) -> int:
        """Index of the round the next ``step`` plays (0-based)."""
        return self._batch.t

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options are not supported, got {sorted(options)}")
        obs = self._batch.reset(np.array([rng.episode_key(self.np_random)], dtype=np.uint64))
        self._running = True
        if self._recorder is not None:
            self._recorder.reset()
        return _unbatch(obs), {}

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if not self._running:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        model = self.model
        actions = _check_actions(action, (model.tasks_per_round,), model.num_actions, "action")
        if self._recorder is not None:
            tasks, means = self._batch.obs["task"][0].copy(), self._batch.means[0].copy()
        obs, rewards, info, done = self._batch.step(actions[None])
        if self._recorder is not None:
            self._recorder.record(tasks, actions, means, info["regret"][0])
        self._running = not done
        out_info = {key: info[key][0] for key in INFO_KEYS}
        out_info["round"] = int(info["round"][0])
        return _unbatch(obs), float(rewards[0].sum()), done, False, out_info

    def render(self) -> np.ndarray | str | None:
        """The current frame: ``(240, 320, 3)`` uint8 for ``"rgb_array"``, text for ``"ansi"``,
        None without a ``render_mode`` (Gymnasium's convention)."""
        if self._recorder is None:
            return None
        return self._recorder.rgb_array() if self.render_mode == "rgb_array" else self._recorder.ansi()


def _unbatch(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: value[0].copy() for key, value in obs.items()}


class MultiTaskBanditVectorEnv(VectorEnv):
    """Native vector env: ``num_envs`` episodes simulated together with array operations.

    Subclasses set ``env_class`` to the family's single env class; the constructor takes the same
    keyword arguments. Slot ``i`` reset with seed ``s + i`` equals the single env reset with seed
    ``s + i``. Autoreset mode is next-step: the step after the (simultaneous) end of the episodes
    resets them and ignores its actions. ``info`` holds ``(num_envs, L)`` arrays and ``round``
    ``(num_envs,)``, each with its ``_key`` mask.
    """

    env_class: ClassVar[type[MultiTaskBanditEnv]]
    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": [],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if kwargs.pop("render_mode", None) is not None:
            raise ValueError("the native vector env does not render: use gym.make(id, render_mode=...)")
        template = self.env_class(**kwargs)
        check_episode_memory(
            f"{type(template).__name__} x num_envs={num_envs}",
            {"episodes": getattr(template, "episode_bytes", 0.0)},
            kwargs.get("max_memory_gib"),
            copies=int(num_envs),
        )
        self.simulator = template.simulator
        self.num_envs = int(num_envs)
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._batch = EpisodeBatch(self.simulator)
        self._slot_rngs: list[np.random.Generator] = []
        self._needs_reset = False
        self._running = False

    @property
    def model(self) -> BanditModel:
        return self.simulator.model

    @property
    def instance(self) -> Any:
        """Batched truth of the current episodes (arrays lead with ``num_envs``)."""
        if self._batch.instance is None:
            raise RuntimeError("no instance yet: call reset() first")
        return self._batch.instance

    def _keys(self) -> np.ndarray:
        return np.array([rng.episode_key(g) for g in self._slot_rngs], dtype=np.uint64)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if options:
            raise ValueError(f"reset options are not supported, got {sorted(options)}")
        if seed is None and self._slot_rngs:
            seeds: list[int | None] | None = None
        elif seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed must be an int or {self.num_envs} seeds, got {len(seeds)}")
        if seeds is not None:
            self._slot_rngs = [gym.utils.seeding.np_random(s)[0] for s in seeds]
        obs = self._batch.reset(self._keys())
        self._needs_reset = False
        self._running = True
        return _copy(obs), {}

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._running:
            raise RuntimeError("call reset() before step()")
        model, num_envs = self.model, self.num_envs
        shape = (num_envs, model.tasks_per_round)
        acts = _check_actions(actions, shape, model.num_actions, "actions")
        false = np.zeros(num_envs, dtype=bool)
        if self._needs_reset:  # next-step autoreset: actions are ignored
            obs = self._batch.reset(self._keys())
            self._needs_reset = False
            return _copy(obs), np.zeros(num_envs), false, false.copy(), {}
        obs, rewards, info, done = self._batch.step(acts)
        self._needs_reset = done
        out_info: dict[str, Any] = {}
        for key, value in info.items():
            out_info[key] = value
            out_info["_" + key] = np.ones(num_envs, dtype=bool)
        terminated = np.full(num_envs, done)
        return _copy(obs), rewards.sum(axis=1), terminated, false, out_info


def _copy(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: np.array(value) for key, value in obs.items()}
