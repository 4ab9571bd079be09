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
from tests.conftest import dense_hierarchical_posterior
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


def test_refit_of_a_replicate_does_not_depend_on_the_other_replicates_in_its_batch():
    """Each replicate stops its Newton iterations when its own units converge (per-seed determinism):
    a replicate that needs few iterations gets the same bits alone as beside one that needs many."""
    rng = np.random.default_rng(7)
    B, U, d, n = 3, 2, 2, 60
    units = rng.integers(0, U, size=(B, n))
    x = rng.uniform(-1, 1, size=(B, n, d))
    x[2] *= 6.0  # nearly separable, strong signal: many more iterations than the others
    y = (rng.uniform(size=(B, n)) < 1 / (1 + np.exp(-x @ np.array([2.0, -1.5])))).astype(float)

    def fitted(rows: list[int]) -> LaplaceLogistic:
        laplace = LaplaceLogistic(len(rows), U, d, capacity=n, refit_every=10**9)
        laplace.add(torch.as_tensor(units[rows]), torch.as_tensor(x[rows]), torch.as_tensor(y[rows]))
        laplace.refit()
        return laplace

    together = fitted([0, 1, 2])
    for b in range(B):
        alone = fitted([b])
        for name in ("mode", "curvature", "valid"):
            assert torch.equal(getattr(together, name)[b], getattr(alone, name)[0]), (b, name)


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


def test_mets_glm_hyper_posterior_matches_an_independent_laplace_computation():
    """meTS-GLM's hyper-posterior equals a dense NumPy computation: per-action penalised MLEs found by
    scipy, their logistic curvature, and one joint Gaussian (nothing from the agent's own code)."""
    B, K = 2, 6
    vec = gym.make_vec("MixedEffectLogistic-v0", num_envs=B, num_actions=K, horizon=40)
    agent = MeTSGLM.from_env(vec, seed=0, refit_every=7)
    obs, _ = vec.reset(seed=0)
    history = []  # (chosen features (B, d), rewards (B,), actions (B,))
    for _ in range(40):
        action = agent.act(obs)
        next_obs, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        history.append((obs["features"][np.arange(B), 0, action[:, 0]], info["rewards"][:, 0], action[:, 0]))
        obs = next_obs
    agent.laplace.refit()  # the agent's own path: refit, then its statistics into the hierarchy
    gram, moment = agent.laplace.statistics()
    agent.posterior.set_statistics(torch.arange(K).expand(B, -1), gram, moment)
    got_mean, got_cov = agent.posterior.hyper_posterior()
    ridge = agent.laplace.ridge
    x_all = np.stack([hx for hx, _, _ in history], 1)  # (B, T, d)
    y_all = np.stack([hy for _, hy, _ in history], 1)
    a_all = np.stack([ha for _, _, ha in history], 1)
    for b in range(B):
        grams, moments = [], []
        for k in range(K):
            x, y = x_all[b][a_all[b] == k], y_all[b][a_all[b] == k]
            if len(y) == 0:
                grams.append(np.zeros((2, 2)))
                moments.append(np.zeros(2))
                continue
            theta = penalised_mle(x, y, ridge)
            p = 1 / (1 + np.exp(-x @ theta))
            g = (x * (p * (1 - p))[:, None]).T @ x
            grams.append(g)
            moments.append((g + ridge * np.eye(2)) @ theta)
        h = agent.hierarchy
        weights = obs["mixing"][b, 0]  # (K, L_e): this episode's public weights (constant in the episode)
        mixing = np.einsum("kl,ij->kilj", weights, np.eye(2)).reshape(K, 2, -1)
        mean, cov = dense_hierarchical_posterior(h.hyper_mean, h.hyper_cov, mixing, h.unit_cov,
                                                 grams, moments)
        D = len(h.hyper_mean)
        np.testing.assert_allclose(got_mean[b].numpy(), mean[:D], atol=1e-6)
        np.testing.assert_allclose(got_cov[b].numpy(), cov[:D, :D], atol=1e-6)


def test_glm_agents_need_logistic_env():
    env = gym.make("MixedEffect-v0")
    for cls in (MeTSGLM, GLMTS, UCBGLM):
        with pytest.raises(ValueError, match="logistic"):
            cls.from_env(env)
    assert {"meTS-GLM", "GLM-TS", "UCB-GLM"} <= set(AGENTS)
