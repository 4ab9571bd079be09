"""Exact off-policy evaluation: :func:`evaluation_contexts` -> :class:`EvaluationContexts` (a fixed
Monte Carlo sample of contexts per task with the *true* mean reward of every action, read from
``env.unwrapped.instance``) and :func:`evaluate_learner` (collect -> learn -> score in one call, used by
the leaderboard's ``offline`` suite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from hbgym.offline.collection import act_chunks, collect
from hbgym.offline.dataset import instance_fingerprint
from hbgym.offline.slots import STREAM_EVAL_CONTEXTS, check_seed, draw_slots, seed_key, unwrap_env

__all__ = ["EvaluationContexts", "OfflineScore", "evaluate_learner", "evaluation_contexts"]


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
        return act_chunks(policy, self.tasks, self.observations, self.mean_rewards.shape[1], max(width, 1))

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
    seed = check_seed(seed)
    base = unwrap_env(env)
    instance = base.instance
    m = base.model.num_tasks
    slots = draw_slots(
        base.simulator, instance, seed_key(seed, STREAM_EVAL_CONTEXTS), np.full(m, int(num_contexts))
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
