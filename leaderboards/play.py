"""One play loop for every agent, and what a third-party agent may see of the env.

Every online cell runs on the native vector env ``gym.make_vec(env_id, num_envs=B)`` reset with the
chunk's first seed ``s`` (slot ``i`` equals the single env reset with seed ``s + i``). A batched agent
acts on the whole ``(B, L)`` batch; a per-env (third-party) agent gets one instance per slot through
:class:`SlotAgents`, which hands slot ``i`` its observation ``obs[k][i]`` and its rewards — so its rows
equal the old loop over single envs, one per seed, while the env cost is shared by the chunk.

A third-party factory never receives the env: it gets a :class:`PublicEnv` view holding a plain copy
of ``env.unwrapped.model``, the observation and action spaces and the ``spec`` (for batched factories
also ``num_envs`` and the ``single_*`` spaces). Actions are checked with the env's own
:func:`hbgym.envs.core.check_actions` (integers of shape ``(B, L)`` in ``[0, K)``), so the runner accepts
exactly what the env accepts.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hbgym.envs.core import check_actions

__all__ = ["InvalidAgentOutput", "PublicEnv", "public_view", "SlotAgents", "play", "checked_actions"]


class InvalidAgentOutput(ValueError):
    """An agent returned an action the env cannot take (wrong shape, type, range, NaN)."""


class PublicEnv:
    """What a third-party factory receives instead of the env: public, plain and picklable.

    Attributes:
        model: a copy of ``env.unwrapped.model`` (no instance, no simulator, no keys).
        observation_space, action_space: the spaces the agent acts in (batched for a batched factory).
        spec: the env's ``EnvSpec`` (id and kwargs).
        num_envs, single_observation_space, single_action_space: batched factories only.
        unwrapped: the view itself, so ``env.unwrapped.model`` works as on a real env.
    """

    def __init__(self, model: Any, observation_space: Any, action_space: Any, spec: Any,
                 num_envs: int | None = None, single_observation_space: Any = None,
                 single_action_space: Any = None) -> None:
        self.model = model
        self.observation_space = observation_space
        self.action_space = action_space
        self.spec = spec
        if num_envs is not None:
            self.num_envs = num_envs
            self.single_observation_space = single_observation_space
            self.single_action_space = single_action_space

    @property
    def unwrapped(self) -> PublicEnv:
        return self

    def __repr__(self) -> str:
        return f"PublicEnv({getattr(self.spec, 'id', None)!r}, num_envs={getattr(self, 'num_envs', None)})"


def public_view(vec: Any, env_id: str, env_kwargs: Mapping[str, Any], batched: bool) -> PublicEnv:
    """The :class:`PublicEnv` of a vector env: batched (``num_envs``) or for one slot."""
    import gymnasium as gym

    spec = dataclasses.replace(gym.spec(env_id), kwargs={**gym.spec(env_id).kwargs, **dict(env_kwargs)})
    model = copy.deepcopy(vec.unwrapped.model)
    if batched:
        return PublicEnv(model, vec.observation_space, vec.action_space, spec, vec.num_envs,
                         vec.single_observation_space, vec.single_action_space)
    return PublicEnv(model, vec.single_observation_space, vec.single_action_space, spec)


def checked_actions(action: Any, shape: tuple[int, ...], num_actions: int) -> np.ndarray:
    """``action`` as int64 of ``shape`` by the env's own check, else :class:`InvalidAgentOutput`.

    A float array (also ``1.0`` or NaN) is rejected, exactly as the env rejects it.
    """
    try:
        return check_actions(action, shape, num_actions, "actions")
    except ValueError as err:
        arr = np.asarray(action)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise InvalidAgentOutput(f"actions contain NaN/inf ({err})") from err
        msg = str(err)
        if "must be in [" in msg:
            msg = f"actions out of range: {msg}"
        raise InvalidAgentOutput(msg) from err


def _slot(obs: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: np.array(v[i]) for k, v in obs.items()}


class SlotAgents:
    """``B`` per-env agents acting as one batched agent: slot ``i`` sees ``obs[k][i]`` only.

    Args:
        agents: one agent per slot (``reset(seed)``, ``act(obs) -> (L,)``, ``update(obs, action, reward)``).
        num_actions: ``K``, to check each slot's action ``(L,)`` on its own.
    """

    def __init__(self, agents: Sequence[Any], num_actions: int) -> None:
        self.agents = list(agents)
        self.num_actions = num_actions

    def reset(self, seed: int | None = None) -> None:
        """Slot ``i`` is reset with ``seed + i`` (the seed of the single env it stands for)."""
        for i, agent in enumerate(self.agents):
            agent.reset(seed=None if seed is None else seed + i)

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(B, L)`` actions, one ``(L,)`` row per slot, each checked as the single env would."""
        shape = np.asarray(obs["task"]).shape[1:]
        return np.stack([checked_actions(a.act(_slot(obs, i)), shape, self.num_actions)
                         for i, a in enumerate(self.agents)])

    def update(self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: np.ndarray) -> None:
        """``action``, ``reward``: ``(B, L)``; slot ``i`` gets row ``i``."""
        for i, agent in enumerate(self.agents):
            agent.update(_slot(obs, i), np.array(action[i]), np.array(reward[i]))


def build_slot_agents(factory: Callable[[PublicEnv], Any], view: PublicEnv, num_envs: int) -> SlotAgents:
    """One agent per slot from a per-env ``factory``, each built from its own copy of the view."""
    return SlotAgents([factory(copy.deepcopy(view)) for _ in range(num_envs)], view.model.num_actions)


def play(policy: Any, vec: Any, seed: int) -> np.ndarray:
    """Run one episode of every slot of ``vec`` (reset with ``seed``) with ``policy``.

    ``policy`` acts on ``(B, L)`` (a batched agent, :class:`SlotAgents` or a sandboxed agent); it
    sees observations and the per-slot rewards of its own actions only (``info`` stays here).

    Returns:
        ``(B, T)`` pseudo-regret per slot and round, summed over the ``L`` acting tasks.
    """
    model = vec.unwrapped.model
    obs, _ = vec.reset(seed=seed)
    policy.reset(seed=seed)
    rounds = model.num_rounds
    regret = np.zeros((vec.num_envs, rounds))
    shape = np.asarray(obs["task"]).shape
    for t in range(rounds):
        action = checked_actions(policy.act(obs), shape, model.num_actions)
        next_obs, _, terminated, _, info = vec.step(action)
        policy.update(obs, action, np.asarray(info["rewards"]))
        obs = next_obs
        regret[:, t] = np.asarray(info["regret"]).sum(axis=1)
        if np.any(terminated) and t != rounds - 1:
            raise RuntimeError(f"env terminated early at round {t}")
    return regret
