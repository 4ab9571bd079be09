"""Shared plumbing of the agents for MultiBandit-v0 (ebm family and its baselines).

Every such agent sees ``obs["task"]`` ``(B, 1)`` (the arriving instance ``s_t``) and
``obs["context"]`` ``(B, 1, d)`` (``x_t``), pulls one of ``K`` arms, and keeps per-(arm, instance)
statistics. :class:`MultiBanditAgent` validates the public model, unpacks observations, and holds the
raw sufficient statistics (:class:`~hbgym.agents.posteriors.empirical_bayes.UnitStatistics`) that the
empirical-Bayes step and the frequentist baselines all read.
"""

from __future__ import annotations

from typing import Any

import torch
from hbgym.agents.base import TorchAgent
from hbgym.agents.posteriors.empirical_bayes import UnitStatistics
from torch import Tensor

__all__ = ["MultiBanditAgent", "check_model", "forced_arm"]


def check_model(model: Any, agent: str) -> tuple[int, int, int]:
    """``(M, K, d)`` of a multi-bandit model; ValueError for models of other families."""
    for attr in ("num_tasks", "num_actions", "dim", "tasks_per_round"):
        if not hasattr(model, attr):
            raise ValueError(f"{agent} needs a MultiBandit model (num_tasks, num_actions, dim); "
                             f"{type(model).__name__} has no {attr!r}")
    if model.tasks_per_round != 1:
        raise ValueError(f"{agent} needs a MultiBandit model (one arriving instance per round); "
                         f"tasks_per_round must be 1, got {model.tasks_per_round}")
    return int(model.num_tasks), int(model.num_actions), int(model.dim)


def forced_arm(local_time: Tensor, num_arms: int, q: int) -> Tensor:
    """Forced-sampling schedule of Goldenshluger & Zeevi (2013) for ``K`` arms (Bastani & Bayati 2020).

    Arm ``k`` (1-based) is forced at the instance-local times
    ``T_k = {(2^n - 1) K q + j : n >= 0, j in {q (k - 1) + 1, ..., q k}}``.

    Args:
        local_time: ``(B,)`` long, 1-based count of this instance's arrivals including the current one.
        num_arms: K; q: forced samples per arm per epoch.

    Returns:
        ``(B,)`` long: the forced arm (0-based), or -1 where ``local_time`` is not a forced time.
    """
    block = num_arms * q
    m = local_time - 1
    r = torch.div(m, block, rounding_mode="floor")
    forced = ((r + 1) & r) == 0  # r + 1 is a power of two <=> r = 2^n - 1
    arm = torch.div(m - r * block, q, rounding_mode="floor")
    return torch.where(forced, arm, torch.full_like(arm, -1))


class MultiBanditAgent(TorchAgent):
    """Base of the MultiBandit-v0 agents: ``M`` instances, ``K`` arms, context dimension ``d``.

    Subclasses implement :meth:`_scores` (``(B, K)`` arm scores for the arriving instance) or
    override :meth:`_act`; :meth:`_update` records the observation in ``self.stats`` (raw
    per-(arm, instance) sufficient statistics) and the per-instance arrival counts, then calls
    :meth:`_observe` for subclass bookkeeping.
    """

    def _setup(self) -> None:
        self.num_instances, self.num_arms, self.dim = check_model(self.model, type(self).__name__)
        self.stats = UnitStatistics(self.num_envs, self.num_arms, self.num_instances, self.dim,
                                    device=self.device, dtype=self.dtype)
        self.arrivals = torch.zeros(self.num_envs, self.num_instances, dtype=torch.long, device=self.device)
        self.rounds = 0

    def _reset_state(self) -> None:
        self.stats.reset()
        self.arrivals.zero_()
        self.rounds = 0

    def _unpack(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Arriving instance ``(B,)`` long and context ``(B, d)`` from an observation."""
        if "context" not in obs:
            raise ValueError(f"{type(self).__name__} needs obs['context'] (MultiBandit-v0), "
                             f"got {sorted(obs)}")
        task, ctx = obs["task"], obs["context"]
        if task.shape[1] != 1 or ctx.shape[1:] != (1, self.dim):
            raise ValueError(f"expected obs['task'] (B, 1) and obs['context'] (B, 1, {self.dim}), "
                             f"got {tuple(task.shape)} and {tuple(ctx.shape)}")
        return task[:, 0], ctx[:, 0]

    def _scores(self, task: Tensor, x: Tensor) -> Tensor:  # pragma: no cover - abstract by convention
        raise NotImplementedError

    def _act(self, obs: dict[str, Tensor]) -> Tensor:
        task, x = self._unpack(obs)
        return self._scores(task, x).argmax(-1, keepdim=True)

    def _update(self, obs: dict[str, Tensor], action: Tensor, reward: Tensor) -> None:
        task, x = self._unpack(obs)
        arm, y = action[:, 0], reward[:, 0]
        self._observe(task, x, arm, y)
        self.stats.add(arm, task, x, y)
        self.arrivals[torch.arange(self.num_envs, device=self.device), task] += 1
        self.rounds += 1

    def _observe(self, task: Tensor, x: Tensor, arm: Tensor, y: Tensor) -> None:
        """Hook called by :meth:`_update` before the statistics are updated (default: nothing)."""
        return None

    def _gather(self, tensor: Tensor, task: Tensor) -> Tensor:
        """Per-arm slice of the arriving instance: ``(B, K, U, ...)`` -> ``(B, K, ...)``."""
        index = task.view(-1, 1, 1, *([1] * (tensor.ndim - 3))).expand(
            tensor.shape[0], tensor.shape[1], 1, *tensor.shape[3:])
        return tensor.gather(2, index).squeeze(2)
