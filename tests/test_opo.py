"""HierOPO / OracleOPO / FlatOPO: posteriors equal dense conditioning, LCB policy, consistency."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from hbgym.agents import AGENTS, Agent, FlatOPO, HierOPO, OracleOPO
from hbgym.agents.hierarchies import hierarchy_for

import hbgym  # noqa: F401
from hbgym import offline

KW = {"num_tasks": 4, "num_actions": 5, "dim": 3, "sigma_q": 1.0, "sigma_0": 0.5, "sigma": 0.5,
      "action_set": "resampled", "horizon": 20}


def dense_posterior(ds: offline.LoggedDataset, model, hyper: np.ndarray | None = None, flat: bool = False):
    """Condition the joint Gaussian of (mu, theta_1..theta_m) on every logged reward at once.

    ``hyper`` given: condition on mu = hyper too (OracleOPO). ``flat``: tasks independent with prior
    N(mu_q, Sigma_q + Sigma_0) (FlatOPO). Returns per-task means (m, d) and covariances (m, d, d).
    """
    m, d = model.num_tasks, model.dim
    sq, s0, mq = model.hyper_cov, model.task_cov, model.hyper_mean
    size = (m + 1) * d
    mean = np.tile(mq, m + 1)
    cov = np.zeros((size, size))
    for i in range(m + 1):  # hierarchical: Cov(theta_i, theta_j) = Sigma_q + [i == j] Sigma_0
        for j in range(m + 1):
            if not flat or i == j:  # flat: independent blocks, theta_s ~ N(mu_q, Sigma_q + Sigma_0)
                cov[i * d:(i + 1) * d, j * d:(j + 1) * d] = sq
        if i > 0:
            cov[i * d:(i + 1) * d, i * d:(i + 1) * d] += s0
    obs_matrix = np.zeros((len(ds), size))
    for t, (s, phi) in enumerate(zip(ds.tasks, ds.logged_features, strict=True)):
        obs_matrix[t, (s + 1) * d:(s + 2) * d] = phi
    noise = model.noise_std**2 * np.eye(len(ds))
    # first condition on mu (oracle) by Gaussian conditioning of the prior itself
    if hyper is not None:
        gain = cov[:, :d] @ np.linalg.inv(cov[:d, :d])
        mean = mean + gain @ (hyper - mean[:d])
        cov = cov - gain @ cov[:d, :]
    s = obs_matrix @ cov @ obs_matrix.T + noise
    gain = cov @ obs_matrix.T @ np.linalg.inv(s)
    post_mean = mean + gain @ (ds.rewards - obs_matrix @ mean)
    post_cov = cov - gain @ obs_matrix @ cov
    means = post_mean[d:].reshape(m, d)
    covs = np.stack([post_cov[(i + 1) * d:(i + 2) * d, (i + 1) * d:(i + 2) * d] for i in range(m)])
    return means, covs


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny batched linear algebra is ~1000x slower with 2 OpenMP threads on this 2-core machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def logged():
    env = gym.make("HierGaussian-v0", **KW)
    ds = offline.collect(env, 37, seed=11)
    return env, ds


@pytest.mark.parametrize("cls", [HierOPO, OracleOPO, FlatOPO])
def test_posterior_equals_dense_joint_conditioning(logged, cls):
    env, ds = logged
    model = env.unwrapped.model
    policy = cls.from_env(env).fit(ds)
    if cls is HierOPO:
        want_mean, want_cov = dense_posterior(ds, model)
    elif cls is OracleOPO:
        want_mean, want_cov = dense_posterior(ds, model, hyper=env.unwrapped.instance.hyper_param)
    else:
        want_mean, want_cov = dense_posterior(ds, model, flat=True)
    np.testing.assert_allclose(policy.posterior_mean[0].numpy(), want_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(policy.posterior_cov[0].numpy(), want_cov, rtol=1e-9, atol=1e-10)


def test_posterior_is_exact_when_sigma_squared_is_not_a_power_of_two():
    """sigma = 0.3: the logged-sample weights 1/sigma^2 must stay float64 (a float32 mask / noise_var
    would put the posterior off by ~1e-7)."""
    env = gym.make("HierGaussian-v0", **{**KW, "sigma": 0.3})
    ds = offline.collect(env, 37, seed=11)
    policy = HierOPO.from_env(env).fit(ds)
    want_mean, want_cov = dense_posterior(ds, env.unwrapped.model)
    np.testing.assert_allclose(policy.posterior_mean[0].numpy(), want_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(policy.posterior_cov[0].numpy(), want_cov, rtol=0, atol=1e-12)


def test_uncertainty_ordering_of_section_3_3(logged):
    """Oracle covariance <= HierOPO's; with many tasks the flat one is the widest (Sec. 3.3)."""
    env, ds = logged
    hier, oracle, flat = (cls.from_env(env).fit(ds) for cls in (HierOPO, OracleOPO, FlatOPO))
    gap = (hier.posterior_cov - oracle.posterior_cov)[0]
    assert torch.linalg.eigvalsh(gap).min() > -1e-12
    assert torch.all(flat.posterior_cov[0].diagonal(dim1=-2, dim2=-1).sum(-1)
                     >= hier.posterior_cov[0].diagonal(dim1=-2, dim2=-1).sum(-1) - 1e-12)


