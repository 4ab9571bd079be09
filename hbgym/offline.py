"""Logged bandit datasets and exact off-policy evaluation (the offline track).

Hong, Kveton, Katariya, Zaheer, Ghavamzadeh. *Multi-task Off-policy Learning from Bandit Feedback.*
ICML 2023, Sec. 2: a logged dataset ``D = {(S_t, X_t, A_t, Y_t)}_{t <= n}`` holds, per sample, a task
``S_t`` (uniform over the ``m`` tasks by default, as in Sec. 7), a context ``X_t ~ P_x`` (here: the
observation of one slot of an hbgym env: ``"features"`` ``(K, d)`` and/or ``"context"``), the action
``A_t`` of a logging policy ``pi_0`` and its reward ``Y_t``. The problem instance (mu*, theta_s) is
fixed within a dataset. Learners output per-task policies; their quality is the suboptimality
``V(pi_{s,*}; theta_s) - V(pi_s; theta_s)`` averaged over tasks, with ``V(pi; theta) = E_X[r(X, pi(X);
theta)]`` (Sec. 2).

What this module provides (NumPy + Gymnasium only; Minari is imported lazily):

* :func:`collect` -> :class:`LoggedDataset`; ``save`` / :func:`load` (one ``.npz`` file with a schema
  version, validated on load); :func:`to_minari` / :func:`from_minari` (the ``offline`` extra).
* :func:`evaluation_contexts` -> :class:`EvaluationContexts`: a fixed Monte Carlo sample of contexts
  per task with the *true* mean reward of every action (from ``env.unwrapped.instance``), on which the
  value of any per-task policy is computed exactly (no reward noise).
* :func:`evaluate_learner`: collect -> learn -> score in one call (used by the leaderboard's
  ``offline`` suite).

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
import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from hbgym import __version__, rng

__all__ = [
    "SCHEMA_VERSION",
    "LoggedDataset",
    "EvaluationContexts",
    "OfflineScore",
    "collect",
    "load",
    "to_minari",
    "from_minari",
    "evaluation_contexts",
    "evaluate_learner",
    "instance_fingerprint",
]

#: version of the on-disk schema (``.npz`` and the Minari metadata); bumped on incompatible changes
SCHEMA_VERSION = 1

# Counter words of the random streams derived from a dataset seed (hbgym families use < 1000).
STREAM_LOG_CONTEXTS = 1001
STREAM_EVAL_CONTEXTS = 1002
STREAM_LOG_TASKS = 1003
STREAM_LOG_ACTIONS = 1004

TASK_SAMPLINGS = ("uniform", "schedule")
_MAX_CONTEXT_EPISODES = 1 << 20  # per call of the slot pool: beyond this a task "never acts"
_MAX_BATCH = 2048  # context episodes simulated together


# --------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (arrays -> nested lists); raises TypeError when impossible."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _model_summary(model: Any) -> dict[str, Any]:
    """The public model as JSON (fields that are not serialisable are recorded by their repr)."""
    out: dict[str, Any] = {"class": type(model).__name__}
    for f in dataclasses.fields(model):
        value = getattr(model, f.name)
        try:
            out[f.name] = _jsonable(value)
        except TypeError:
            out[f.name] = repr(value)
    return out


def instance_fingerprint(instance: Any) -> str:
    """SHA-256 of an (unbatched) instance dataclass: class name, field names, dtypes, shapes, bytes.

    Stored with a dataset so that evaluation and oracle learners can check they read the same truth.
    """
    h = hashlib.sha256(type(instance).__name__.encode())
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        h.update(f.name.encode())
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def _seed_key(seed: int, stream: int) -> np.ndarray:
    """A uint64 base key for ``stream`` derived from a non-negative integer seed."""
    return rng.hash_words(np.uint64(seed % 2**64), stream, seed // 2**64)


def _check_seed(seed: Any) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _unwrap_env(env: Any) -> Any:
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


def _make_env(env: Any, env_kwargs: Mapping[str, Any] | None) -> tuple[Any, str | None, dict | None]:
    """``(env, env_id, env_kwargs)`` from an id (made here) or an env (its spec, when it has one)."""
    if isinstance(env, str):
        kwargs = dict(env_kwargs or {})
        made = gym.make(env, **kwargs)
        return made, made.spec.id if made.spec else env, kwargs
    if env_kwargs:
        raise ValueError("env_kwargs is only used with an env id; got an env object and env_kwargs")
    spec = getattr(env, "spec", None)
    if spec is None:
        return env, None, None
    return env, spec.id, dict(spec.kwargs)


def _tile_instance(instance: Any, batch: int) -> Any:
    """An unbatched instance dataclass broadcast to ``batch`` identical slots (read-only views)."""
    values = {}
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if isinstance(value, np.ndarray):
            value = np.broadcast_to(value[None], (batch, *value.shape))
        values[f.name] = value
    return dataclasses.replace(instance, **values)


# --------------------------------------------------------------------------- the slot pool


@dataclass
class _Slots:
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

    def take(self, index: np.ndarray) -> _Slots:
        return _Slots(
            self.tasks[index],
            {k: v[index] for k, v in self.observations.items()},
            self.means[index],
            self.keys[index],
            self.provenance[index],
        )


def _draw_slots(
    simulator: Any, instance: Any, base_key: np.ndarray, demand: np.ndarray | None, total: int = 0
) -> _Slots:
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
        tiled = _tile_instance(instance, batch)
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
    slots = _Slots(
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


def _draw_rewards(simulator: Any, slots: _Slots, actions: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------- the dataset


def _as_int_vector(name: str, value: Any, n: int | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {arr.dtype} shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries (one per sample), got {arr.shape[0]}")
    return arr.astype(np.int64)


def _first_bad(mask: np.ndarray, values: np.ndarray) -> str:
    idx = int(np.flatnonzero(mask)[0])
    return f"{int(mask.sum())} bad entries, first at index {idx}: {values[idx]!r}"


@dataclass(eq=False)
class LoggedDataset:
    """A logged multi-task bandit dataset ``{(S_t, X_t, A_t, Y_t)}`` (HierOPO paper, Sec. 2).

    Attributes:
        tasks: ``(n,)`` int64 task ids ``S_t`` in ``[0, num_tasks)``.
        actions: ``(n,)`` int64 logged actions ``A_t`` in ``[0, num_actions)``.
        rewards: ``(n,)`` float64 rewards ``Y_t`` (finite).
        observations: the logged context of each sample, one slot of the env's observation:
            ``"features"`` ``(n, K, d)`` (phi(X_t, a) for every action a) and/or ``"context"``
            ``(n, d_ctx)``; any other per-slot key of the env is kept too.
        num_tasks: m.
        num_actions: K.
        propensities: ``(n,)`` logging probabilities ``pi_0(A_t | X_t, S_t)`` in (0, 1] when known
            (uniform logging: 1/K), else None.
        provenance: ``(n, 3)`` int64 (context episode, round, slot) of each sample in the simulator
            (collected datasets only; lets anyone regenerate a sample), else None.
        metadata: JSON-serialisable provenance: ``schema_version``, ``env_id``, ``env_kwargs``,
            ``seed`` (the ``env.reset`` seed that fixes the instance), ``instance_fingerprint``,
            ``logging_policy``, ``task_sampling``, ``model`` (summary of the public model).

    Construction validates everything (shapes, ranges, finiteness) and raises ``ValueError`` naming
    the field, so a dataset object is always consistent.
    """

    tasks: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    observations: dict[str, np.ndarray]
    num_tasks: int
    num_actions: int
    propensities: np.ndarray | None = None
    provenance: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("num_tasks", "num_actions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))
        self.tasks = _as_int_vector("tasks", self.tasks)
        n = self.tasks.shape[0]
        self.actions = _as_int_vector("actions", self.actions, n)
        bad = (self.tasks < 0) | (self.tasks >= self.num_tasks)
        if bad.any():
            raise ValueError(
                f"tasks must be in [0, {self.num_tasks - 1}] (num_tasks={self.num_tasks}); "
                + _first_bad(bad, self.tasks)
            )
        bad = (self.actions < 0) | (self.actions >= self.num_actions)
        if bad.any():
            raise ValueError(
                f"actions must be in [0, {self.num_actions - 1}] (num_actions={self.num_actions}); "
                + _first_bad(bad, self.actions)
            )
        rewards = np.asarray(self.rewards)
        if rewards.shape != (n,) or rewards.dtype.kind not in "iuf":
            raise ValueError(
                f"rewards must be a real array of shape ({n},), got {rewards.dtype} {rewards.shape}"
            )
        self.rewards = rewards.astype(np.float64)
        bad = ~np.isfinite(self.rewards)
        if bad.any():
            raise ValueError("rewards must be finite (no NaN or inf); " + _first_bad(bad, self.rewards))
        if not isinstance(self.observations, Mapping) or not self.observations:
            raise ValueError("observations must be a non-empty dict such as {'features': (n, K, d) array}")
        observations = {}
        for key, value in self.observations.items():
            if key == "task":
                raise ValueError("observations must not repeat 'task' (the tasks field holds it)")
            arr = np.asarray(value)
            if arr.ndim < 1 or arr.shape[0] != n or arr.dtype.kind not in "iuf":
                raise ValueError(
                    f"observations[{key!r}] must be a real array with {n} rows (one per sample), "
                    f"got dtype {arr.dtype} shape {arr.shape}"
                )
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ValueError(f"observations[{key!r}] contains NaN or inf values")
            observations[str(key)] = arr
        self.observations = observations
        feats = observations.get("features")
        if feats is not None and (feats.ndim != 3 or feats.shape[1] != self.num_actions):
            raise ValueError(
                f"observations['features'] must have shape (n, K={self.num_actions}, d), got {feats.shape}"
            )
        if self.propensities is not None:
            p = np.asarray(self.propensities, dtype=np.float64)
            if p.shape != (n,):
                raise ValueError(f"propensities must have shape ({n},), got {p.shape}")
            bad = ~(np.isfinite(p) & (p > 0) & (p <= 1))
            if bad.any():
                raise ValueError("propensities must be in (0, 1]; " + _first_bad(bad, p))
            self.propensities = p
        if self.provenance is not None:
            prov = np.asarray(self.provenance)
            if prov.shape != (n, 3) or (prov.size and prov.dtype.kind not in "iu"):
                raise ValueError(f"provenance must be an integer array of shape ({n}, 3), got {prov.shape}")
            self.provenance = prov.astype(np.int64)
        if not isinstance(self.metadata, Mapping):
            raise ValueError(f"metadata must be a dict, got {type(self.metadata).__name__}")
        try:
            self.metadata = json.loads(json.dumps(_jsonable(dict(self.metadata))))
        except (TypeError, ValueError) as err:
            raise ValueError(f"metadata must be JSON-serialisable: {err}") from None
        self.metadata.setdefault("schema_version", SCHEMA_VERSION)

    # ------------------------------------------------------------------ views

    @property
    def num_samples(self) -> int:
        """n, the number of logged samples."""
        return int(self.tasks.shape[0])

    def __len__(self) -> int:
        return self.num_samples

    @property
    def features(self) -> np.ndarray | None:
        """``(n, K, d)`` action features of each sample, or None."""
        return self.observations.get("features")

    @property
    def context(self) -> np.ndarray | None:
        """``(n, d_ctx)`` context of each sample, or None."""
        return self.observations.get("context")

    @property
    def logged_features(self) -> np.ndarray:
        """``(n, d)`` phi(X_t, A_t): the feature vector of each logged action."""
        if self.features is None:
            raise ValueError("this dataset has no 'features' observation")
        return self.features[np.arange(self.num_samples), self.actions]

    @property
    def seed(self) -> int | None:
        """The ``env.reset`` seed that fixed the instance (collected datasets)."""
        return self.metadata.get("seed")

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def env_kwargs(self) -> dict[str, Any] | None:
        return self.metadata.get("env_kwargs")

    def task_counts(self) -> np.ndarray:
        """``(m,)`` number of samples per task."""
        return np.bincount(self.tasks, minlength=self.num_tasks)

    def take(self, index: Any) -> LoggedDataset:
        """The samples selected by ``index`` (integer indices, a slice or a boolean mask)."""
        sel = np.arange(self.num_samples)[index]
        return LoggedDataset(
            self.tasks[sel],
            self.actions[sel],
            self.rewards[sel],
            {k: v[sel] for k, v in self.observations.items()},
            self.num_tasks,
            self.num_actions,
            None if self.propensities is None else self.propensities[sel],
            None if self.provenance is None else self.provenance[sel],
            dict(self.metadata),
        )

    def head(self, n: int) -> LoggedDataset:
        """The first ``n`` samples (still i.i.d. for uniform task sampling and a fixed logging
        policy: the natural way to vary the dataset size on one instance)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= self.num_samples:
            raise ValueError(f"n must be an integer in [0, {self.num_samples}], got {n!r}")
        return self.take(slice(0, int(n)))

    def __eq__(self, other: object) -> bool:
        """Exact equality of every array and of the metadata (used by round-trip tests)."""
        if not isinstance(other, LoggedDataset):
            return NotImplemented

        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            if a is None or b is None:
                return a is None and b is None
            return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)

        return (
            self.num_tasks == other.num_tasks
            and self.num_actions == other.num_actions
            and all(same(getattr(self, k), getattr(other, k))
                    for k in ("tasks", "actions", "rewards", "propensities", "provenance"))
            and sorted(self.observations) == sorted(other.observations)
            and all(same(v, other.observations[k]) for k, v in self.observations.items())
            and self.metadata == other.metadata
        )

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ compatibility

    def check_compatible(self, env_or_model: Any) -> None:
        """Raise ``ValueError`` unless the dataset's sizes match an env (or public model).

        Checks ``num_tasks``, ``num_actions``, the feature dimension ``d`` (when the model has
        ``dim``) and, for an env, the per-slot shape of every observation key.
        """
        base = getattr(env_or_model, "unwrapped", env_or_model)
        model = getattr(base, "model", base)
        problems = []
        for name in ("num_tasks", "num_actions"):
            want = getattr(model, name, None)
            if want is not None and want != getattr(self, name):
                problems.append(f"{name}: dataset {getattr(self, name)} vs env {want}")
        dim = getattr(model, "dim", None)
        feats = self.features
        if dim is not None and feats is not None and feats.shape[2] != dim:
            problems.append(f"feature dim d: dataset {feats.shape[2]} vs env {dim}")
        space = getattr(base, "observation_space", None)
        if isinstance(space, gym.spaces.Dict):
            for key, value in self.observations.items():
                sub = space.spaces.get(key)
                if sub is None:
                    problems.append(f"observation {key!r} is not produced by the env")
                elif tuple(sub.shape[1:]) != value.shape[1:]:
                    problems.append(
                        f"observation {key!r}: dataset per-sample shape {value.shape[1:]} vs env "
                        f"per-slot shape {tuple(sub.shape[1:])}"
                    )
        if problems:
            raise ValueError("dataset does not match the environment: " + "; ".join(problems))

    def make_env(self) -> gym.Env:
        """Rebuild the env this dataset was collected from, reset to the same instance.

        Raises ``ValueError`` when the dataset does not record a registered env id, and when the
        rebuilt instance differs from the recorded fingerprint (the env's code or version changed).
        """
        if self.env_id is None or self.env_kwargs is None or self.seed is None:
            raise ValueError(
                "this dataset does not record env_id, env_kwargs and seed: pass the env explicitly"
            )
        env = gym.make(self.env_id, **self.env_kwargs)
        env.reset(seed=self.seed)
        self._check_instance(env.unwrapped.instance)
        return env

    def _check_instance(self, instance: Any) -> None:
        want = self.metadata.get("instance_fingerprint")
        if want is not None and instance_fingerprint(instance) != want:
            raise ValueError(
                "the environment's instance is not the one this dataset was logged on (fingerprint "
                "mismatch): reset the env with the dataset's seed (dataset.make_env())"
            )

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | os.PathLike) -> None:
        """Write the dataset to one ``.npz`` file (atomically: temp file, then rename)."""
        arrays: dict[str, np.ndarray] = {
            "tasks": self.tasks,
            "actions": self.actions,
            "rewards": self.rewards,
            "sizes": np.array([self.num_tasks, self.num_actions], dtype=np.int64),
            "metadata": np.array(json.dumps(self.metadata, sort_keys=True)),
        }
        for key, value in self.observations.items():
            arrays["obs." + key] = value
        if self.propensities is not None:
            arrays["propensities"] = self.propensities
        if self.provenance is not None:
            arrays["provenance"] = self.provenance
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".hbgym-", suffix=".npz.tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


