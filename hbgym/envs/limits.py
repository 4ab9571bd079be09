"""Episode memory limits: estimate what an episode allocates before allocating it.

Each synthetic family estimates, at construction and from its raw arguments, the bytes one episode
holds at the peak of ``reset`` (covariance matrices, the sampled instance, the task schedule, one
round's observation) and calls :func:`check_episode_memory`, which raises a ``ValueError`` naming the
estimate, its largest parts and the two ways to raise the limit:

* the ``max_memory_gib=`` argument of the env (``gym.make(id, max_memory_gib=64)``), or
* the ``HBGYM_MAX_MEMORY_GIB`` environment variable.

The default limit is :data:`DEFAULT_MAX_MEMORY_GIB`. The native vector env checks ``num_envs``
times the estimate. Estimates are upper bounds within a small factor, not exact accounting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MAX_MEMORY_GIB", "ENV_VAR", "check_episode_memory", "max_memory_gib", "size_or_none"]

DEFAULT_MAX_MEMORY_GIB = 4.0
ENV_VAR = "HBGYM_MAX_MEMORY_GIB"
_GIB = 2.0**30
F64 = 8  # bytes per float64 / int64


def max_memory_gib(value: Any = None) -> float:
    """The limit in GiB: ``value`` if given, else ``$HBGYM_MAX_MEMORY_GIB``, else the default."""
    source = "max_memory_gib"
    if value is None:
        value, source = os.environ.get(ENV_VAR), ENV_VAR
        if value in (None, ""):
            return DEFAULT_MAX_MEMORY_GIB
    try:
        limit = float(value)
    except (TypeError, ValueError):
        limit = float("nan")
    if not np.isfinite(limit) or limit <= 0 or isinstance(value, bool):
        raise ValueError(f"{source} must be a positive number of GiB, got {value!r}")
    return limit


def size_or_none(value: Any) -> int | None:
    """``value`` as a positive int, or None when it is not one (the model builder then raises)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        return None
    return int(value)


def check_episode_memory(
    env_name: str, parts: Mapping[str, float], limit_gib: Any = None, copies: int = 1
) -> float:
    """Raise ValueError if ``copies`` episodes of ``parts`` (name -> bytes) exceed the limit.

    Args:
        env_name: shown in the message (e.g. ``"HierGaussian-v0 (num_tasks=10000000)"``).
        parts: estimated bytes per episode, by what holds them.
        limit_gib: the env's ``max_memory_gib`` argument (None: env variable or default).
        copies: episodes held at once (``num_envs`` of a vector env).

    Returns:
        The estimate in bytes.
    """
    limit = max_memory_gib(limit_gib)
    total = copies * float(sum(parts.values()))
    if total > limit * _GIB:
        largest = sorted(parts.items(), key=lambda item: -item[1])[:3]
        detail = ", ".join(f"{name} {copies * b / _GIB:.3g} GiB" for name, b in largest)
        per = f" for {copies} episodes" if copies > 1 else " per episode"
        raise ValueError(
            f"{env_name} needs about {total / _GIB:.3g} GiB{per} ({detail}), above the limit of "
            f"{limit:g} GiB; reduce the sizes, or raise the limit with max_memory_gib=... or the "
            f"{ENV_VAR} environment variable"
        )
    return total
