"""Collecting logged datasets: :func:`collect` (contexts from the slot pool of
``hbgym.offline.slots``) and :func:`act_chunks` (an Agent-protocol policy acting on logged contexts).

(The module is not called ``collect``: that name is the package's function ``hbgym.offline.collect``.)
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from hbgym import __version__
from hbgym.offline.dataset import SCHEMA_VERSION, LoggedDataset, instance_fingerprint, jsonable
from hbgym.offline.slots import (
    STREAM_LOG_ACTIONS,
    STREAM_LOG_CONTEXTS,
    STREAM_LOG_TASKS,
    check_seed,
    draw_rewards,
    draw_slots,
    seed_key,
    unwrap_env,
)

__all__ = ["TASK_SAMPLINGS", "act_chunks", "collect"]

TASK_SAMPLINGS = ("uniform", "schedule")


def _model_summary(model: Any) -> dict[str, Any]:
    """The public model as JSON (fields that are not serialisable are recorded by their repr)."""
    out: dict[str, Any] = {"class": type(model).__name__}
    for f in dataclasses.fields(model):
        value = getattr(model, f.name)
        try:
            out[f.name] = jsonable(value)
        except TypeError:
            out[f.name] = repr(value)
    return out


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


def _policy_name(policy: Any) -> str:
    return str(getattr(policy, "name", "") or type(policy).__name__)


def act_chunks(policy: Any, tasks: np.ndarray, observations: Mapping[str, np.ndarray],
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
    seed = check_seed(seed)
    made, env_id, kwargs = _make_env(env, env_kwargs)
    base = unwrap_env(made)
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
    base_key = seed_key(seed, STREAM_LOG_CONTEXTS)
    if probs is None:
        slots = draw_slots(simulator, instance, base_key, None, num_samples)
    else:
        tasks = task_gen.choice(m, size=num_samples, p=probs) if m > 1 else np.zeros(num_samples, int)
        counts = np.bincount(tasks, minlength=m)
        pool = draw_slots(simulator, instance, base_key, counts)
        # the j-th sample of task s takes the j-th slot of task s
        order = np.argsort(tasks, kind="stable")
        occurrence = np.empty(num_samples, dtype=np.int64)
        occurrence[order] = np.arange(num_samples) - np.searchsorted(tasks[order], tasks[order])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slots = pool.take(offsets[tasks] + occurrence)

    if isinstance(logging_policy, str):
        actions = np.random.default_rng([seed, STREAM_LOG_ACTIONS]).integers(num_actions, size=num_samples)
        rewards = draw_rewards(simulator, slots, actions)
        propensities: np.ndarray | None = np.full(num_samples, 1.0 / num_actions)
        policy_name = "uniform"
    else:
        if hasattr(logging_policy, "reset"):
            logging_policy.reset(seed)
        rewards = np.empty(num_samples)

        def feed_back(index: np.ndarray, obs: dict, actions: np.ndarray) -> None:
            rewards[index] = draw_rewards(simulator, slots.take(index), actions)
            if learn:
                logging_policy.update(obs, actions, rewards[index])

        actions = act_chunks(logging_policy, slots.tasks, slots.observations, num_actions, width, feed_back)
        propensities = None
        policy_name = _policy_name(logging_policy)

    if kwargs is not None:
        try:
            kwargs = json.loads(json.dumps(jsonable(kwargs)))
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
