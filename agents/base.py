"""The agent protocol and the base class of hbgym's batched torch agents.

Protocol (any object with these three methods is an agent; see DESIGN.md sec. 4)::

    reset(seed=None)                 start a new episode (forget the data, reseed)
    act(obs) -> actions              obs: dict of arrays; returns int actions (L,) or batched (B, L)
    update(obs, action, reward)      the per-slot rewards (L,) or (B, L) of ``action`` taken at ``obs``

The runner calls ``env.reset`` then ``agent.reset``, and then ``act``/``update`` every round; it
never passes ``info`` to an agent. Oracle agents (``oracle = True``) read the env's sampled truth in
``reset`` and are labelled as such in results.

:class:`TorchAgent` implements the batching contract once: agents are natively batched over ``B``
independent replicates (a leading dim on every observation array), draw every random number from
per-replicate streams (:class:`~hbgym.agents.random.ReplicateStreams`: replicate ``b`` of an agent
seeded ``s`` uses the stream of seed ``s + b``, so a seed's results do not depend on its chunk), and
convert NumPy <-> torch at one boundary (:meth:`TorchAgent.act`). A single
(unbatched) observation is accepted too and gives an unbatched action.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from hbgym.agents.random import ReplicateStreams

__all__ = ["Agent", "TorchAgent", "UniformAgent", "resolve_device", "resolve_dtype"]


@runtime_checkable
class Agent(Protocol):
    """What the runner needs from an agent (structural: no base class required)."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def update(self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: np.ndarray) -> None: ...


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``... -> torch.device, with a clear error when unavailable."""
    dev = torch.device(device or "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} requested but CUDA is not available; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={str(device)!r} is not supported; use 'cpu' or 'cuda[:N]'")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float64 by default; float32 allowed (intended for CUDA)."""
    if dtype is None:
        return torch.float64
    table = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32,
             "float": torch.float32, torch.float64: torch.float64, torch.float32: torch.float32}
    if dtype not in table:
        raise ValueError(f"dtype={dtype!r} is not supported; use 'float64' or 'float32'")
    return table[dtype]


def _env_model_and_batch(env: Any) -> tuple[Any, int | None]:
    """The public model of a (vector) env and its batch size (None for a single env)."""
    unwrapped = getattr(env, "unwrapped", env)
    model = getattr(unwrapped, "model", None)
    if model is None:
        raise ValueError(f"{type(env).__name__} has no public `model`: is it an hbgym environment?")
    return model, getattr(unwrapped, "num_envs", None)


