"""Wrappers that turn hbgym envs into inputs for off-the-shelf (memoryless) RL policies.

* :class:`SufficientStatsObservation` replaces the ``Dict`` observation by one flat ``float32``
  vector of per-task sufficient statistics, so that a feed-forward policy (SB3 PPO, A2C, DQN) can
  adapt within an episode: what a Bayesian agent conditions on, made observable.
* :class:`DiscreteAction` exposes ``MultiDiscrete([K])`` (``L == 1``) as ``Discrete(K)`` (DQN).

The statistics live in the pure, batched class :class:`SufficientStats` (numpy only) so that an
agent adapter (``hbgym.leaderboards.rl.SB3Agent``) reproduces exactly the wrapper's observation stream
from the runner's ``act``/``update`` calls, without the wrapper.

Example (``python -m hbgym.leaderboards.rl --help`` trains on this stack)::

    env = DiscreteAction(SufficientStatsObservation(
        gym.make("HierGaussianMAB-v0", schedule="sequential", num_tasks=5, horizon=20)))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["DiscreteAction", "SufficientStats", "SufficientStatsObservation"]


class SufficientStats:
    """Batched per-task sufficient statistics of an hbgym episode, as one flat vector per replicate.

    Two kinds, picked from the env's public model and observation space:

    * **K-armed** (``model.action_set == "one_hot"``, e.g. HierGaussianMAB-v0): per task ``s`` and
      arm ``k`` the pull count ``N_{s,k}`` and sum of rewards ``R_{s,k}``.
    * **linear** (observations with ``"features"`` ``(L, K, d)``): per task the Gram matrix
      ``G_s = sum x x^T`` and the reward-weighted feature sum ``b_s = sum r x`` of the chosen
      features, and the count ``n_s``.

    The vector of round ``t`` is the concatenation of, for each slot ``l < L`` (acting task
    ``s = task[l]``):

    * K-armed: ``N_{s,:} / n`` (``K``) and the mean rewards ``R_{s,:} / max(N_{s,:}, 1)`` (``K``,
      0 for arms never pulled), with ``n = num_rounds * L / m`` the expected interactions per task;
    * linear: ``G_s / max(n_s, 1)`` (``d * d``), ``b_s / max(n_s, 1)`` (``d``), ``n_s / n`` (1), the
      slot's features (``K * d``) and its ``"context"`` row when the env has one;

    then the same statistics pooled over all tasks (counts normalised by ``num_rounds * L``) — what a
    hierarchical agent shares between tasks — and finally the episode progress ``t / num_rounds``.
    Rewards are not rescaled (hbgym rewards are O(1)).

    Shapes: ``observe`` takes an observation dict of ``(B, ...)`` arrays and returns ``(B, D)``
    float32; ``update`` takes actions and per-slot rewards ``(B, L)``.
    """

    def __init__(self, model: Any, observation_space: spaces.Dict) -> None:
        if not isinstance(observation_space, spaces.Dict) or "task" not in observation_space.spaces:
            raise ValueError(
                f"SufficientStats needs an hbgym Dict observation with 'task', got {observation_space}")
        self.model = model
        self.num_tasks = int(model.num_tasks)
        self.num_actions = int(model.num_actions)
        self.slots = int(model.tasks_per_round)
        self.num_rounds = int(model.num_rounds)
        self.per_task = self.num_rounds * self.slots / self.num_tasks
        sub = observation_space.spaces
        self.context_dim = int(np.prod(sub["context"].shape[1:])) if "context" in sub else 0
        if getattr(model, "action_set", None) == "one_hot":
            self.kind, self.dim = "k_armed", 0
            block = 2 * self.num_actions
            pooled = 2 * self.num_actions
        elif "features" in sub:
            self.kind, self.dim = "linear", int(sub["features"].shape[-1])
            d = self.dim
            block = d * d + d + 1 + self.num_actions * d + self.context_dim
            pooled = d * d + d + 1
        else:
            raise ValueError(
                f"SufficientStats supports K-armed (action_set='one_hot') envs and envs whose "
                f"observations have 'features'; got keys {sorted(sub)} (for MultiBandit use features=True)"
            )
        self.size = self.slots * block + pooled + 1
        self.batch = 0
        self.t = 0

    def space(self) -> spaces.Box:
        """The observation space of one replicate: ``Box(-inf, inf, (D,), float32)``."""
        return spaces.Box(-np.inf, np.inf, shape=(self.size,), dtype=np.float32)

    def reset(self, batch: int) -> None:
        """Forget everything; ``batch`` = ``B`` replicates."""
        self.batch, self.t = int(batch), 0
        m, k, d = self.num_tasks, self.num_actions, self.dim
        if self.kind == "k_armed":
            self.counts = np.zeros((batch, m, k))  # B x m x K
            self.sums = np.zeros((batch, m, k))  # B x m x K
        else:
            self.counts = np.zeros((batch, m))  # B x m
            self.gram = np.zeros((batch, m, d, d))  # B x m x d x d
            self.sums = np.zeros((batch, m, d))  # B x m x d

    def _tasks(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        tasks = np.asarray(obs["task"], dtype=np.int64)
        if tasks.shape != (self.batch, self.slots):
            raise ValueError(
                f"obs['task'] must have shape {(self.batch, self.slots)} (B, L), got {tasks.shape}")
        return tasks

    def observe(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ``(B, D)`` float32 vectors for the batched observation ``obs`` of the current round."""
        tasks = self._tasks(obs)
        rows = np.arange(self.batch)[:, None]
        if self.kind == "k_armed":
            counts, sums = self.counts[rows, tasks], self.sums[rows, tasks]  # B x L x K
            slot = [counts / self.per_task, sums / np.maximum(counts, 1.0)]
            pooled_counts, pooled_sums = self.counts.sum(1), self.sums.sum(1)  # B x K
            pooled = [pooled_counts / (self.num_rounds * self.slots),
                      pooled_sums / np.maximum(pooled_counts, 1.0)]
        else:
            n = self.counts[rows, tasks][..., None]  # B x L x 1
            scale = np.maximum(n, 1.0)
            gram = self.gram[rows, tasks].reshape(self.batch, self.slots, -1) / scale
            slot = [gram, self.sums[rows, tasks] / scale, n / self.per_task]
            slot.append(np.asarray(obs["features"]).reshape(self.batch, self.slots, -1))
            if self.context_dim:
                slot.append(np.asarray(obs["context"]).reshape(self.batch, self.slots, -1))
            total = self.counts.sum(1)[:, None]  # B x 1
            scale = np.maximum(total, 1.0)
            pooled = [self.gram.sum(1).reshape(self.batch, -1) / scale, self.sums.sum(1) / scale,
                      total / (self.num_rounds * self.slots)]
        progress = np.full((self.batch, 1), self.t / self.num_rounds)
        parts = [np.concatenate(slot, axis=-1).reshape(self.batch, -1), *pooled, progress]
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def update(self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: np.ndarray) -> None:
        """Add the rewards ``(B, L)`` of ``action`` ``(B, L)`` taken at the round of ``obs``."""
        tasks = self._tasks(obs)
        shape = tasks.shape
        action = np.asarray(action, dtype=np.int64).reshape(shape)
        reward = np.asarray(reward, dtype=np.float64).reshape(shape)
        rows = np.broadcast_to(np.arange(self.batch)[:, None], shape)
        if self.kind == "k_armed":
            np.add.at(self.counts, (rows, tasks, action), 1.0)
            np.add.at(self.sums, (rows, tasks, action), reward)
        else:
            features = np.asarray(obs["features"], dtype=np.float64)  # B x L x K x d
            x = np.take_along_axis(features, action[..., None, None], axis=2)[:, :, 0]  # B x L x d
            np.add.at(self.counts, (rows, tasks), 1.0)
            np.add.at(self.gram, (rows, tasks), x[..., :, None] * x[..., None, :])
            np.add.at(self.sums, (rows, tasks), reward[..., None] * x)
        self.t += 1