_REQUIRED = ("tasks", "actions", "rewards", "sizes", "metadata")


def load(path: str | os.PathLike) -> LoggedDataset:
    """Read a dataset written by :meth:`LoggedDataset.save`, validating schema version and content."""
    try:
        archive = np.load(os.fspath(path), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{os.fspath(path)!r} is not a readable .npz file: {err}") from None
    with archive:
        files = set(archive.files)
        missing = [k for k in _REQUIRED if k not in files]
        if missing:
            raise ValueError(f"{os.fspath(path)!r} is not an hbgym logged dataset: missing {missing}")
        try:
            metadata = json.loads(str(archive["metadata"]))
        except json.JSONDecodeError as err:
            raise ValueError(f"{os.fspath(path)!r}: corrupt metadata ({err})") from None
        version = metadata.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{os.fspath(path)!r} has schema_version {version!r}; this hbgym reads version "
                f"{SCHEMA_VERSION}"
            )
        sizes = archive["sizes"]
        if sizes.shape != (2,):
            raise ValueError(f"{os.fspath(path)!r}: corrupt 'sizes' entry {sizes!r}")
        observations = {k[4:]: archive[k] for k in archive.files if k.startswith("obs.")}
        return LoggedDataset(
            tasks=archive["tasks"],
            actions=archive["actions"],
            rewards=archive["rewards"],
            observations=observations,
            num_tasks=int(sizes[0]),
            num_actions=int(sizes[1]),
            propensities=archive["propensities"] if "propensities" in files else None,
            provenance=archive["provenance"] if "provenance" in files else None,
            metadata=metadata,
        )


