"""MixedEffect-v0 family: generative model, contexts, logistic rewards, configuration errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hbgym  # noqa: F401


def test_effects_and_action_parameters_follow_the_model():
    B = 3000
    vec = gym.make_vec("MixedEffect-v0", num_envs=B, num_actions=4, horizon=1)
    vec.reset(seed=0)
    inst, model = vec.unwrapped.instance, vec.unwrapped.model
    np.testing.assert_allclose(np.cov(inst.effects[:, 1].T), 3 * np.eye(2), atol=0.25)
    centre = np.einsum("kl,bld->bkd", model.mixing_weights, inst.effects)
    dev = inst.action_params - centre
    np.testing.assert_allclose(np.cov(dev.reshape(-1, 2).T), np.eye(2), atol=0.06)
    np.testing.assert_allclose(model.mixing_weights.sum(1), 1.0)  # Dirichlet rows on the simplex


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
    ],
)
def test_invalid_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("MixedEffect-v0", **kwargs)
