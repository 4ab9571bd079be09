"""HierGaussian-v0 family: generative model, schedules, regret and configuration errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hbgym  # noqa: F401
from hbgym.schedules import TaskSchedule


def test_sampled_parameters_match_prior_moments():
    B = 4000
    hyper_cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    vec = gym.make_vec("HierGaussian-v0", num_envs=B, sigma_q=hyper_cov, sigma_0=0.2, hyper_mean=[1.0, -2.0])
    vec.reset(seed=0)
    inst = vec.unwrapped.instance
    mu, theta = inst.hyper_param, inst.task_params
    np.testing.assert_allclose(mu.mean(0), [1.0, -2.0], atol=0.06)
    np.testing.assert_allclose(np.cov(mu.T), hyper_cov, atol=0.07)
    # theta_s | mu ~ N(mu, 0.04 I); marginal cov = hyper_cov + 0.04 I; tasks independent given mu
    dev = theta - mu[:, None, :]
    np.testing.assert_allclose(np.cov(dev.reshape(-1, 2).T), 0.04 * np.eye(2), atol=0.004)
    np.testing.assert_allclose(np.cov(theta[:, 0].T), hyper_cov + 0.04 * np.eye(2), atol=0.08)
    assert abs(np.corrcoef(dev[:, 0, 0], dev[:, 1, 0])[0, 1]) < 0.05
    feats = inst.action_features
    assert feats.shape == (B, 10, 2) and feats.min() >= -0.5 and feats.max() <= 0.5


def test_one_hot_means_are_task_parameters():
    env = gym.make("HierGaussianMAB-v0")
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs["features"][0], np.eye(10))
    _, _, _, _, info = env.step(np.arange(5))
    theta = env.unwrapped.instance.task_params[obs["task"]]
    np.testing.assert_allclose(info["expected_rewards"], theta[np.arange(5), np.arange(5)])
    np.testing.assert_array_equal(info["optimal_actions"], theta.argmax(1))


@pytest.mark.parametrize("kind", ["concurrent", "sequential"])
def test_permutation_schedules_give_each_task_exactly_n_turns(kind):
    L = 5 if kind == "concurrent" else 1
    schedule = TaskSchedule(kind, num_tasks=10, horizon=20, tasks_per_round=L)
    keys = np.arange(3, dtype=np.uint64)
    state = schedule.prepare(keys)
    tasks = np.concatenate([schedule.tasks(state, keys, t) for t in range(schedule.num_rounds)], axis=1)
    for row in tasks:
        np.testing.assert_array_equal(np.bincount(row, minlength=10), np.full(10, 20))
    assert not np.array_equal(tasks[0], tasks[1])  # different episodes, different orders


def test_meta_and_arrival_schedules():
    meta = TaskSchedule("meta", 4, 3, 1)
    keys = np.zeros(1, dtype=np.uint64)
    assert [int(meta.tasks(None, keys, t)[0, 0]) for t in range(12)] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    probs = np.array([0.7, 0.1, 0.1, 0.1])
    arrival = TaskSchedule("arrival", 4, 2000, 2, probs)
    tasks = np.concatenate([arrival.tasks(None, np.arange(2, dtype=np.uint64), t) for t in range(4000)])
    np.testing.assert_allclose(np.bincount(tasks.ravel(), minlength=4) / tasks.size, probs, atol=0.015)


def test_uniform_regret_grows_linearly():
    vec = gym.make_vec("HierGaussian-v0", num_envs=200, horizon=100)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    per_round = np.array([vec.step(vec.action_space.sample())[4]["regret"].sum(1).mean() for _ in range(200)])
    first, second = per_round[:100].sum(), per_round[100:].sum()
    assert abs(first - second) < 0.1 * first  # constant expected regret per round


@settings(max_examples=25, deadline=None)
@given(
    history=st.lists(st.integers(0, 9), min_size=5, max_size=5),
    probe=st.integers(0, 9),
    seed=st.integers(0, 10**6),
)
def test_reward_of_a_probe_action_is_independent_of_history(history, probe, seed):
    env_a = gym.make("HierGaussian-v0", schedule="sequential", horizon=2, num_tasks=5).unwrapped
    env_b = gym.make("HierGaussian-v0", schedule="sequential", horizon=2, num_tasks=5).unwrapped
    env_a.reset(seed=seed)
    env_b.reset(seed=seed)
    for action in history:
        env_a.step(np.array([action]))
        env_b.step(np.array([(action + 1) % 10]))
    assert env_a.step(np.array([probe]))[4]["rewards"][0] == env_b.step(np.array([probe]))[4]["rewards"][0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma_q": [[1.0, 2.0], [2.0, 1.0]]}, "positive semi-definite"),
        ({"sigma_0": np.ones((3, 3))}, "sigma_0"),
        ({"tasks_per_round": 3}, "divisible"),
        ({"schedule": "random"}, "schedule"),
        ({"schedule": "sequential", "tasks_per_round": 2}, "tasks_per_round"),
        ({"schedule": "arrival", "arrival_probs": [0.5, 0.5]}, "arrival_probs"),
        ({"schedule": "arrival", "arrival_probs": [0.2] * 10}, "sum to 1"),
        ({"action_set": "sphere"}, "action_set"),
        ({"num_tasks": 0}, "num_tasks"),
        ({"action_set": "one_hot", "dim": 3}, "dim"),
        ({"hyper_mean": [1.0, 2.0, 3.0]}, "hyper_mean"),
        ({"render_mode": "rgb"}, "render_mode"),  # "human" is wrapped by gymnasium (HumanRendering)
    ],
)
def test_invalid_configuration_raises_naming_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("HierGaussian-v0", **kwargs)


def test_step_before_reset_and_bad_reset_options():
    env = gym.make("HierGaussian-v0").unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"foo": 1})