# --------------------------------------------------------------------------- collection


def _policy_name(policy: Any) -> str:
    return str(getattr(policy, "name", "") or type(policy).__name__)


def _act_chunks(policy: Any, tasks: np.ndarray, observations: Mapping[str, np.ndarray],
                num_actions: int, width: int, on_chunk: Callable | None = None) -> np.ndarray:
    """Actions ``(N,)`` of an Agent-protocol ``policy`` on ``N`` single-slot samples.

    The samples are shown in order as unbatched observations of ``width`` slots (``{"task":
    (W,), key: (W, ...)}``; the last one may be shorter). ``on_chunk(index, obs, actions)`` runs after
    each act (used to draw rewards and feed them back to a learning logging policy).
    """
    if getattr(policy, "num_envs", 1) != 1:
        raise ValueError(
            f"the policy must act on one observation at a time (num_envs=1), got num_envs="
            f"{policy.num_envs}"
        )
    act = policy.act if hasattr(policy, "act") else policy
    if not callable(act):
        raise ValueError(f"{type(policy).__name__} is not a policy: it has no act(obs) method")
    out = np.empty(tasks.shape[0], dtype=np.int64)
    for start in range(0, tasks.shape[0], width):
        index = np.arange(start, min(start + width, tasks.shape[0]))
        obs = {"task": tasks[index], **{k: v[index] for k, v in observations.items()}}
        actions = np.asarray(act(obs))
        if actions.shape != index.shape and actions.size == index.size:
            actions = actions.reshape(index.shape)
        if actions.shape != index.shape or (actions.size and actions.dtype.kind not in "iu"):
            raise ValueError(
                f"{_policy_name(policy)}.act returned {actions.dtype} {actions.shape}; expected "
                f"integer actions of shape {index.shape}"
            )
        if actions.size and (actions.min() < 0 or actions.max() >= num_actions):
            bad = np.unique(actions[(actions < 0) | (actions >= num_actions)])[:10].tolist()
            raise ValueError(
                f"{_policy_name(policy)}.act returned actions outside [0, {num_actions - 1}]: {bad}"
            )
        out[index] = actions
        if on_chunk is not None:
            on_chunk(index, obs, actions)
    return out