class TorchAgent(ABC):
    """Base of hbgym's agents: batched over ``num_envs`` replicates, torch on CPU or CUDA.

    Subclasses store their hyper-parameters and then call ``super().__init__(model, **kwargs)``;
    they implement :meth:`_setup` (once), :meth:`_reset_state`, :meth:`_act` and :meth:`_update` on
    torch tensors
    with a leading batch dim ``B`` (observation arrays become tensors on ``self.device``; task ids
    and actions are int64). They read what they need from ``self.model`` (the env's public model).

    Args:
        model: the env's public model (``env.unwrapped.model``).
        num_envs: ``B``, number of independent replicates run in lockstep.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        dtype: ``torch.float64`` (default) or ``torch.float32``.
        seed: replicate ``b`` draws from the random stream of seed ``seed + b`` (``reset(seed)``
            reseeds; None: a fresh OS seed).
    """

    #: name used in results and on the leaderboard
    name: ClassVar[str] = ""
    #: True for agents that read the sampled truth (labelled oracle on the leaderboard)
    oracle: ClassVar[bool] = False
    #: False for agents too expensive for the leaderboard's default agent list (``--agent all``)
    leaderboard_default: ClassVar[bool] = True

    def __init__(
        self,
        model: Any,
        num_envs: int = 1,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.model = model
        self.num_envs = int(num_envs)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.streams = ReplicateStreams(self.num_envs, self.device)
        # (obs, {key: (array, shape, dtype)}, batched, tensors) of act's zero-copy conversion, until used
        self._last_conversion: tuple[Any, dict[str, Any], bool, dict[str, torch.Tensor]] | None = None
        self._env: Any = None
        self._seed = seed
        self._setup()
        self.reset(seed)

    @classmethod
    def from_env(
        cls,
        env: Any,
        num_envs: int | None = None,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype | None = None,
        seed: int | None = None,
        **hyperparameters: Any,
    ) -> TorchAgent:
        """Build the agent from an env's public model (``B`` = the vector env's ``num_envs``).

        The agent keeps a reference to ``env.unwrapped``; oracle agents read its instance (via
        :meth:`_read_instance`) lazily, at the first ``act`` of each episode.
        """
        model, env_batch = _env_model_and_batch(env)
        if num_envs is None:
            num_envs = env_batch or 1
        elif env_batch is not None and num_envs != env_batch:
            raise ValueError(f"num_envs={num_envs} but the vector env has num_envs={env_batch}")
        agent = cls(model, num_envs=num_envs, device=device, dtype=dtype, seed=seed, **hyperparameters)
        agent._env = getattr(env, "unwrapped", env)
        return agent

    # ------------------------------------------------------------------ protocol (NumPy boundary)

    def reset(self, seed: int | None = None) -> None:
        """Forget all data and (re)seed the streams (``seed=None`` keeps the construction seed)."""
        seed = self._seed if seed is None else seed
        self.streams.seed(None if seed is None else int(seed))
        self._last_conversion = None
        self._reset_state()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Actions ``(B, L)`` (int64) for batched ``obs``, or ``(L,)`` for a single observation."""
        batched, tensors = self._to_tensors(obs, remember=True)
        with torch.no_grad():
            actions = self._act(tensors)
        out = actions.cpu().numpy().astype(np.int64, copy=False)
        return out if batched else out[0]

    def update(self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: np.ndarray) -> None:
        """Condition on rewards ``(B, L)`` of ``action`` ``(B, L)`` taken at ``obs``."""
        batched, tensors = self._to_tensors(obs)
        action, reward = np.asarray(action), np.asarray(reward)
        if not batched:
            action, reward = action.reshape(1, -1), reward.reshape(1, -1)
        action_t = torch.as_tensor(action, device=self.device, dtype=torch.long)
        reward_t = torch.as_tensor(reward, device=self.device, dtype=self.dtype)
        shape = tensors["task"].shape
        if action_t.shape != shape or reward_t.shape != shape:
            raise ValueError(
                f"action and reward must have shape {tuple(shape)} (B, L), "
                f"got {tuple(action_t.shape)} and {tuple(reward_t.shape)}"
            )
        with torch.no_grad():
            self._update(tensors, action_t, reward_t)

    def _to_tensors(
        self, obs: Mapping[str, np.ndarray], remember: bool = False
    ) -> tuple[bool, dict[str, torch.Tensor]]:
        """Observation arrays as tensors with a leading batch dim; whether ``obs`` was batched.

        ``update`` usually gets the very observation ``act`` got (``act`` passes ``remember``): when
        every entry is the same array object (same shape and dtype) as then and every tensor made then
        shares memory with its array (no copy was made, so a new conversion would give the same view),
        those tensors are reused (a few us per entry at B = 1). Used once: nothing of an observation is
        kept past the next conversion."""
        last, self._last_conversion = self._last_conversion, None
        if last is not None and last[0] is obs and len(obs) == len(last[1]) and all(
            (value := obs.get(key)) is array and value.shape == shape and value.dtype == dtype
            for key, (array, shape, dtype) in last[1].items()
        ):
            return last[2], dict(last[3])
        if "task" not in obs:
            raise ValueError(f"observation must contain 'task', got keys {sorted(obs)}")
        task = np.asarray(obs["task"])
        batched = task.ndim == 2
        if task.ndim not in (1, 2):
            raise ValueError(f"obs['task'] must have shape (L,) or (B, L), got {task.shape}")
        if batched and task.shape[0] != self.num_envs:
            raise ValueError(f"batched obs has B={task.shape[0]} but the agent has num_envs={self.num_envs}")
        if not batched and self.num_envs != 1:
            raise ValueError(f"unbatched obs given to an agent with num_envs={self.num_envs}")
        tensors, arrays = {}, {}
        for key, value in obs.items():
            arr = np.asarray(value)
            if not batched:
                arr = arr[None]
            dtype = torch.long if arr.dtype.kind in "iub" else self.dtype
            tensor = tensors[key] = torch.as_tensor(arr, device=self.device, dtype=dtype)
            given = value is arr or (not batched and arr.base is value)  # an array, not e.g. a list
            shared = tensor.device.type == "cpu" and tensor.data_ptr() == arr.__array_interface__["data"][0]
            if given and shared:
                arrays[key] = (value, value.shape, value.dtype)
        if remember and len(arrays) == len(tensors):  # else some entry was copied: convert again next time
            self._last_conversion = (obs, arrays, batched, dict(tensors))
        return batched, tensors

    # ------------------------------------------------------------------ subclass hooks (torch)

    def _setup(self) -> None:
        """One-off precomputation (priors as tensors, factorisations); called once by __init__."""
        return None

    @abstractmethod
    def _reset_state(self) -> None:
        """Initialise the posterior / statistics for a new episode."""

    @abstractmethod
    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Actions ``(B, L)`` int64 for observation tensors with leading dim ``B``."""

    @abstractmethod
    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        """Condition on ``reward`` ``(B, L)`` of ``action`` ``(B, L)``."""

    def _read_instance(self) -> Any:
        """The env's sampled truth (oracle agents only; requires ``from_env``)."""
        if not self.oracle:
            raise RuntimeError(f"{type(self).__name__} is not an oracle agent and may not read the truth")
        if self._env is None:
            raise RuntimeError(f"{type(self).__name__} is an oracle: build it with from_env(env)")
        return self._env.instance


class UniformAgent(TorchAgent):
    """Uniformly random actions: the score-0 reference of the leaderboard."""

    name = "Uniform"

    def _reset_state(self) -> None:
        pass

    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        shape = obs["task"].shape
        return self.streams.randint(self.model.num_actions, shape[1:])

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        pass
