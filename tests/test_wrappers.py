"""hbgym.wrappers: sufficient statistics against hand computations, env checkers, clear errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import hbgym  # noqa: F401
from hbgym.wrappers import DiscreteAction, SufficientStats, SufficientStatsObservation

MAB = ("HierGaussianMAB-v0", {"schedule": "sequential", "num_tasks": 3, "horizon": 4, "num_actions": 4})
LINEAR = ("HierGaussian-v0", {"schedule": "sequential", "num_tasks": 3, "horizon": 4})


def rollout(env_id: str, kwargs: dict, seed: int = 3):
    """Wrapped observations and the raw (obs, action, per-slot reward) stream of one episode."""
    raw_env = gym.make(env_id, **kwargs)
    wrapped = SufficientStatsObservation(gym.make(env_id, **kwargs))
    obs, _ = raw_env.reset(seed=seed)
    vec, _ = wrapped.reset(seed=seed)
    raws, vectors, actions, rewards = [obs], [vec], [], []
    k, slots = raw_env.unwrapped.model.num_actions, raw_env.unwrapped.model.tasks_per_round
    done, t = False, 0
    while not done:
        action = np.array([(3 * t + t // 5 + 2 * slot) % k for slot in range(slots)])
        obs, _, done, _, info = raw_env.step(action)
        vec, _, _, _, _ = wrapped.step(action)
        raws.append(obs)
        vectors.append(vec)
        actions.append(action)
        rewards.append(info["rewards"])
        t += 1
    return raws, vectors, actions, rewards, raw_env.unwrapped.model


def test_k_armed_statistics_equal_hand_computation():
    raws, vectors, actions, rewards, model = rollout(*MAB)
    m, k, rounds = model.num_tasks, model.num_actions, model.num_rounds
    per_task = rounds / m
    for t in range(rounds):  # the vector shown before round t's action
        task = int(raws[t]["task"][0])
        counts, sums = np.zeros((m, k)), np.zeros((m, k))
        for u in range(t):
            s, a = int(raws[u]["task"][0]), int(actions[u][0])
            counts[s, a] += 1
            sums[s, a] += rewards[u][0]
        means = [sums[s][a] / counts[s][a] if counts[s][a] else 0.0 for s in (task,) for a in range(k)]
        pooled_n, pooled_r = counts.sum(0), sums.sum(0)
        pooled_means = [pooled_r[a] / pooled_n[a] if pooled_n[a] else 0.0 for a in range(k)]
        expected = np.concatenate(
            [counts[task] / per_task, means, pooled_n / rounds, pooled_means, [t / rounds]])
        np.testing.assert_allclose(vectors[t], expected, rtol=1e-6, atol=1e-6)
    assert vectors[0].dtype == np.float32 and vectors[0].shape == (4 * k + 1,)


CONCURRENT = ("HierGaussian-v0", {"horizon": 5})  # L = 5, a task may act twice in a round


@pytest.mark.parametrize("spec", [LINEAR, CONCURRENT], ids=["linear", "L5"])
def test_linear_statistics_equal_hand_computation(spec):
    raws, vectors, actions, rewards, model = rollout(*spec)
    m, d, rounds, L = model.num_tasks, model.dim, model.num_rounds, model.tasks_per_round
    for t in (0, 1, 5, rounds - 1):
        gram, b, n = np.zeros((m, d, d)), np.zeros((m, d)), np.zeros(m)
        for u in range(t):  # every slot of every earlier round
            for slot in range(L):
                s = int(raws[u]["task"][slot])
                x = raws[u]["features"][slot, int(actions[u][slot])]
                gram[s] += np.outer(x, x)
                b[s] += rewards[u][slot] * x
                n[s] += 1
        parts = []
        for slot in range(L):  # the statistics of each acting task, then its offered features
            task = int(raws[t]["task"][slot])
            own = max(n[task], 1)
            parts += [gram[task].ravel() / own, b[task] / own, [n[task] / (rounds * L / m)],
                      raws[t]["features"][slot].ravel()]
        total = max(n.sum(), 1)
        expected = np.concatenate(
            [*parts, gram.sum(0).ravel() / total, b.sum(0) / total, [n.sum() / (rounds * L)], [t / rounds]])
        np.testing.assert_allclose(vectors[t], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("spec", [MAB, LINEAR, CONCURRENT], ids=["mab", "linear", "L5"])
def test_batched_stats_equal_wrapper_per_slot(spec):
    env_id, kwargs = spec
    num_envs, seed = 3, 11
    vec = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    stats = SufficientStats(vec.unwrapped.model, vec.unwrapped.single_observation_space)
    stats.reset(num_envs)
    wrapped = [SufficientStatsObservation(gym.make(env_id, **kwargs)) for _ in range(num_envs)]
    obs, _ = vec.reset(seed=seed)
    singles = [w.reset(seed=seed + i)[0] for i, w in enumerate(wrapped)]
    gen = np.random.default_rng(0)
    for _ in range(vec.unwrapped.model.num_rounds):
        np.testing.assert_array_equal(stats.observe(obs), np.stack(singles))
        action = gen.integers(vec.unwrapped.model.num_actions, size=obs["task"].shape)
        after, _, _, _, info = vec.step(action)
        stats.update(obs, action, info["rewards"])
        singles = [w.step(action[i])[0] for i, w in enumerate(wrapped)]
        obs = after


@pytest.mark.parametrize("spec", [MAB, LINEAR], ids=["mab", "linear"])
@pytest.mark.parametrize("discrete", [False, True])
def test_check_env_gymnasium_and_sb3(spec, discrete):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env_id, kwargs = spec
    env = SufficientStatsObservation(gym.make(env_id, **kwargs))
    if discrete:
        env = DiscreteAction(env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded Box and wrapped-env notices
        check_env(env, skip_render_check=True)
        sb3_check_env(env)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_discrete_action_maps_to_the_single_slot():
    env = DiscreteAction(gym.make(MAB[0], **MAB[1]))
    assert env.action_space == gym.spaces.Discrete(4)
    np.testing.assert_array_equal(env.action(np.int64(2)), [2])
    with pytest.raises(ValueError, match=r"one integer in \[0, 3\]"):
        env.action(np.array([1, 2]))


def test_clear_errors_for_unsupported_envs():
    with pytest.raises(ValueError, match=r"L == 1.*sequential"):
        DiscreteAction(gym.make("HierGaussian-v0"))  # concurrent, L = 5
    with pytest.raises(ValueError, match="features=True"):
        SufficientStatsObservation(gym.make("MultiBandit-v0"))  # context only
    with pytest.raises(ValueError, match="not an hbgym env"):
        SufficientStatsObservation(gym.make("CartPole-v1"))
    env = gym.make(MAB[0], **MAB[1])
    stats = SufficientStats(env.unwrapped.model, env.observation_space)
    stats.reset(2)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        stats.observe({"task": np.zeros((3, 1), dtype=np.int64)})


def test_wrappers_do_not_import_torch():
    code = "import sys, hbgym.wrappers; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
