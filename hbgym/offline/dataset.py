"""The logged dataset of the offline track: :class:`LoggedDataset` (validated on construction), its
``.npz`` file (:meth:`LoggedDataset.save` / :func:`load`, with a schema version) and the instance
fingerprint that ties a dataset to the truth it was logged on.

A logged dataset ``D = {(S_t, X_t, A_t, Y_t)}_{t <= n}`` (Hong et al., *Multi-task Off-policy Learning
from Bandit Feedback*, ICML 2023, Sec. 2) holds, per sample, a task, a context (one slot of an hbgym
observation), a logged action and its reward. NumPy + Gymnasium only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from hbgym.fileio import atomic_write_stream

__all__ = ["SCHEMA_VERSION", "LoggedDataset", "instance_fingerprint", "jsonable", "load"]

#: version of the on-disk schema (``.npz`` and the Minari metadata); bumped on incompatible changes
SCHEMA_VERSION = 1


def jsonable(value: Any) -> Any:
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
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


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
            self.metadata = json.loads(json.dumps(jsonable(dict(self.metadata))))
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
        """Write the dataset to one ``.npz`` file (atomically: :func:`hbgym.fileio.atomic_write_stream`)."""
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
        atomic_write_stream(path, lambda stream: np.savez_compressed(stream, **arrays))


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
