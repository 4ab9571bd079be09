"""The slot pool behind :func:`hbgym.offline.collect` and the evaluation contexts.

How contexts are drawn. Every hbgym family is a :class:`~hbgym.envs.core.BanditSimulator` whose
observations and mean rewards are pure functions of (episode key, instance, round). ``collect``
resets the env once (this fixes the instance), then simulates *context episodes* under that same
instance with keys derived from the seed (``rng.hash_words(seed, stream, e)``), and gives the ``i``-th
logged sample of task ``s`` the next unused slot of task ``s`` in those episodes (in round, episode,
slot order). So a sample's context has exactly the distribution the env gives that task's slots, every
slot is used at most once (samples are independent), any schedule works (tasks that act rarely just
need more context episodes), and each reward is the env's own common random number for (key, round,
slot, action). Rounds are simulated for many context episodes at once with array operations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hbgym import rng

__all__ = [
    "STREAM_EVAL_CONTEXTS",
    "STREAM_LOG_ACTIONS",
    "STREAM_LOG_CONTEXTS",
    "STREAM_LOG_TASKS",
    "Slots",
    "check_seed",
    "draw_rewards",
    "draw_slots",
    "seed_key",
    "tile_instance",
    "unwrap_env",
]

# Counter words of the random streams derived from a dataset seed (hbgym families use < 1000).
STREAM_LOG_CONTEXTS = 1001
STREAM_EVAL_CONTEXTS = 1002
STREAM_LOG_TASKS = 1003
STREAM_LOG_ACTIONS = 1004

_MAX_CONTEXT_EPISODES = 1 << 20  # per call of the slot pool: beyond this a task "never acts"
_MAX_BATCH = 2048  # context episodes simulated together


def seed_key(seed: int, stream: int) -> np.ndarray:
    """A uint64 base key for ``stream`` derived from a non-negative integer seed."""
    return rng.hash_words(np.uint64(seed % 2**64), stream, seed // 2**64)


def check_seed(seed: Any) -> int:
    """``seed`` as a non-negative int (None: fresh entropy); ValueError naming a bad value."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def unwrap_env(env: Any) -> Any:
    """The hbgym single env under ``env``'s wrappers, with a clear error for anything else."""
    base = getattr(env, "unwrapped", env)
    if hasattr(base, "num_envs") and isinstance(getattr(base, "num_envs", None), int):
        raise ValueError(
            "collect / evaluation need a single env (gym.make), not a vector env; collect one dataset "
            "per seed instead (slot i of gym.make_vec reset with seed s equals gym.make reset with s+i)"
        )
    if not hasattr(base, "simulator") or not hasattr(base, "model"):
        raise ValueError(f"{type(base).__name__} is not an hbgym environment (it has no simulator/model)")
    return base


def tile_instance(instance: Any, batch: int) -> Any:
    """An unbatched instance dataclass broadcast to ``batch`` identical slots (read-only views)."""
    values = {}
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if isinstance(value, np.ndarray):
            value = np.broadcast_to(value[None], (batch, *value.shape))
        values[f.name] = value
    return dataclasses.replace(instance, **values)


@dataclass
class Slots:
    """Per-slot draws from context episodes under one instance (``N`` slots).

    Attributes: tasks ``(N,)``; observations ``{key: (N, ...)}`` (one slot each, ``"task"`` removed);
    means ``(N, K)`` true mean rewards; keys ``(N,)`` uint64 context-episode keys; provenance
    ``(N, 3)`` int64 (context episode, round, slot).
    """

    tasks: np.ndarray
    observations: dict[str, np.ndarray]
    means: np.ndarray
    keys: np.ndarray
    provenance: np.ndarray

    def take(self, index: np.ndarray) -> Slots:
        return Slots(
            self.tasks[index],
            {k: v[index] for k, v in self.observations.items()},
            self.means[index],
            self.keys[index],
            self.provenance[index],
        )


