"""MixedEffect-v0 family: generative model, contexts, logistic rewards, configuration errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hbgym  # noqa: F401


def test_effects_and_action_parameters_follow_the_model():
    B = 3000
    vec = gym.make_vec("MixedEffect-v0", num_envs=B, num_actions=4, horizon=1)
    obs, _ = vec.reset(seed=0)
    inst, model = vec.unwrapped.instance, vec.unwrapped.model
    assert model.mixing_weights is None and model.mixing_episode == "signed"
    np.testing.assert_allclose(np.cov(inst.effects[:, 1].T), 3 * np.eye(2), atol=0.25)
    weights = obs["mixing"][:, 0]  # (B, K, L_e): public, equal to the instance's weights
    np.testing.assert_array_equal(weights, inst.mixing_weights)
    centre = np.einsum("bkl,bld->bkd", weights, inst.effects)
    dev = inst.action_params - centre
    np.testing.assert_allclose(np.cov(dev.reshape(-1, 2).T), np.eye(2), atol=0.06)
    # signed weights b_il ~ U[-1, 1], redrawn every episode
    assert weights.min() >= -1 and weights.max() <= 1
    assert abs(weights.mean()) < 0.02 and abs(weights.var() - 1 / 3) < 0.01
    assert not np.array_equal(weights[0], weights[1])


def test_weights_are_constant_within_an_episode_and_redrawn_by_reset():
    env = gym.make("MixedEffect-v0", num_actions=5, horizon=3)
    obs0, _ = env.reset(seed=4)
    obs1, *_ = env.step(np.array([0]))
    np.testing.assert_array_equal(obs0["mixing"], obs1["mixing"])
    again, _ = env.reset(seed=5)
    assert not np.array_equal(obs0["mixing"], again["mixing"])


def test_fixed_and_simplex_options_keep_the_earlier_behaviour():
    env = gym.make("MixedEffect-v0", num_actions=6, horizon=2, mixing="simplex", mixing_seed=0,
                   contexts="uniform")
    weights = env.unwrapped.model.mixing_weights
    np.testing.assert_allclose(weights.sum(1), 1.0)  # Dirichlet rows on the simplex
    np.testing.assert_array_equal(weights, np.random.default_rng(0).dirichlet(np.ones(3), size=6))
    for seed in (1, 2):
        obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(obs["mixing"][0], weights)
    per_episode = gym.make_vec("MixedEffect-v0", num_envs=2000, num_actions=3, horizon=1, mixing="simplex")
    obs, _ = per_episode.reset(seed=0)
    np.testing.assert_allclose(obs["mixing"].sum(-1), 1.0)
    assert obs["mixing"].min() >= 0 and abs(obs["mixing"][..., 0].var() - 1 / 18) < 0.005  # Dirichlet(1)


def test_contexts_come_from_a_fixed_pool_of_points_per_episode():
    vec = gym.make_vec("MixedEffect-v0", num_envs=2, pool_size=7, horizon=20)
    obs, _ = vec.reset(seed=3)
    seen = [obs["features"][:, 0]]
    for _ in range(19):
        obs, *_ = vec.step(np.zeros((2, 1), dtype=np.int64))
        seen.append(obs["features"][:, 0])
    points = np.stack(seen, 1)  # (B, n, K, d)
    for b in range(2):
        distinct = np.unique(points[b].reshape(-1, 2), axis=0)
        assert len(distinct) == 7 and np.abs(distinct).max() <= 1  # 2000 draws from 7 points
    assert not np.array_equal(np.unique(points[0].reshape(-1, 2), axis=0),
                              np.unique(points[1].reshape(-1, 2), axis=0))


def test_contexts_are_fresh_each_round_and_logistic_means_are_probabilities():
    env = gym.make("MixedEffectLogistic-v0", num_actions=6, horizon=5)
    obs0, _ = env.reset(seed=1)
    obs1, _, _, _, info = env.step(np.array([2]))
    assert obs0["features"].shape == (1, 6, 2) and np.abs(obs0["features"]).max() <= 1
    assert not np.array_equal(obs0["features"], obs1["features"])
    assert 0 < info["expected_rewards"][0] < 1 and info["rewards"][0] in (0.0, 1.0)


def test_bernoulli_rewards_have_the_stated_means():
    vec = gym.make_vec("MixedEffectLogistic-v0", num_envs=4000, num_actions=3, horizon=2)
    vec.reset(seed=0)
    _, _, _, _, info = vec.step(np.zeros((4000, 1), dtype=np.int64))
    assert abs(info["rewards"].mean() - info["expected_rewards"].mean()) < 0.025


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reward": "poisson"}, "reward"),
        ({"mixing_weights": np.ones((3, 3))}, "mixing_weights"),
        ({"effect_std": -1.0}, "effect_std"),
        ({"num_actions": 1}, "num_actions"),
        ({"sigma": 0}, "sigma"),
        ({"mixing": "dense"}, "mixing"),
        ({"contexts": "grid"}, "contexts"),
        ({"pool_size": 0}, "pool_size"),
        ({"mixing_seed": -1}, "mixing_seed"),
    ],
)
def test_invalid_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("MixedEffect-v0", **kwargs)