def collect(
    env: str | gym.Env,
    num_samples: int,
    logging_policy: Any = "uniform",
    seed: int | None = None,
    task_sampling: str | Sequence[float] = "uniform",
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    learn: bool = False,
    width: int | None = None,
) -> LoggedDataset:
    """Log ``num_samples`` bandit interactions on one problem instance.

    Args:
        env: a registered env id (made with ``env_kwargs``) or an hbgym env. The env is reset with
            ``seed``; afterwards ``env.unwrapped.instance`` is the dataset's instance (evaluate on it).
        num_samples: n.
        logging_policy: ``"uniform"`` (uniform actions, propensity 1/K; Sec. 7) or any object with
            the Agent protocol (``act(obs)``; ``num_envs`` 1), e.g. a trained agent. Its propensities
            are unknown (None). It is reset with ``seed`` first.
        seed: fixes the instance, the contexts, the tasks and the uniform actions (None: fresh
            entropy, recorded in the metadata).
        task_sampling: ``"uniform"`` (i.i.d. uniform tasks, the paper's setting), ``"schedule"``
            (the env's own task schedule, e.g. a meta or arrival process) or ``(m,)`` probabilities.
        learn: feed rewards back to an Agent logging policy (``update``) after each observation, so
            the log comes from an adaptive policy (then samples are not independent).
        width: slots per observation shown to an Agent logging policy (default: the env's L).

    Returns:
        a :class:`LoggedDataset` whose metadata records env id, kwargs, seed and instance fingerprint.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    num_samples = int(num_samples)
    seed = _check_seed(seed)
    made, env_id, kwargs = _make_env(env, env_kwargs)
    base = _unwrap_env(made)
    model = base.model
    m, num_actions = model.num_tasks, model.num_actions
    if width is None:
        width = model.tasks_per_round
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if isinstance(logging_policy, str):
        if logging_policy != "uniform":
            raise ValueError(f"logging_policy={logging_policy!r} is unknown; use 'uniform' or an Agent")
    elif not (hasattr(logging_policy, "act") or callable(logging_policy)):
        raise ValueError(f"logging_policy must be 'uniform' or have act(obs); got {logging_policy!r}")
    if learn and isinstance(logging_policy, str):
        raise ValueError("learn=True needs an Agent logging policy (the uniform policy does not learn)")

    made.reset(seed=seed)
    instance = base.instance
    simulator = base.simulator
    task_gen = np.random.default_rng([seed, STREAM_LOG_TASKS])
    if isinstance(task_sampling, str):
        if task_sampling not in TASK_SAMPLINGS:
            raise ValueError(
                f"task_sampling={task_sampling!r} is unknown; use one of {TASK_SAMPLINGS} or "
                f"{m} probabilities"
            )
        probs = np.full(m, 1.0 / m) if task_sampling == "uniform" else None
        sampling_record: Any = task_sampling
    else:
        probs = np.asarray(task_sampling, dtype=np.float64)
        if probs.shape != (m,) or not np.all(np.isfinite(probs)) or np.any(probs < 0) or not np.isclose(
            probs.sum(), 1.0
        ):
            raise ValueError(f"task_sampling probabilities must be {m} non-negative numbers summing to 1")
        probs = probs / probs.sum()
        sampling_record = probs.tolist()
    base_key = _seed_key(seed, STREAM_LOG_CONTEXTS)
    if probs is None:
        slots = _draw_slots(simulator, instance, base_key, None, num_samples)
    else:
        tasks = task_gen.choice(m, size=num_samples, p=probs) if m > 1 else np.zeros(num_samples, int)
        counts = np.bincount(tasks, minlength=m)
        pool = _draw_slots(simulator, instance, base_key, counts)
        # the j-th sample of task s takes the j-th slot of task s
        order = np.argsort(tasks, kind="stable")
        occurrence = np.empty(num_samples, dtype=np.int64)
        occurrence[order] = np.arange(num_samples) - np.searchsorted(tasks[order], tasks[order])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slots = pool.take(offsets[tasks] + occurrence)

    if isinstance(logging_policy, str):
        actions = np.random.default_rng([seed, STREAM_LOG_ACTIONS]).integers(num_actions, size=num_samples)
        rewards = _draw_rewards(simulator, slots, actions)
        propensities: np.ndarray | None = np.full(num_samples, 1.0 / num_actions)
        policy_name = "uniform"
    else:
        if hasattr(logging_policy, "reset"):
            logging_policy.reset(seed)
        rewards = np.empty(num_samples)

        def feed_back(index: np.ndarray, obs: dict, actions: np.ndarray) -> None:
            rewards[index] = _draw_rewards(simulator, slots.take(index), actions)
            if learn:
                logging_policy.update(obs, actions, rewards[index])

        actions = _act_chunks(logging_policy, slots.tasks, slots.observations, num_actions, width, feed_back)
        propensities = None
        policy_name = _policy_name(logging_policy)

    if kwargs is not None:
        try:
            kwargs = json.loads(json.dumps(_jsonable(kwargs)))
        except (TypeError, ValueError):
            warnings.warn("env kwargs are not JSON-serialisable: the dataset cannot rebuild its env",
                          stacklevel=2)
            env_id, kwargs = None, None
    metadata = {
        "schema_version": SCHEMA_VERSION,
        "hbgym_version": __version__,
        "env_id": env_id,
        "env_kwargs": kwargs,
        "seed": seed,
        "instance_fingerprint": instance_fingerprint(instance),
        "logging_policy": policy_name,
        "logging_learned": bool(learn),
        "task_sampling": sampling_record,
        "model": _model_summary(model),
    }
    return LoggedDataset(
        tasks=slots.tasks,
        actions=actions,
        rewards=rewards,
        observations=slots.observations,
        num_tasks=m,
        num_actions=num_actions,
        propensities=propensities,
        provenance=slots.provenance,
        metadata=metadata,
    )


# --------------------------------------------------------------------------- evaluation


@dataclass(eq=False)
class EvaluationContexts:
    """A fixed Monte Carlo sample of contexts per task with the true mean rewards (privileged).

    ``V(pi_s; theta_s) = E_X[r(X, pi_s(X); theta_s)]`` (HierOPO Sec. 2) is estimated by the average
    over ``N_s`` contexts of task ``s``; given the contexts it is exact (mean rewards, no noise), so
    two policies evaluated on the same object are compared without noise. With a fixed action set
    (no context) every sample is the same and the value is exact.

    Attributes:
        tasks: ``(N,)`` task of each context (``num_contexts`` per task, grouped by task).
        observations: ``{key: (N, ...)}`` single-slot observations, as a policy sees them.
        mean_rewards: ``(N, K)`` true ``r(X, a; theta_s)`` of every action.
        num_tasks: m.
        instance_fingerprint: fingerprint of the instance the means come from.
    """

    tasks: np.ndarray
    observations: dict[str, np.ndarray]
    mean_rewards: np.ndarray
    num_tasks: int
    instance_fingerprint: str

    def _per_task(self, values: np.ndarray) -> np.ndarray:
        sums = np.bincount(self.tasks, weights=values, minlength=self.num_tasks)
        return sums / np.maximum(np.bincount(self.tasks, minlength=self.num_tasks), 1)

    def value_of_actions(self, actions: np.ndarray) -> np.ndarray:
        """``(m,)`` value per task of the actions ``(N,)`` taken at the contexts."""
        actions = np.asarray(actions)
        if actions.shape != self.tasks.shape or (actions.size and actions.dtype.kind not in "iu"):
            raise ValueError(f"actions must be integers of shape {self.tasks.shape}, got {actions.shape}")
        chosen = np.take_along_axis(self.mean_rewards, actions[:, None].astype(np.int64), axis=1)[:, 0]
        return self._per_task(chosen)

    def actions_of(self, policy: Any, width: int | None = None) -> np.ndarray:
        """``(N,)`` actions of an Agent-protocol ``policy`` (``num_envs`` 1) at every context.

        ``width`` slots are shown per observation (default: all ``N`` at once; pass the env's L for
        policies that expect it).
        """
        width = self.tasks.size if width is None else width
        return _act_chunks(policy, self.tasks, self.observations, self.mean_rewards.shape[1], max(width, 1))

    def value(self, policy: Any, width: int | None = None) -> np.ndarray:
        """``(m,)`` value ``V(pi_s)`` per task of a deterministic per-task ``policy``."""
        return self.value_of_actions(self.actions_of(policy, width))

    def optimal_value(self) -> np.ndarray:
        """``(m,)`` ``V(pi_{s,*})``: the optimal policy takes the best action in every context."""
        return self._per_task(self.mean_rewards.max(axis=1))

    def uniform_value(self) -> np.ndarray:
        """``(m,)`` exact value of the uniformly random policy (expectation over its actions)."""
        return self._per_task(self.mean_rewards.mean(axis=1))

    def suboptimality(self, policy: Any, width: int | None = None) -> np.ndarray:
        """``(m,)`` ``V(pi_{s,*}) - V(pi_s)`` per task (average it for the paper's figure)."""
        return self.optimal_value() - self.value(policy, width)


def evaluation_contexts(env: gym.Env, num_contexts: int = 500, seed: int = 0) -> EvaluationContexts:
    """Draw ``num_contexts`` contexts per task under the env's current instance.

    The env must already hold the instance to evaluate on (after :func:`collect`, or
    ``dataset.make_env()``). Contexts come from a stream independent of the logged ones
    (``STREAM_EVAL_CONTEXTS``), drawn like :func:`collect` draws them.
    """
    if isinstance(num_contexts, bool) or not isinstance(num_contexts, (int, np.integer)) or num_contexts < 1:
        raise ValueError(f"num_contexts must be a positive integer, got {num_contexts!r}")
    seed = _check_seed(seed)
    base = _unwrap_env(env)
    instance = base.instance
    m = base.model.num_tasks
    slots = _draw_slots(
        base.simulator, instance, _seed_key(seed, STREAM_EVAL_CONTEXTS), np.full(m, int(num_contexts))
    )
    return EvaluationContexts(
        slots.tasks, slots.observations, slots.means, m, instance_fingerprint(instance)
    )


@dataclass(frozen=True)
class OfflineScore:
    """Result of :func:`evaluate_learner`.

    Attributes:
        suboptimality: mean over tasks of ``V(pi_{s,*}) - V(pi_hat_s)`` (HierOPO Sec. 2 / Fig. 2).
        per_task: ``(m,)`` suboptimality of each task.
        uniform_suboptimality: the same for the uniformly random policy (exact).
        normalized_score: ``1 - suboptimality / uniform_suboptimality`` (uniform 0, optimal 1; can
            be negative for a policy worse than uniform).
        num_samples: n; seed: the seed of instance, data and evaluation contexts.
    """

    suboptimality: float
    per_task: np.ndarray
    uniform_suboptimality: float
    normalized_score: float
    num_samples: int
    seed: int

    def __float__(self) -> float:
        return self.suboptimality


def evaluate_learner(
    learner_factory: Any,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    num_samples: int = 500,
    seed: int = 0,
    *,
    logging_policy: Any = "uniform",
    task_sampling: str | Sequence[float] = "uniform",
    num_contexts: int = 500,
    width: int | None = None,
) -> OfflineScore:
    """Collect a dataset, learn a per-task policy from it and score it exactly.

    Steps: ``env = gym.make(env_id, **env_kwargs)``; ``dataset = collect(env, num_samples,
    logging_policy, seed, task_sampling)`` (fixes the instance); ``contexts =
    evaluation_contexts(env, num_contexts, seed)`` (before the learner sees anything);
    ``policy = learner_factory(env, dataset)``; score ``contexts.suboptimality(policy)``.

    Args:
        learner_factory: ``callable(env, dataset) -> policy`` (an object with ``act(obs)``), or a
            class with ``from_env(env)`` and ``fit(dataset)`` (e.g. ``hbgym.agents.HierOPO``), used as
            ``cls.from_env(env).fit(dataset)``. Oracle learners read ``env.unwrapped.instance``,
            which is the dataset's instance.
        seed: one seed for the instance, the data and the evaluation contexts, so that learners
            scored with the same arguments are compared on identical data (paired).
        width: slots per observation shown to the policy (default: all contexts at once).

    Returns:
        :class:`OfflineScore` (``float(score)`` is the mean suboptimality).
    """
    env = gym.make(env_id, **dict(env_kwargs or {}))
    dataset = collect(env, num_samples, logging_policy, seed, task_sampling)
    contexts = evaluation_contexts(env, num_contexts, seed)
    if isinstance(learner_factory, type) and hasattr(learner_factory, "from_env"):
        policy = learner_factory.from_env(env).fit(dataset)
    elif callable(learner_factory):
        policy = learner_factory(env, dataset)
    else:
        raise ValueError("learner_factory must be callable(env, dataset) or a class with from_env/fit")
    per_task = contexts.suboptimality(policy, width)
    uniform = contexts.optimal_value() - contexts.uniform_value()
    sub, uni = float(per_task.mean()), float(uniform.mean())
    return OfflineScore(
        suboptimality=sub,
        per_task=per_task,
        uniform_suboptimality=uni,
        normalized_score=1.0 - sub / uni if uni > 0 else float("nan"),
        num_samples=int(num_samples),
        seed=int(seed),
    )


# --------------------------------------------------------------------------- Minari


def _sample_spaces(dataset: LoggedDataset) -> tuple[gym.spaces.Dict, gym.spaces.MultiDiscrete]:
    """Observation / action spaces of one logged sample, in the env's format with L = 1."""
    obs_spaces: dict[str, gym.Space] = {
        "task": gym.spaces.MultiDiscrete(np.array([dataset.num_tasks], dtype=np.int64))
    }
    for key, value in dataset.observations.items():
        dtype = value.dtype if value.dtype.kind == "f" else np.float64
        obs_spaces[key] = gym.spaces.Box(-np.inf, np.inf, shape=(1, *value.shape[1:]), dtype=dtype)
    action_space = gym.spaces.MultiDiscrete(np.array([dataset.num_actions], dtype=np.int64))
    return gym.spaces.Dict(obs_spaces), action_space


def to_minari(
    datasets: LoggedDataset | Sequence[LoggedDataset],
    dataset_id: str,
    *,
    author: str | None = None,
    description: str | None = None,
) -> Any:
    """Export logged datasets to a local Minari dataset (``pip install "hbgym[offline]"``).

    Layout: one Minari episode per :class:`LoggedDataset` (one instance), one step per logged sample.
    Step ``i`` observes ``{"task": (1,), key: (1, ...)}`` (the env's observation format with one
    slot), takes action ``(1,)`` and gets reward ``Y_i``; observation ``n`` (Minari stores n + 1)
    repeats the last context; the episode ends ``truncated`` (the log stops, the env did not
    terminate). Propensities and provenance are step infos (``infos[key][i + 1]``, Minari's
    convention; entry 0 is the reset info, NaN / -1). Everything else (env id, kwargs, seed,
    fingerprint, sizes, schema version) is stored in the dataset metadata under ``"hbgym_offline"``.
    The data lands under ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).

    Returns:
        the ``minari.MinariDataset``.
    """
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError('Minari export needs the offline extra: pip install "hbgym[offline]"') from err
    if isinstance(datasets, LoggedDataset):
        datasets = [datasets]
    datasets = list(datasets)
    if not datasets or not all(isinstance(d, LoggedDataset) for d in datasets):
        raise ValueError("to_minari needs one LoggedDataset or a non-empty list of them")
    obs_space, action_space = _sample_spaces(datasets[0])
    for d in datasets[1:]:
        if _sample_spaces(d) != (obs_space, action_space):
            raise ValueError("all datasets exported together must have the same sizes and observation keys")
        if d.num_samples == 0:
            raise ValueError("cannot export an empty dataset to Minari")
    if datasets[0].num_samples == 0:
        raise ValueError("cannot export an empty dataset to Minari")
    buffers = []
    for i, d in enumerate(datasets):
        n = d.num_samples
        last = np.concatenate([np.arange(n), [n - 1]])  # n + 1 observations
        observations = {"task": d.tasks[last][:, None]}
        for key, value in d.observations.items():
            observations[key] = value[last][:, None]
        infos: dict[str, np.ndarray] = {}
        if d.propensities is not None:
            infos["propensity"] = np.concatenate([[np.nan], d.propensities])
        if d.provenance is not None:
            for j, name in enumerate(("context_episode", "round", "slot")):
                infos[name] = np.concatenate([[-1], d.provenance[:, j]])
        truncations = np.zeros(n, dtype=bool)
        truncations[-1] = True
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=d.seed,
                observations=observations,
                actions=d.actions[:, None],
                rewards=d.rewards,
                terminations=np.zeros(n, dtype=bool),
                truncations=truncations,
                infos=infos or None,
            )
        )
    env_spec = None
    first = datasets[0]
    if first.env_id is not None and first.env_kwargs is not None and first.env_id in gym.registry:
        spec = gym.spec(first.env_id)
        env_spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **first.env_kwargs})
    metadata = [
        {
            "metadata": d.metadata,
            "num_tasks": d.num_tasks,
            "num_actions": d.num_actions,
            "has_propensities": d.propensities is not None,
            "has_provenance": d.provenance is not None,
            "observation_dtypes": {k: v.dtype.str for k, v in d.observations.items()},
        }
        for d in datasets
    ]
    with warnings.catch_warnings():  # Minari nags about author / permalink / eval_env fields
        warnings.simplefilter("ignore", UserWarning)
        dataset = minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            env=env_spec,
            observation_space=obs_space,
            action_space=action_space,
            algorithm_name=first.metadata.get("logging_policy", "unknown"),
            author=author,
            description=description
            or "Logged multi-task bandit feedback exported by hbgym.offline (one episode per instance).",
        )
    dataset.storage.update_metadata(
        {"hbgym_offline": json.dumps({"schema_version": SCHEMA_VERSION, "episodes": metadata})}
    )
    return dataset


