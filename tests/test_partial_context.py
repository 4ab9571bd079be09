"""PartialContext-v0 (CoCo bandits, App. C): generative model, schedule, errors; and its baselines."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hbgym  # noqa: F401  (registers the ids)
from hbgym.envs.partial_context import (
    MIXTURE_MEANS,
    PARTIAL_LINEAR_W,
    PartialContextSimulator,
    conditional_prior,
    feature_map,
    make_partial_context_model,
)

ENV_ID = "PartialContext-v0"


def _model(scenario: str, **kwargs):
    args = {"num_batches": None, "batch_size": None, "steps_per_user": None, "sigma": 0.1}
    args.update(kwargs)
    return make_partial_context_model(scenario=scenario, **args)


def _instances(scenario: str, num_episodes: int, **kwargs):
    model = _model(scenario, **kwargs)
    keys = np.arange(1, num_episodes + 1, dtype=np.uint64) * np.uint64(7919)
    return model, PartialContextSimulator(model).sample_instance(keys)


def _mixture_moments(weights, means, covs):
    """Mean ``(..., K)`` and covariance ``(..., K, K)`` of a Gaussian mixture."""
    mean = np.einsum("...c,...ck->...k", weights, means)
    second = np.einsum("...c,...ckj->...kj", weights, covs + means[..., :, None] * means[..., None, :])
    return mean, second - mean[..., :, None] * mean[..., None, :]


# --------------------------------------------------------------------------- generative model


@pytest.mark.parametrize("scenario", ["mixture", "partial_linear", "lmm", "lmm_mixture"])
def test_mu_given_x_matches_conditional_prior(scenario):
    """Across many episodes, ``mu - E[mu | x]`` has mean 0 and covariance ``E[Cov(mu | x)]``, and
    its whitened version (by the conditional covariance, binned by x) has unit variance."""
    model, inst = _instances(scenario, 3000, num_batches=2, batch_size=5)
    x = inst.x_obs  # (E, n)
    weights, means, covs = conditional_prior(model, None, x)
    mean, cov = _mixture_moments(weights, means, covs)
    resid = (inst.mu - mean).reshape(-1, 3)
    np.testing.assert_allclose(resid.mean(0), 0.0, atol=0.03)
    emp_cov = resid.T @ resid / len(resid)
    np.testing.assert_allclose(emp_cov, cov.reshape(-1, 3, 3).mean(0), atol=0.03, rtol=0.06)
    for lo, hi in [(-1.0, -0.5), (0.5, 1.0)]:  # context-dependence: moments within x bins
        sel = ((x >= lo) & (x < hi)).reshape(-1)
        r = resid[sel]
        np.testing.assert_allclose(r.T @ r / len(r), cov.reshape(-1, 3, 3)[sel].mean(0), atol=0.04, rtol=0.1)
    assert np.all((x >= -1) & (x <= 1)) and abs(x.mean()) < 0.02 and abs(x.var() - 1 / 3) < 0.01


def test_mixture_components_and_scales():
    model, inst = _instances("mixture", 2000, num_batches=2, batch_size=5)
    x, comp = inst.x_obs, inst.components
    v1 = 1 / (1 + np.exp(-x))
    assert abs(np.mean((comp == 0) - v1)) < 0.01  # P(component 1 | x) = sigmoid(x)
    z = (inst.mu - MIXTURE_MEANS[comp]) / (0.2 + 0.1 * x)[..., None]
    np.testing.assert_allclose(z.reshape(-1, 3).mean(0), 0.0, atol=0.02)
    np.testing.assert_allclose(np.cov(z.reshape(-1, 3).T), np.eye(3), atol=0.03)


def test_partial_linear_latents_and_linear_mean():
    model, inst = _instances("partial_linear", 2000, num_batches=2, batch_size=5)
    ctx = inst.contexts  # (E, n, 4)
    np.testing.assert_allclose(inst.mu, ctx @ PARTIAL_LINEAR_W.T, atol=1e-12)
    np.testing.assert_array_equal(ctx[..., 3], 1.0)
    np.testing.assert_array_equal(ctx[..., 2], inst.components)
    assert abs(ctx[..., 1].mean() - 0.5) < 0.005 and abs(ctx[..., 1].std() - 0.1) < 0.005
    assert abs(np.mean(ctx[..., 2] - 1 / (1 + np.exp(-ctx[..., 0])))) < 0.01
    # the conditional prior's covariance is the singular rank-one 0.1^2 w_c w_c^T
    _, _, covs = conditional_prior(model, None, np.array([0.3]))
    assert np.linalg.matrix_rank(covs[0, 0]) == 1


@pytest.mark.parametrize("scenario", ["lmm", "lmm_mixture"])
def test_lmm_theta_shared_and_delta(scenario):
    model, inst = _instances(scenario, 3000, num_batches=1, batch_size=20)
    theta = inst.theta  # (E, 2): one draw per episode, shared by all its users
    centre = 1.0 if scenario == "lmm" else np.where(inst.theta_component == 1, 1.0, -1.0)[:, None]
    dev = theta - centre
    np.testing.assert_allclose(dev.mean(0), 0.0, atol=0.03)
    np.testing.assert_allclose(np.cov(dev.T), 0.25 * np.eye(2), atol=0.025)
    if scenario == "lmm_mixture":
        assert abs(inst.theta_component.mean() - 0.5) < 0.03
    delta = inst.mu - np.einsum("enkd,ed->enk", feature_map(inst.x_obs), theta)
    np.testing.assert_allclose(np.cov(delta.reshape(-1, 3).T), 0.05**2 * np.eye(3), rtol=0.05, atol=6e-5)
    # given the instance, the oracle prior is N(Phi theta, Sigma_delta), batched over episodes
    w, m, c = conditional_prior(model, inst, inst.x_obs)
    assert w.shape == (3000, 20, 1) and m.shape == (3000, 20, 1, 3) and c.shape == (3000, 20, 1, 3, 3)
    np.testing.assert_allclose(m[..., 0, :], inst.mu - delta, atol=1e-12)
    np.testing.assert_allclose(c, np.broadcast_to(0.05**2 * np.eye(3), c.shape))


def test_feature_map_is_the_lmm_design():
    phi = feature_map(np.array([0.5, -1.0]))
    np.testing.assert_allclose(phi[0], [[0.45, 1.0], [-0.55, 1.0], [0.1, 1.0]])
    assert phi.shape == (2, 3, 2)


# --------------------------------------------------------------------------- schedule and obs


@pytest.mark.parametrize("scenario", ["mixture", "lmm"])
def test_recruitment_schedule_and_observations(scenario):
    env = gym.make(ENV_ID, scenario=scenario, num_batches=3, batch_size=4, steps_per_user=2)
    model = env.unwrapped.model
    assert (model.num_tasks, model.tasks_per_round, model.horizon, model.num_rounds) == (12, 4, 6, 6)
    obs, _ = env.reset(seed=0)
    inst = env.unwrapped.instance
    acted = np.zeros(model.num_tasks, dtype=int)
    first_round = np.full(model.num_tasks, -1)
    for t in range(model.num_rounds):
        expected = (t // 2) * 4 + np.arange(4)
        np.testing.assert_array_equal(obs["task"], expected)
        np.testing.assert_array_equal(model.users_in_round(t), expected)
        np.testing.assert_array_equal(obs["context"][:, 0], inst.x_obs[expected])
        np.testing.assert_allclose(obs["features"], feature_map(inst.x_obs[expected]))
        acted[expected] += 1
        first_round[expected] = np.where(first_round[expected] < 0, t, first_round[expected])
        action = np.arange(4) % 3
        obs, _, terminated, _, info = env.step(action)
        np.testing.assert_allclose(info["expected_rewards"], inst.mu[expected, action])
        np.testing.assert_array_equal(info["optimal_actions"], inst.mu[expected].argmax(1))
    assert terminated
    np.testing.assert_array_equal(acted, 2)  # every user acts steps_per_user consecutive rounds
    np.testing.assert_array_equal(first_round, np.repeat([0, 2, 4], 4))


def test_paper_defaults_per_scenario():
    sizes = {s: gym.make(ENV_ID, scenario=s).unwrapped.model for s in
             ("mixture", "partial_linear", "lmm", "lmm_mixture")}
    mix = sizes["mixture"]
    assert (mix.num_tasks, mix.tasks_per_round, mix.horizon) == (150, 5, 150)
    assert (sizes["partial_linear"].num_tasks, sizes["partial_linear"].horizon) == (150, 150)
    assert (sizes["lmm"].num_tasks, sizes["lmm"].tasks_per_round, sizes["lmm"].horizon) == (50, 50, 5)
    assert (sizes["lmm_mixture"].num_tasks, sizes["lmm_mixture"].horizon) == (100, 100)
    model = sizes["mixture"]
    assert (model.num_actions, model.sigma, model.context_dim, model.feature_dim) == (3, 0.1, 1, 2)
    np.testing.assert_allclose(model.mtts_prior.mu_theta, [1.0, 1.0])
    np.testing.assert_allclose(model.mtts_prior.Sigma_theta, 0.25 * np.eye(2))
    np.testing.assert_allclose(model.mtts_prior.Sigma_delta, 0.0025 * np.eye(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scenario": "gaussian"}, "mixture, partial_linear, lmm, lmm_mixture"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_batches": 2.5}, "num_batches"),
        ({"steps_per_user": -1}, "steps_per_user"),
        ({"sigma": 0.0}, "sigma"),
    ],
)
def test_bad_kwargs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)


def test_lmm_oracle_prior_needs_nothing_else_and_marginal_without_instance():
    model = _model("lmm_mixture")
    w, m, c = conditional_prior(model, None, np.array([0.2, -0.4]))
    assert w.shape == (2, 2)
    np.testing.assert_allclose(w, 0.5)
    np.testing.assert_allclose(m[:, 0], -m[:, 1])
    phi = feature_map(np.array(0.2))
    np.testing.assert_allclose(c[0, 0], 0.25 * phi @ phi.T + 0.0025 * np.eye(3))
