"""Logged bandit datasets and exact off-policy evaluation (the offline track).

Hong, Kveton, Katariya, Zaheer, Ghavamzadeh. *Multi-task Off-policy Learning from Bandit Feedback.*
ICML 2023, Sec. 2: a logged dataset ``D = {(S_t, X_t, A_t, Y_t)}_{t <= n}`` holds, per sample, a task
``S_t`` (uniform over the ``m`` tasks by default, as in Sec. 7), a context ``X_t ~ P_x`` (here: the
observation of one slot of an hbgym env: ``"features"`` ``(K, d)`` and/or ``"context"``), the action
``A_t`` of a logging policy ``pi_0`` and its reward ``Y_t``. The problem instance (mu*, theta_s) is
fixed within a dataset. Learners output per-task policies; their quality is the suboptimality
``V(pi_{s,*}; theta_s) - V(pi_s; theta_s)`` averaged over tasks, with ``V(pi; theta) = E_X[r(X, pi(X);
theta)]`` (Sec. 2).

What this package provides (NumPy + Gymnasium only; Minari is imported lazily):

* :func:`collect` -> :class:`LoggedDataset` (``hbgym.offline.collection``); ``save`` / :func:`load`
  (one ``.npz`` file with a schema version, validated on load; ``hbgym.offline.dataset``);
  :func:`to_minari` / :func:`from_minari` (the ``offline`` extra; ``hbgym.offline.minari``).
* :func:`evaluation_contexts` -> :class:`EvaluationContexts`: a fixed Monte Carlo sample of contexts
  per task with the *true* mean reward of every action (from ``env.unwrapped.instance``), on which the
  value of any per-task policy is computed exactly (no reward noise).
* :func:`evaluate_learner`: collect -> learn -> score in one call (used by the leaderboard's
  ``offline`` suite); both in ``hbgym.offline.evaluate``.

How contexts are drawn: see ``hbgym.offline.collection``.
"""

from hbgym.offline.collection import collect
from hbgym.offline.dataset import SCHEMA_VERSION, LoggedDataset, instance_fingerprint, load
from hbgym.offline.evaluate import EvaluationContexts, OfflineScore, evaluate_learner, evaluation_contexts
from hbgym.offline.minari import from_minari, to_minari

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