def _batched(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: np.asarray(value)[None] for key, value in obs.items()}


class SufficientStatsObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Observation = the flat :class:`SufficientStats` vector of the acting task(s) (see there).

    It needs the actions and per-slot rewards (``info["rewards"]``), hence a full wrapper rather
    than an ``ObservationWrapper``. Action space, rewards, termination and ``info`` are unchanged.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        model = getattr(env.unwrapped, "model", None)
        if model is None:
            raise ValueError(f"{type(env.unwrapped).__name__} has no public `model`: not an hbgym env")
        self.stats = SufficientStats(model, env.observation_space)
        self.observation_space = self.stats.space()
        self._last: dict[str, np.ndarray] | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.stats.reset(1)
        self._last = _batched(obs)
        return self.stats.observe(self._last)[0], info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.stats.update(self._last, np.asarray(action)[None], np.asarray(info["rewards"])[None])
        self._last = _batched(obs)
        return self.stats.observe(self._last)[0], reward, terminated, truncated, info


class DiscreteAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``MultiDiscrete([K])`` -> ``Discrete(K)`` for envs with one task per round (``L == 1``)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        space = env.action_space
        if not isinstance(space, spaces.MultiDiscrete) or space.shape != (1,):
            raise ValueError(
                f"DiscreteAction needs an env with one task per round (action space MultiDiscrete([K]), "
                f"L == 1), got {space}; use schedule='sequential' or 'meta'"
            )
        self.action_space = spaces.Discrete(int(space.nvec[0]))

    def action(self, action: Any) -> np.ndarray:
        a = np.asarray(action)
        if a.size != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"action must be one integer in [0, {self.action_space.n - 1}], got {action!r}")
        return a.reshape(1).astype(np.int64)
