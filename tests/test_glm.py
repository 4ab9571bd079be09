"""Laplace GLM posterior and the logistic agents (meTS-GLM, GLM-TS, UCB-GLM)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hbgym.agents import AGENTS, GLMTS, UCBGLM, MeTSGLM
from hbgym.agents.posteriors.laplace import LaplaceLogistic
from scipy.optimize import minimize

import hbgym  # noqa: F401
from tests.test_agents_hier import run_batched


def penalised_mle(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    def objective(theta):
        z = x @ theta
        return -(y * z - np.logaddexp(0, z)).sum() + 0.5 * ridge * theta @ theta

    return minimize(objective, np.zeros(x.shape[1]), method="BFGS", options={"gtol": 1e-10}).x


def test_refit_finds_penalised_mle_and_curvature():
    rng = np.random.default_rng(0)
    B, U, d, n = 2, 3, 2, 120
    laplace = LaplaceLogistic(B, U, d, capacity=n, ridge=0.5, refit_every=10**9)
    units = rng.integers(0, U, size=(B, n))
    x = rng.uniform(-1, 1, size=(B, n, d))
    y = (rng.uniform(size=(B, n)) < 1 / (1 + np.exp(-x @ np.array([1.5, -1.0])))).astype(float)
    for j in range(0, n, 4):  # online steps, then one exact refit
        laplace.add(torch.as_tensor(units[:, j : j + 4]), torch.as_tensor(x[:, j : j + 4]),
                    torch.as_tensor(y[:, j : j + 4]))
    laplace.refit()
    gram, moment = laplace.statistics()
    for b in range(B):
        for u in range(U):
            sel = units[b] == u
            theta = penalised_mle(x[b, sel], y[b, sel], 0.5)
            np.testing.assert_allclose(laplace.mode[b, u].numpy(), theta, atol=1e-5)
            p = 1 / (1 + np.exp(-x[b, sel] @ theta))
            hess = (x[b, sel].T * (p * (1 - p))) @ x[b, sel]
            np.testing.assert_allclose(gram[b, u].numpy(), hess, atol=1e-5)
            np.testing.assert_allclose(moment[b, u].numpy(), (hess + 0.5 * np.eye(d)) @ theta, atol=1e-5)


def test_online_steps_track_the_refit():
    rng = np.random.default_rng(1)
    laplace = LaplaceLogistic(1, 1, 2, capacity=200, refit_every=10**9)
    x = rng.uniform(-1, 1, size=(1, 200, 2))
    y = (rng.uniform(size=(1, 200)) < 0.7).astype(float)
    for j in range(200):
        laplace.add(torch.zeros(1, 1, dtype=torch.long), torch.as_tensor(x[:, j : j + 1]),
                    torch.as_tensor(y[:, j : j + 1]))
    online = laplace.mode.clone()
    laplace.refit()
    assert torch.allclose(online, laplace.mode, atol=0.05)


def test_separable_data_stays_finite_and_failures_fall_back_to_prior():
    laplace = LaplaceLogistic(1, 2, 2, capacity=10)
    x = torch.tensor([[[1.0, 0.0], [1.0, 0.5]]], dtype=torch.float64)
    laplace.add(torch.zeros(1, 2, dtype=torch.long), x, torch.ones(1, 2, dtype=torch.float64))
    laplace.refit()
    assert torch.isfinite(laplace.mode).all() and bool(laplace.valid[0, 0])
    laplace.mode[0, 0] = float("nan")
    laplace.valid[0, 0] = False
    gram, moment = laplace.statistics()
    assert gram[0, 0].abs().sum() == 0 and moment[0, 0].abs().sum() == 0
    assert gram[0, 1].abs().sum() == 0  # unit without data: the prior


@pytest.mark.parametrize("name", ["meTS-GLM", "GLM-TS", "UCB-GLM"])
def test_glm_agents_beat_uniform(name):
    kwargs = {"num_actions": 10, "horizon": 200}
    regret = run_batched("MixedEffectLogistic-v0", name, 8, **kwargs)
    uniform = run_batched("MixedEffectLogistic-v0", "Uniform", 8, **kwargs)
    assert regret.mean() < 0.7 * uniform.mean()


def test_mets_glm_posterior_is_the_hierarchy_with_laplace_statistics():
    vec = gym.make_vec("MixedEffectLogistic-v0", num_envs=2, num_actions=6, horizon=40)
    agent = MeTSGLM.from_env(vec, seed=0, refit_every=7)
    obs, _ = vec.reset(seed=0)
    for _ in range(40):
        action = agent.act(obs)
        next_obs, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        obs = next_obs
    agent.laplace.refit()
    gram, moment = agent.laplace.statistics()
    ids = torch.arange(6).expand(2, -1)
    agent.posterior.set_statistics(ids, gram, moment)
    h = agent.hierarchy
    from hbgym.agents.posteriors.gaussian import HierarchicalGaussian

    weights = obs["mixing"][:, 0]  # (B, K, L_e): this episode's public weights
    mixing = np.einsum("bkl,ij->bkilj", weights, np.eye(2)).reshape(2, 6, 2, -1)
    fresh = HierarchicalGaussian(2, 6, h.hyper_mean, h.hyper_cov, h.unit_cov, mixing=mixing)
    fresh.set_statistics(ids, gram, moment)
    for a, b in zip(agent.posterior.hyper_posterior(), fresh.hyper_posterior()):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_glm_agents_need_logistic_env():
    env = gym.make("MixedEffect-v0")
    for cls in (MeTSGLM, GLMTS, UCBGLM):
        with pytest.raises(ValueError, match="logistic"):
            cls.from_env(env)
    assert {"meTS-GLM", "GLM-TS", "UCB-GLM"} <= set(AGENTS)
