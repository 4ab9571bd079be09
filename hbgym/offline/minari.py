"""Minari export / import of logged datasets (the ``offline`` extra; Minari is imported lazily)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from hbgym.offline.dataset import SCHEMA_VERSION, LoggedDataset

__all__ = ["from_minari", "to_minari"]


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
