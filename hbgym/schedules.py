"""Task schedules: which tasks act in each round (the sets S_t of the HierTS paper, Sec. 2).

A schedule is shared by every family that has tasks (HierGaussian, MovieLensMulti, MNISTMulti,
MultiBandit's arrival process). It is batched: ``tasks(state, t)`` returns the ``(B, L)`` task ids of
round ``t`` for ``B`` independent episodes, computed from counter-based random numbers
(:mod:`hbgym.rng`), so slot ``i`` of a vector env reproduces the single env with the same key.

Kinds:

``concurrent``
    HierTS Sec. 7: take a random permutation of the list in which every task appears ``horizon``
    times, and batch every ``L`` consecutive elements into a round (``num_rounds = m * n / L``). As in
    the paper the list is a permutation of a multiset, so a task may act twice in one round.
``sequential``
    The same construction with ``L = 1``: one task per round, tasks in random order.
``meta``
    Task after task (meta-learning bandit, S_t = {ceil(t / n)}): task 0 for ``horizon`` rounds, then
    task 1, and so on. ``L = 1``.
``arrival``
    Each of the ``L`` slots of each round draws its task i.i.d. from ``arrival_probs`` (uniform by
    default); ``num_rounds = m * n / L`` so the *expected* number of interactions per task is ``n``
    under uniform arrival.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hbgym import rng

SCHEDULES = ("concurrent", "sequential", "meta", "arrival")


@dataclass(frozen=True)
class TaskSchedule:
    """Which tasks act in each round.

    Attributes:
        kind: one of :data:`SCHEDULES`.
        num_tasks: m.
        horizon: interactions per task n (expected, for ``arrival``).
        tasks_per_round: L.
        arrival_probs: ``(m,)`` task arrival probabilities (``arrival`` only; uniform when None).
    """

    kind: str
    num_tasks: int
    horizon: int
    tasks_per_round: int
    arrival_probs: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule={self.kind!r} is unknown; allowed: {', '.join(SCHEDULES)}")
        for name in ("num_tasks", "horizon", "tasks_per_round"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.kind in ("sequential", "meta") and self.tasks_per_round != 1:
            raise ValueError(
                f"schedule={self.kind!r} acts in one task per round, so tasks_per_round must be 1, "
                f"got {self.tasks_per_round}"
            )
        total = self.num_tasks * self.horizon
        if total % self.tasks_per_round:
            raise ValueError(
                f"num_tasks * horizon = {total} is not divisible by tasks_per_round = "
                f"{self.tasks_per_round}; choose values so that every round is full"
            )
        if self.kind == "arrival":
            probs = self.arrival_probs
            if probs is None:
                probs = np.full(self.num_tasks, 1.0 / self.num_tasks)
            probs = np.asarray(probs, dtype=np.float64)
            if probs.shape != (self.num_tasks,) or np.any(~np.isfinite(probs)) or np.any(probs < 0):
                raise ValueError(
                    f"arrival_probs must be {self.num_tasks} non-negative finite numbers, got {probs!r}"
                )
            if not np.isclose(probs.sum(), 1.0, atol=1e-8):
                raise ValueError(f"arrival_probs must sum to 1, they sum to {probs.sum():.6g}")
            object.__setattr__(self, "arrival_probs", probs)
        elif self.arrival_probs is not None:
            raise ValueError(f"arrival_probs is only used with schedule='arrival', not {self.kind!r}")

    @property
    def num_rounds(self) -> int:
        """Rounds per episode: ``num_tasks * horizon / tasks_per_round``."""
        return self.num_tasks * self.horizon // self.tasks_per_round

    def prepare(self, keys: np.ndarray) -> np.ndarray | None:
        """Per-episode schedule state for ``keys`` ``(B,)``: the ``(B, m * n)`` task list, or None."""
        if self.kind not in ("concurrent", "sequential"):
            return None
        total = self.num_tasks * self.horizon
        scores = rng.uniform(keys[:, None], rng.STREAM_SCHEDULE, np.arange(total)[None, :])
        order = np.argsort(scores, axis=1, kind="stable")
        # position p of the multiset list holds task p // horizon
        dtype = np.int32 if total < 2**31 else np.int64
        return (order // self.horizon).astype(dtype)

    def tasks(self, state: np.ndarray | None, keys: np.ndarray, t: int | np.ndarray) -> np.ndarray:
        """Task ids ``(B, L)`` (int64) acting in round ``t`` (0-based); for rounds ``t`` ``(T,)``
        the ids ``(B, T, L)`` of each (the same numbers, in one call)."""
        num_envs, width = len(keys), self.tasks_per_round
        if np.ndim(t):
            rounds = np.asarray(t, dtype=np.int64)
            if self.kind in ("concurrent", "sequential"):
                total = self.num_tasks * self.horizon
                index = np.minimum(rounds[:, None] * width + np.arange(width), total - 1)  # (T, L)
                return state[:, index].astype(np.int64)
            if self.kind == "meta":
                ids = (rounds // self.horizon)[None, :, None]
                return np.broadcast_to(ids, (num_envs, len(rounds), 1)).copy()
            slots = np.arange(width)[None, None, :]
            u = rng.uniform(keys[:, None, None], rng.STREAM_SCHEDULE, rounds[None, :, None], slots)
            return rng.categorical(u, self.arrival_probs)
        if self.kind in ("concurrent", "sequential"):
            return state[:, t * width : (t + 1) * width].astype(np.int64)
        if self.kind == "meta":
            return np.full((num_envs, 1), t // self.horizon, dtype=np.int64)
        u = rng.uniform(keys[:, None], rng.STREAM_SCHEDULE, t, np.arange(width)[None, :])
        return rng.categorical(u, self.arrival_probs)