def draw_slots(
    simulator: Any, instance: Any, base_key: np.ndarray, demand: np.ndarray | None, total: int = 0
) -> Slots:
    """Draw slots from context episodes of ``simulator`` under the fixed ``instance``.

    Args:
        demand: ``(m,)`` number of slots wanted per task (returned grouped by task, each group in
            draw order: round, then context episode, then slot); or None to take the first ``total``
            slots in the env's own order (episode, round, slot), whatever their tasks.
    """
    model = simulator.model
    m, width, num_rounds = model.num_tasks, model.tasks_per_round, model.num_rounds
    per_episode = num_rounds * width
    if demand is None:
        remaining = np.array([total], dtype=np.int64)
        batch = max(1, math.ceil(total / per_episode))
    else:
        remaining = demand.astype(np.int64).copy()
        # Simulate enough context episodes in parallel that a balanced schedule meets the demand
        # after about `rounds` rounds: few rounds mean few Python-level observe calls, many mean
        # little wasted schedule preparation per used slot; sqrt balances the two (speed only).
        most = int(remaining.max(initial=0))
        rounds = int(np.clip(np.sqrt(7e-4 * m * most * num_rounds), 8, num_rounds))
        batch = max(1, math.ceil(1.1 * most * m / (width * rounds)))
    pieces: list[dict[str, Any]] = []
    episode = 0
    while remaining.sum() > 0:
        if episode >= _MAX_CONTEXT_EPISODES:
            missing = np.flatnonzero(remaining).tolist() if demand is not None else []
            raise ValueError(
                f"tasks {missing} never (or too rarely) act in this env's schedule: "
                f"{episode} context episodes were simulated without enough slots for them"
            )
        batch = int(min(batch, _MAX_BATCH, _MAX_CONTEXT_EPISODES - episode))
        keys = rng.hash_words(base_key, np.arange(episode, episode + batch))
        tiled = tile_instance(instance, batch)
        state = simulator.prepare(keys, tiled)
        seen = np.zeros(max(m, 1), dtype=np.int64)
        for t in range(num_rounds):
            obs, means = simulator.observe(keys, tiled, state, t)
            tasks = np.asarray(obs["task"], dtype=np.int64)
            if demand is None:  # keep everything; order fixed below
                keep = np.ones(tasks.shape, dtype=bool)
            else:
                flat = tasks.reshape(-1)  # (B * L,) in (episode, slot) order
                order = np.argsort(flat, kind="stable")
                ranks = np.empty_like(flat)
                ranks[order] = np.arange(flat.size) - np.searchsorted(flat[order], flat[order])
                keep = (ranks < remaining[flat]).reshape(tasks.shape)
                np.add.at(remaining, flat[keep.reshape(-1)], -1)
                seen += np.bincount(flat, minlength=m)
            if keep.any():
                b, slot = np.nonzero(keep)
                piece = {"tasks": tasks[b, slot], "means": means[b, slot], "keys": keys[b]}
                piece["provenance"] = np.stack(
                    [episode + b, np.full(b.size, t), slot], axis=1
                ).astype(np.int64)
                piece["obs"] = {}
                for name, value in obs.items():
                    if name == "task":
                        continue
                    value = np.asarray(value)
                    if value.shape[:2] != tasks.shape:
                        raise ValueError(
                            f"observation {name!r} has shape {value.shape}; offline collection needs "
                            f"a leading (batch, slot) shape {tasks.shape} like 'task'"
                        )
                    piece["obs"][name] = value[b, slot]
                pieces.append(piece)
            if demand is not None and remaining.sum() == 0:
                break
        if demand is None:
            remaining[0] = max(0, total - sum(len(p["tasks"]) for p in pieces))
        elif remaining.sum() > 0:
            # size the next batch from the per-episode rate of the scarcest task (double when unseen)
            rate = seen[remaining > 0] / batch
            if np.any(rate == 0):
                batch = 2 * batch
            else:
                batch = math.ceil(1.1 * np.max(remaining[remaining > 0] / rate)) + 1
        episode += int(keys.size)
    slots = Slots(
        np.concatenate([p["tasks"] for p in pieces]),
        {k: np.concatenate([p["obs"][k] for p in pieces]) for k in pieces[0]["obs"]},
        np.concatenate([p["means"] for p in pieces]),
        np.concatenate([p["keys"] for p in pieces]),
        np.concatenate([p["provenance"] for p in pieces]),
    )
    if demand is None:  # the env's own order: episode, round, slot
        prov = slots.provenance
        return slots.take(np.lexsort((prov[:, 2], prov[:, 1], prov[:, 0]))[:total])
    return slots.take(np.argsort(slots.tasks, kind="stable"))


def draw_rewards(simulator: Any, slots: Slots, actions: np.ndarray) -> np.ndarray:
    """The env's reward for ``actions`` ``(N,)`` at each slot: its common random number of
    (context-episode key, round, slot, action), grouped by round."""
    rewards = np.empty(actions.shape, dtype=np.float64)
    rounds, slot_idx = slots.provenance[:, 1], slots.provenance[:, 2]
    chosen = np.take_along_axis(slots.means, actions[:, None], axis=1)[:, 0]
    width = simulator.model.tasks_per_round  # the simulator sees full (N, L) rounds
    for t in np.unique(rounds):
        idx = np.flatnonzero(rounds == t)
        rows = np.arange(idx.size)
        acts = np.zeros((idx.size, width), dtype=np.int64)
        means = np.zeros((idx.size, width))
        acts[rows, slot_idx[idx]] = actions[idx]
        means[rows, slot_idx[idx]] = chosen[idx]
        drawn = simulator.draw_rewards(slots.keys[idx], int(t), acts, means)
        rewards[idx] = np.asarray(drawn, dtype=np.float64)[rows, slot_idx[idx]]
    return rewards