def test_act_is_the_lcb_argmax_and_policy_is_an_agent(logged):
    env, ds = logged
    policy = HierOPO.from_env(env, alpha=0.7).fit(ds)
    assert isinstance(policy, Agent) and policy.offline and AGENTS["HierOPO"] is HierOPO
    ctx = offline.evaluation_contexts(env, 20, seed=1)
    feats, tasks = ctx.observations["features"], ctx.tasks
    mean = policy.posterior_mean[0].numpy()[tasks]
    cov = policy.posterior_cov[0].numpy()[tasks]
    width = np.sqrt(np.einsum("nkd,nde,nke->nk", feats, cov, feats))
    lcb = np.einsum("nkd,nd->nk", feats, mean) - 0.7 * width
    np.testing.assert_array_equal(policy.act({"task": tasks, "features": feats}), lcb.argmax(1))
    # the online runner can play it: act on env observations, update is a no-op, reset keeps the fit
    obs, _ = env.reset(seed=ds.seed)
    before = policy.posterior_mean.clone()
    for _ in range(3):
        action = policy.act(obs)
        obs, reward, *_rest, info = env.step(action)
        policy.update(obs, action, info["rewards"])
    policy.reset(seed=0)
    np.testing.assert_array_equal(policy.posterior_mean.numpy(), before.numpy())


def test_alpha_zero_with_effectively_infinite_data_recovers_the_optimal_policy():
    """Noise sigma = 1e-4 and 150 samples per task: the posterior pins theta_s down."""
    kw = {**KW, "sigma": 1e-4}
    for cls in (HierOPO, FlatOPO, OracleOPO):
        score = offline.evaluate_learner(
            lambda env, ds, cls=cls: cls.from_env(env, alpha=0.0).fit(ds),
            "HierGaussian-v0", kw, num_samples=600, seed=5, num_contexts=300,
        )
        assert score.suboptimality < 1e-4, (cls.name, score.suboptimality)
        assert score.normalized_score > 0.999
    env = gym.make("HierGaussian-v0", **kw)
    ds = offline.collect(env, 600, seed=5)
    theta = env.unwrapped.instance.task_params
    policy = HierOPO.from_env(env, alpha=0.0).fit(ds)
    np.testing.assert_allclose(policy.posterior_mean[0].numpy(), theta, atol=1e-3)


def test_prior_policy_before_fit_and_oracle_reads_the_truth():
    env = gym.make("HierGaussian-v0", **KW)
    env.reset(seed=3)
    flat = FlatOPO.from_env(env)
    np.testing.assert_allclose(flat.posterior_mean[0].numpy(), np.zeros((4, 3)))
    oracle = OracleOPO.from_env(env)
    mu = env.unwrapped.instance.hyper_param
    np.testing.assert_allclose(oracle.posterior_mean[0].numpy(), np.tile(mu, (4, 1)))
    env.reset(seed=4)  # a new episode: an unfitted oracle re-reads mu* after reset
    oracle.reset()
    np.testing.assert_allclose(oracle.posterior_mean[0].numpy()[0], env.unwrapped.instance.hyper_param)


