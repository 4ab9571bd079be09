"""MultiBandit-v0 family: generative-model moments, arrival frequencies, contexts, noise, bad configs.

The registry-driven contract tests (tests/test_env_contract.py) cover spaces, seeding, CRN, vector ==
single and bad actions for every registered MultiBandit id; this file checks the family's model.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hbgym  # noqa: F401  (registers the ids)
from hbgym.envs.multi_bandit import MultiBanditEnv, ar1_correlation, disjoint_features

KEYS = np.arange(1, 6001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)


def _cov(x: np.ndarray) -> np.ndarray:
    """Sample covariance of rows ``(n, d)``."""
    return np.cov(x, rowvar=False)


def test_generative_model_moments_gaussian():
    env = MultiBanditEnv(num_tasks=3, num_actions=2, dim=3, sigma_q=0.7, hyper_mean=[0.5, -1.0, 0.0],
                         task_cov=[[[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.1]],
                                   [[0.05, 0.0, 0.0], [0.0, 0.4, -0.1], [0.0, -0.1, 0.2]]])
    sim, model = env.simulator, env.model
    inst = sim.sample_instance(KEYS)
    n = len(KEYS)
    assert inst.hyper_params.shape == (n, 2, 3) and inst.task_params.shape == (n, 3, 2, 3)
    se = np.sqrt(0.49 / n)
    for k in range(2):
        beta_k = inst.hyper_params[:, k]
        np.testing.assert_allclose(beta_k.mean(0), model.hyper_mean[k], atol=5 * se)
        np.testing.assert_allclose(_cov(beta_k), model.hyper_cov[k], atol=0.05)
        dev = (inst.task_params[:, :, k] - inst.hyper_params[:, None, k]).reshape(-1, 3)
        np.testing.assert_allclose(dev.mean(0), 0.0, atol=0.03)
        np.testing.assert_allclose(_cov(dev), model.task_cov[k], atol=0.02)
        # marginal of beta_{s,k}: N(mu_k, Sigma_q + Sigma_k)
        np.testing.assert_allclose(_cov(inst.task_params[:, 0, k]), model.hyper_cov[k] + model.task_cov[k],
                                   atol=0.07)
    # deviations of different instances are independent
    d0 = inst.task_params[:, 0, 0] - inst.hyper_params[:, 0]
    d1 = inst.task_params[:, 1, 0] - inst.hyper_params[:, 0]
    assert np.abs(np.corrcoef(d0[:, 0], d1[:, 0])[0, 1]) < 0.05


def test_default_task_cov_is_ar1():
    model = MultiBanditEnv().model
    expected = 0.25 * ar1_correlation(5, 0.5)
    for k in range(model.num_actions):
        np.testing.assert_allclose(model.task_cov[k], expected)
    np.testing.assert_allclose(model.noise_std, 0.5)
    np.testing.assert_allclose(model.arrival_probs, 0.1)


def test_sparse_heterogeneity_support_and_second_moment():
    env = MultiBanditEnv(num_tasks=2, num_actions=2, dim=6, heterogeneity="sparse", sparsity=2,
                         sparse_std=0.8)
    inst = env.simulator.sample_instance(KEYS)
    dev = inst.task_params - inst.hyper_params[:, None]  # (n, M, K, d)
    nonzero = (dev != 0).sum(-1)
    assert np.all(nonzero == 2), "every deviation has exactly `sparsity` non-zero coordinates"
    # the support is uniform over coordinates
    freq = (dev != 0).reshape(-1, 6).mean(0)
    np.testing.assert_allclose(freq, 2 / 6, atol=0.02)
    flat = dev.reshape(-1, 6)
    np.testing.assert_allclose(flat.T @ flat / len(flat), env.model.task_cov[0], atol=0.02)
    # non-zero entries are N(0, sparse_std^2): heavy mass at 0 makes the model non-Gaussian
    vals = dev[dev != 0]
    assert abs(vals.std() - 0.8) < 0.02


@pytest.mark.parametrize(
    ("arrival", "expected"),
    [
        ("balanced", np.full(5, 0.2)),
        ("data_poor", np.array([0.04, 0.24, 0.24, 0.24, 0.24])),
        ([0.5, 0.1, 0.1, 0.1, 0.2], np.array([0.5, 0.1, 0.1, 0.1, 0.2])),
    ],
)
def test_arrival_frequencies(arrival, expected):
    vec = gym.make_vec("MultiBandit-v0", num_envs=100, num_tasks=5, num_actions=2, dim=2, horizon=40,
                       arrival=arrival, rare_prob=0.04)
    np.testing.assert_allclose(vec.unwrapped.model.arrival_probs, expected)
    obs, _ = vec.reset(seed=0)
    tasks = [obs["task"][:, 0]]
    zeros = np.zeros((100, 1), dtype=np.int64)
    for _ in range(vec.unwrapped.model.num_rounds - 1):
        obs, *_ = vec.step(zeros)
        tasks.append(obs["task"][:, 0])
    tasks = np.concatenate(tasks)
    freq = np.bincount(tasks, minlength=5) / len(tasks)
    se = np.sqrt(expected * (1 - expected) / len(tasks))
    assert np.all(np.abs(freq - expected) < 5 * se + 1e-12), (freq, expected)


def test_context_distributions():
    sim = MultiBanditEnv(dim=4, mixture_means=[-1.0, 2.0], mixture_stds=[0.5, 0.25],
                         mixture_weights=[0.75, 0.25]).simulator
    x = np.concatenate([sim.contexts(KEYS[:500], t) for t in range(40)])  # (20000, 4)
    mean = 0.75 * -1.0 + 0.25 * 2.0
    var = 0.75 * (0.25 + 1.0) + 0.25 * (0.0625 + 4.0) - mean**2
    np.testing.assert_allclose(x.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(x.var(0), var, rtol=0.05)
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.03  # independent elements
    assert np.mean(x > 0.5) == pytest.approx(0.25, abs=0.02)  # mixture weights
    uni = MultiBanditEnv(dim=3, context="uniform").simulator
    u = np.concatenate([uni.contexts(KEYS[:500], t) for t in range(20)])
    assert u.min() >= -1 and u.max() <= 1
    np.testing.assert_allclose(u.var(0), 1 / 3, rtol=0.05)


def test_heteroscedastic_noise_and_regret_from_truth():
    sigma = np.array([0.1, 0.5, 1.0])
    vec = gym.make_vec("MultiBandit-v0", num_envs=200, num_tasks=3, num_actions=3, dim=2, horizon=30,
                       sigma=sigma)
    obs, _ = vec.reset(seed=3)
    inst = vec.unwrapped.instance
    resid = {k: [] for k in range(3)}
    for t in range(vec.unwrapped.model.num_rounds):
        actions = np.full((200, 1), t % 3, dtype=np.int64)
        beta = inst.task_params[np.arange(200), obs["task"][:, 0]]  # (B, K, d)
        means = np.einsum("bkd,bd->bk", beta, obs["context"][:, 0])
        next_obs, _, _, _, info = vec.step(actions)
        np.testing.assert_allclose(info["expected_rewards"][:, 0], means[:, t % 3], atol=1e-12)
        np.testing.assert_allclose(info["regret"][:, 0], means.max(1) - means[:, t % 3], atol=1e-12)
        resid[t % 3].append(info["rewards"][:, 0] - info["expected_rewards"][:, 0])
        obs = next_obs
    for k in range(3):
        r = np.concatenate(resid[k])
        assert abs(r.std() / sigma[k] - 1) < 0.05 and abs(r.mean()) < 4 * sigma[k] / np.sqrt(len(r))


def test_features_are_the_disjoint_arm_encoding():
    env = gym.make("MultiBandit-v0", num_actions=3, dim=2, features=True)
    obs, _ = env.reset(seed=0)
    x = obs["context"]
    np.testing.assert_array_equal(obs["features"], disjoint_features(x, 3))
    inst = env.unwrapped.instance
    beta = inst.task_params[obs["task"][0]]  # (K, d)
    _, _, _, _, info = env.step(np.array([1]))
    np.testing.assert_allclose(info["expected_rewards"][0], obs["features"][0, 1] @ beta.ravel())


BAD_CONFIGS = [
    ({"arrival": "rare"}, "arrival"),
    ({"arrival": [0.5, 0.5]}, "arrival"),
    ({"num_tasks": 2, "arrival": [0.7, 0.7]}, "arrival"),
    ({"arrival": "data_poor", "rare_prob": 0.5}, "rare_prob"),
    ({"arrival": "data_poor", "rare_prob": 0.0}, "rare_prob"),
    ({"context": "gaussian"}, "context"),
    ({"heterogeneity": "laplace"}, "heterogeneity"),
    ({"sigma": 0.0}, "sigma"),
    ({"sigma": [0.5, 0.5]}, "sigma"),
    ({"sigma": [0.5, -1, 0.5, 0.5, 0.5]}, "sigma"),
    ({"dim": 2, "task_cov": [[1.0, 2.0], [2.0, 1.0]]}, "task_cov"),
    ({"dim": 2, "task_cov": np.ones((3, 2, 2))}, "task_cov"),
    ({"task_corr": 1.0}, "task_corr"),
    ({"task_std": -0.1}, "task_std"),
    ({"sigma_q": -1.0}, "sigma_q"),
    ({"hyper_mean": [0.0, 1.0]}, "hyper_mean"),
    ({"heterogeneity": "sparse", "sparsity": 6}, "sparsity"),
    ({"heterogeneity": "sparse", "task_cov": 0.1}, "task_cov"),
    ({"mixture_weights": [0.2, 0.2]}, "mixture_weights"),
    ({"mixture_stds": [0.5, 0.0]}, "mixture_stds"),
    ({"num_actions": 1}, "num_actions"),
    ({"horizon": 0}, "horizon"),
    ({"features": "yes"}, "features"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD_CONFIGS, ids=[n for _, n in BAD_CONFIGS])
def test_bad_configs_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MultiBanditEnv(**kwargs)


def test_presets():
    assert gym.make("MultiBanditDataPoor-v0").unwrapped.model.arrival_probs[0] == pytest.approx(0.02)
    assert gym.make("MultiBanditSparse-v0").unwrapped.model.heterogeneity == "sparse"
    assert gym.make("MultiBanditUniform-v0").unwrapped.model.context == "uniform"
    assert gym.make("MultiBandit-v0").unwrapped.model.num_rounds == 2000