def from_minari(dataset: Any) -> list[LoggedDataset]:
    """Import a Minari dataset written by :func:`to_minari` (an id or a ``MinariDataset``).

    Returns one :class:`LoggedDataset` per episode, equal to the exported ones.
    """
    try:
        import minari
    except ImportError as err:  # pragma: no cover
        raise ImportError('Minari import needs the offline extra: pip install "hbgym[offline]"') from err
    if isinstance(dataset, str):
        dataset = minari.load_dataset(dataset)
    raw = dataset.storage.metadata.get("hbgym_offline")
    if raw is None:
        raise ValueError(f"Minari dataset {dataset.id!r} was not written by hbgym.offline.to_minari")
    info = json.loads(raw)
    if info.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"Minari dataset {dataset.id!r} has hbgym schema_version {info.get('schema_version')!r}; "
            f"this hbgym reads version {SCHEMA_VERSION}"
        )
    out = []
    episodes = list(dataset.iterate_episodes())
    if len(episodes) != len(info["episodes"]):
        raise ValueError(f"Minari dataset {dataset.id!r} has {len(episodes)} episodes but metadata for "
                         f"{len(info['episodes'])}")
    for episode, meta in zip(episodes, info["episodes"], strict=True):
        obs = episode.observations
        observations = {
            key: np.asarray(value)[:-1, 0].astype(meta["observation_dtypes"][key])
            for key, value in obs.items()
            if key != "task"
        }
        infos = episode.infos or {}
        propensities = np.asarray(infos["propensity"])[1:] if meta["has_propensities"] else None
        provenance = None
        if meta["has_provenance"]:
            provenance = np.stack(
                [np.asarray(infos[k])[1:] for k in ("context_episode", "round", "slot")], axis=1
            )
        out.append(
            LoggedDataset(
                tasks=np.asarray(obs["task"])[:-1, 0],
                actions=np.asarray(episode.actions)[:, 0],
                rewards=np.asarray(episode.rewards, dtype=np.float64),
                observations=observations,
                num_tasks=meta["num_tasks"],
                num_actions=meta["num_actions"],
                propensities=propensities,
                provenance=provenance,
                metadata=meta["metadata"],
            )
        )
    return out