def test_batched_fit_equals_separate_fits():
    seeds = [0, 1, 2]
    datasets = [offline.collect("HierGaussian-v0", 25 + 5 * s, seed=s, env_kwargs=KW) for s in seeds]
    vec = gym.make_vec("HierGaussian-v0", num_envs=3, **KW)
    vec.reset(seed=0)  # slot i == single env reset with seed i: the datasets' instances
    for cls in (HierOPO, OracleOPO, FlatOPO):
        batched = cls.from_env(vec).fit(datasets)
        assert list(batched.num_samples) == [25, 30, 35]
        for b, ds in enumerate(datasets):
            single = cls.from_env(ds.make_env()).fit(ds)
            np.testing.assert_allclose(batched.posterior_mean[b].numpy(), single.posterior_mean[0].numpy(),
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(batched.posterior_cov[b].numpy(), single.posterior_cov[0].numpy(),
                                       rtol=1e-12, atol=1e-12)


def test_hierarchy_helps_at_small_n():
    """Paper ordering (Fig. 2, sq=1): OracleOPO <= HierOPO < FlatOPO, paired over 12 instances."""
    kw = {"num_tasks": 10, "num_actions": 5, "dim": 4, "sigma_q": 1.0, "sigma_0": 0.5,
          "action_set": "resampled"}
    subs = {cls.name: [] for cls in (HierOPO, OracleOPO, FlatOPO)}
    for seed in range(12):
        for cls in (HierOPO, OracleOPO, FlatOPO):
            score = offline.evaluate_learner(cls, "HierGaussian-v0", kw, num_samples=50, seed=seed,
                                             num_contexts=200)
            subs[cls.name].append(score.suboptimality)
    hier, oracle, flat = (np.mean(subs[k]) for k in ("HierOPO", "OracleOPO", "FlatOPO"))
    assert oracle < hier < flat and hier < 0.75 * flat


def test_k_armed_fast_path_equals_dense_and_mixed_effect_models_work():
    """HierGaussianMAB-v0 uses the diagonal posterior; MixedEffect-v0 has actions as units."""
    env = gym.make("HierGaussianMAB-v0", num_actions=4, num_tasks=3, horizon=10)
    ds = offline.collect(env, 60, seed=0)
    fast = HierOPO.from_env(env).fit(ds)
    assert type(fast.posterior).__name__ == "DiagonalHierarchicalGaussian"
    dense = HierOPO.from_env(env, hierarchy=replace(hierarchy_for(env.unwrapped.model), diagonal=False))
    dense.fit(ds)
    for a, b in zip(fast._moments(), dense._moments(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    ctx = offline.evaluation_contexts(env, 1, seed=0)  # K-armed: one context is exact
    np.testing.assert_array_equal(fast.act({"task": ctx.tasks, "features": ctx.observations["features"]}),
                                  dense.act({"task": ctx.tasks, "features": ctx.observations["features"]}))
    for cls in (HierOPO, OracleOPO, FlatOPO):
        score = offline.evaluate_learner(cls, "MixedEffect-v0", {"num_actions": 10, "horizon": 50},
                                         num_samples=300, seed=1, num_contexts=300)
        assert score.normalized_score > 0.5, (cls.name, score)


def test_bad_input_raises_clear_errors(logged):
    env, ds = logged
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        HierOPO.from_env(env, alpha=-1)
    with pytest.raises(ValueError, match="no Gaussian hierarchy is registered for object"):
        HierOPO(object())
    other = gym.make("HierGaussian-v0", **{**KW, "num_actions": 6})
    with pytest.raises(ValueError, match="num_actions: dataset 5 vs env 6"):
        HierOPO.from_env(other).fit(ds)
    with pytest.raises(ValueError, match="fit needs 2 LoggedDataset"):
        HierOPO.from_env(env, num_envs=2).fit(ds)
    wrong = gym.make("HierGaussian-v0", **KW)
    wrong.reset(seed=ds.seed + 1)
    with pytest.raises(ValueError, match="fingerprint"):
        OracleOPO.from_env(wrong).fit(ds)
    with pytest.raises(RuntimeError, match="from_env"):
        OracleOPO(env.unwrapped.model).fit(ds)
    policy = HierOPO.from_env(env).fit(ds)
    with pytest.raises(ValueError, match="needs per-action 'features'"):
        policy.act({"task": np.array([0])})
    with pytest.raises(ValueError, match=r"obs\['task'\] must be in \[0, 3\]"):
        policy.act({"task": np.array([4]), "features": np.zeros((1, 5, 3))})
    with pytest.raises(ValueError, match=r"shape \(B, L, K, d=3\)"):
        policy.act({"task": np.array([0]), "features": np.zeros((1, 5, 2))})
