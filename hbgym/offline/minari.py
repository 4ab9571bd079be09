"""Minari export / import of logged datasets (the ``offline`` extra; Minari is imported lazily)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from hbgym.offline.dataset import SCHEMA_VERSION, LoggedDataset

__all__ = ["check_dataset_id", "from_minari", "slot_space", "to_minari"]

#: Minari dataset ids: ``(namespace/)name-vN`` (the version is required here)
DATASET_ID = re.compile(r"(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+")


def check_dataset_id(dataset_id: Any) -> str:
    """Return ``dataset_id`` if it has Minari's form ``(namespace/)name-vN``, else raise ValueError."""
    if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
        raise ValueError(
            f"Minari dataset id {dataset_id!r} is malformed: it must look like 'namespace/name-v0' "
            "((namespace/)name-vN: letters, digits, '-', '_', a version suffix -vN)"
        )
    return dataset_id


def slot_space(space: gym.Space) -> gym.Space:
    """The space of one slot of an env observation entry: its leading ``L`` axis cut to 1.

    ``Box`` low/high ``(L, ...)`` -> ``(1, ...)`` (slot 0's bounds; every slot has the same bounds in
    hbgym envs); ``MultiDiscrete([n] * L)`` -> ``MultiDiscrete([n])``.
    """
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Box(space.low[:1], space.high[:1], dtype=space.dtype)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return gym.spaces.MultiDiscrete(space.nvec[:1])
    raise ValueError(f"no one-slot form of {space}: only Box and MultiDiscrete entries are logged")


def _sample_spaces(dataset: LoggedDataset) -> tuple[gym.spaces.Dict, gym.spaces.MultiDiscrete]:
    """Observation / action spaces of one logged sample, in the env's format with L = 1.

    When the dataset names a registered env, these are the env's spaces with every leading ``L``
    axis cut to one slot (:func:`slot_space`), so ``dataset.observation_space[key]`` is exactly
    ``slot_space(env.observation_space[key])``; otherwise unbounded boxes of the logged shapes.
    """
    env_space = _env_observation_space(dataset)
    obs_spaces: dict[str, gym.Space] = {
        "task": gym.spaces.MultiDiscrete(np.array([dataset.num_tasks], dtype=np.int64))
    }
    for key, value in dataset.observations.items():
        dtype = value.dtype if value.dtype.kind == "f" else np.float64
        obs_spaces[key] = gym.spaces.Box(-np.inf, np.inf, shape=(1, *value.shape[1:]), dtype=dtype)
    if env_space is not None:
        from_env = {key: slot_space(env_space[key]) for key in obs_spaces if key in env_space.spaces}
        if all(from_env.get(key) is not None and from_env[key].shape == obs_spaces[key].shape
               and from_env[key].dtype == obs_spaces[key].dtype for key in obs_spaces):
            obs_spaces = from_env
    action_space = gym.spaces.MultiDiscrete(np.array([dataset.num_actions], dtype=np.int64))
    return gym.spaces.Dict(obs_spaces), action_space


def _env_observation_space(dataset: LoggedDataset) -> gym.spaces.Dict | None:
    """The observation space of the env the dataset was logged from, or None if unknown."""
    if dataset.env_id is None or dataset.env_kwargs is None or dataset.env_id not in gym.registry:
        return None
    env = gym.make(dataset.env_id, **dataset.env_kwargs)
    try:
        return env.observation_space
    finally:
        env.close()


def _replace_safely(path: os.PathLike, create: Any) -> Any:
    """Run ``create()`` (which writes ``path``) with an existing ``path`` moved aside; restore it if
    ``create`` fails, delete it once ``create`` succeeds. A failed first write leaves no directory."""
    aside = None
    if os.path.exists(path):
        # a hidden sibling: minari.list_local_datasets skips hidden directories
        holder = tempfile.mkdtemp(prefix=".hbgym-replaced-", dir=os.path.dirname(path))
        aside = os.path.join(holder, "dataset")
        os.rename(path, aside)
    try:
        result = create()
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        if aside is not None:
            os.rename(aside, path)
            shutil.rmtree(os.path.dirname(aside), ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(os.path.dirname(aside), ignore_errors=True)
    return result


def to_minari(
    datasets: LoggedDataset | Sequence[LoggedDataset],
    dataset_id: str,
    *,
    author: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
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

    ``dataset_id`` must have the form ``(namespace/)name-vN`` (checked before anything is written).
    An existing id raises ``ValueError`` unless ``overwrite=True``, which replaces it (the old
    dataset is restored if the export fails).

    Spaces: a Minari step is one logged *slot*, so ``observation_space[key]`` has a leading axis of
    1 where the env's has ``L`` (``tasks_per_round``): it equals
    ``slot_space(env.observation_space[key])``, and slot ``j`` of an env observation maps to a
    step observation as ``{key: obs[key][j : j + 1]}``. ``dataset.recover_environment()`` returns
    the logging env itself (``L`` slots per step), whose spaces therefore differ when ``L > 1``.

    Returns:
        the ``minari.MinariDataset``.
    """
    check_dataset_id(dataset_id)
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
        from minari.storage import get_dataset_path
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError('Minari export needs the offline extra: pip install "hbgym[offline]"') from err
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be True or False, got {overwrite!r}")
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
    path = get_dataset_path(dataset_id)
    if os.path.exists(path) and not overwrite:
        raise ValueError(
            f"a Minari dataset with id {dataset_id!r} already exists at {path}; pass overwrite=True "
            "to replace it, or choose another name or version"
        )

    def create() -> Any:
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

    return _replace_safely(path, create)


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
