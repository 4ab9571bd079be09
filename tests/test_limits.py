"""Episode memory limits: huge sizes fail fast at construction with the estimate, not at reset."""

from __future__ import annotations

import gymnasium as gym
import pytest

import hbgym  # noqa: F401
from hbgym.envs.limits import ENV_VAR, check_episode_memory, max_memory_gib

HUGE = [
    ("HierGaussian-v0", {"num_tasks": 10**7}, "schedule"),
    ("MultiBandit-v0", {"num_tasks": 10**7}, "instance"),
    ("PartialContext-v0", {"num_batches": 10**7}, "users"),
    ("HierGaussian-v0", {"dim": 10**5}, "covariances"),
    ("MixedEffect-v0", {"dim": 10**5}, "covariances"),
    ("MultiBandit-v0", {"dim": 10**5}, "covariances"),
    ("MovieLensMulti-v0", {"horizon": 10**9}, "schedule"),  # checked before any data is loaded
    ("MNISTMulti-v0", {"horizon": 10**9}, "schedule"),
    ("MovieLensEffects-v0", {"rank": 10**5}, "covariances"),
]


@pytest.mark.parametrize(("env_id", "kwargs", "largest"), HUGE)
def test_huge_sizes_raise_with_the_estimate_and_the_way_out(env_id, kwargs, largest, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    pattern = rf"needs about [\d.e+]+ GiB per episode \({largest} .*max_memory_gib"
    with pytest.raises(ValueError, match=pattern):
        gym.make(env_id, **kwargs)


def test_limit_is_overridable_by_argument_and_environment(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    kwargs = {"num_tasks": 2000, "horizon": 50_000, "schedule": "meta"}  # meta: no task list
    gym.make("HierGaussian-v0", **kwargs)
    listed = {"num_tasks": 2000, "horizon": 2000}  # 4e6-entry task list: about 0.1 GiB
    with pytest.raises(ValueError, match="above the limit of 0.01 GiB"):
        gym.make("HierGaussian-v0", max_memory_gib=0.01, **listed)
    monkeypatch.setenv(ENV_VAR, "0.01")
    with pytest.raises(ValueError, match="above the limit of 0.01 GiB"):
        gym.make("HierGaussian-v0", **listed)
    env = gym.make("HierGaussian-v0", max_memory_gib=1, **listed)  # the argument wins
    env.reset(seed=0)


def test_vector_env_counts_every_episode(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    gym.make("HierGaussian-v0", num_tasks=10**4, horizon=200)  # one episode fits
    with pytest.raises(ValueError, match="for 100 episodes"):
        gym.make_vec("HierGaussian-v0", num_envs=100, num_tasks=10**4, horizon=200)


@pytest.mark.parametrize("bad", [0, -1, "lots", float("nan"), True])
def test_bad_limit_values_are_named(bad):
    with pytest.raises(ValueError, match=r"max_memory_gib must be a positive number of GiB"):
        max_memory_gib(bad)


def test_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "0")
    with pytest.raises(ValueError, match=ENV_VAR):
        check_episode_memory("x", {"a": 1.0})
