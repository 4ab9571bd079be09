"""Fingerprint of seeded rollouts over every registered id and documented variant.

    python -m benchmarks.rollout_hash [--write PATH] [--check PATH] [--rounds 40]

For each (id, kwargs) it resets a single env (seed 7, then a continuing ``reset()``) and a native
vector env of 3 slots (seed 11), plays seeded random actions for ``--rounds`` rounds and hashes every
observation, reward, termination flag and ``info`` array (bytes, dtype and shape). Speed work on the
step/reset hot paths must leave every fingerprint unchanged: ``--check`` compares with a stored file
and exits 1 on any difference (``tests/test_rollout_hash.py`` runs it on a subset).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import hbgym  # noqa: F401
from hbgym.envs import ENV_IDS, VARIANTS

STORED = Path(__file__).resolve().parent / "results" / "rollout_hashes.json"


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            digest.update(str(key).encode())
            _feed(digest, value[key])
        return
    arr = np.asarray(value)
    digest.update(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(np.ascontiguousarray(arr).tobytes())


def settings() -> list[tuple[str, dict[str, Any]]]:
    """Every registered id with its defaults and each documented variant."""
    return [(env_id, kw) for env_id in ENV_IDS for kw in [{}, *VARIANTS.get(env_id, [])]]


def rollout_hash(env_id: str, kwargs: dict[str, Any], rounds: int) -> str:
    """sha256 of a seeded single-env and vector-env rollout of ``env_id`` built with ``kwargs``."""
    digest = hashlib.sha256()
    actions = np.random.default_rng(3)
    env = gym.make(env_id, **kwargs)
    for seed in (7, None):
        obs, _ = env.reset(seed=seed)
        _feed(digest, obs)
        for _ in range(rounds):
            obs, reward, terminated, truncated, info = env.step(actions.integers(
                0, env.unwrapped.model.num_actions, size=env.action_space.shape
            ))
            _feed(digest, {"obs": obs, "reward": reward, "done": [terminated, truncated], "info": info})
            if terminated:
                break
    vec = gym.make_vec(env_id, num_envs=3, **kwargs)
    obs, _ = vec.reset(seed=11)
    _feed(digest, obs)
    for _ in range(rounds):
        act = actions.integers(0, vec.unwrapped.model.num_actions, size=vec.action_space.shape)
        obs, reward, terminated, truncated, info = vec.step(act)
        _feed(digest, {"obs": obs, "reward": reward, "done": [terminated, truncated], "info": info})
    return digest.hexdigest()


def compute(rounds: int, only: set[str] | None = None) -> dict[str, str]:
    out = {}
    for env_id, kw in settings():
        name = f"{env_id} {json.dumps(kw, sort_keys=True)}"
        if only is not None and name not in only:
            continue
        try:
            out[name] = rollout_hash(env_id, kw, rounds)
        except (FileNotFoundError, OSError) as exc:  # a data env whose data is absent here
            out[name] = f"unavailable: {type(exc).__name__}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--check", type=Path, default=None)
    args = parser.parse_args(argv)
    hashes = compute(args.rounds)
    if args.write is not None:
        args.write.write_text(json.dumps({"rounds": args.rounds, "hashes": hashes}, indent=1) + "\n")
    if args.check is None:
        print(json.dumps(hashes, indent=1))
        return 0
    stored = json.loads(args.check.read_text())["hashes"]
    bad = [name for name in sorted(set(stored) | set(hashes)) if stored.get(name) != hashes.get(name)]
    for name in bad:
        print(f"CHANGED {name}: {stored.get(name)} -> {hashes.get(name)}")
    print(f"{len(hashes) - len(bad)}/{len(hashes)} rollouts identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
