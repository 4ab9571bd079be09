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


@pytest.mark.parametrize(
    "scenario, per_user",
    [("mixture", False), ("partial_linear", False), ("lmm", False), ("lmm_mixture", False),
     ("lmm", True), ("lmm_mixture", True)],
)
def test_mu_given_x_matches_conditional_prior(scenario, per_user):
    """Across many episodes, ``mu - E[mu | x]`` has mean 0 and covariance ``E[Cov(mu | x)]``, also
    within bins of x (the prior is context-dependent). With per-user theta the oracle's prior is
    this population marginal even given the instance."""
    extra = {"theta_per_user": True} if per_user else {}
    model, inst = _instances(scenario, 3000, num_batches=2, batch_size=5, **extra)
    x = inst.x_obs  # (E, n)
    weights, means, covs = conditional_prior(model, inst if per_user else None, x)
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


def test_theta_per_user_draws_one_theta_per_user():
    model, inst = _instances("lmm_mixture", 500, num_batches=2, batch_size=5, theta_per_user=True)
    assert inst.theta.shape == (500, 10, 2) and inst.components.shape == (500, 10)
    centre = np.where(inst.components == 1, 1.0, -1.0)[..., None]
    dev = (inst.theta - centre).reshape(-1, 2)
    np.testing.assert_allclose(np.cov(dev.T), 0.25 * np.eye(2), atol=0.02)
    assert abs(inst.components.mean() - 0.5) < 0.02
    assert (inst.components.std(axis=1) > 0).mean() > 0.9  # the mode varies across users
    delta = inst.mu - np.einsum("enkd,end->enk", feature_map(inst.x_obs), inst.theta)
    assert delta.std() < 0.06


def test_feature_map_is_the_lmm_design():
    phi = feature_map(np.array([0.5, -1.0]))
    np.testing.assert_allclose(phi[0], [[0.45, 1.0], [-0.55, 1.0], [0.1, 1.0]])
    assert phi.shape == (2, 3, 2)


# --------------------------------------------------------------------------- schedule and obs


@pytest.mark.parametrize("scenario", ["mixture", "lmm"])
def test_recruitment_schedule_and_observations(scenario):
    env = gym.make(ENV_ID, scenario=scenario, num_batches=3, batch_size=4, steps_per_user=2)
    model = env.unwrapped.model
    # horizon = interactions per user (steps_per_user); rounds = num_batches * steps_per_user
    assert (model.num_tasks, model.tasks_per_round, model.horizon, model.num_rounds) == (12, 4, 2, 6)
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
    assert (mix.num_tasks, mix.tasks_per_round, mix.num_rounds, mix.horizon) == (150, 5, 150, 5)
    assert (sizes["partial_linear"].num_tasks, sizes["partial_linear"].num_rounds) == (150, 150)
    assert (sizes["lmm"].num_tasks, sizes["lmm"].tasks_per_round, sizes["lmm"].num_rounds) == (50, 50, 5)
    assert (sizes["lmm_mixture"].num_tasks, sizes["lmm_mixture"].num_rounds) == (100, 100)
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
        ({"theta_per_user": True}, "theta_per_user"),
        ({"scenario": "lmm", "theta_per_user": 1}, "theta_per_user"),
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


# --------------------------------------------------------------------------- baselines

torch = pytest.importorskip("torch")
from hbgym.agents import AGENTS, MTTS, FlatTS, IndTS, OraclePriorTS  # noqa: E402
from hbgym.agents.posteriors.mixture import mixture_posterior  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402

from tests.conftest import requires_cuda  # noqa: E402


def _play(agent, env, seed: int, rounds: int):
    """Run ``rounds`` rounds of ``agent`` on ``env``; return the history [(obs, action, rewards)]."""
    obs, _ = env.reset(seed=seed)
    history = []
    for _ in range(rounds):
        action = agent.act(obs)
        next_obs, _, _, _, info = env.step(action)
        agent.update(obs, action, info["rewards"])
        history.append((obs, action, info["rewards"]))
        obs = next_obs
    return history


def _user_data(history, b: int, user: int):
    """Arms pulled and rewards of ``user`` in replicate ``b`` of a batched history."""
    arms, ys = [], []
    for obs, action, rewards in history:
        for slot in np.flatnonzero(obs["task"][b] == user):
            arms.append(action[b, slot])
            ys.append(rewards[b, slot])
    return np.array(arms, dtype=int), np.array(ys)


def _dense_mixture_posterior(w, m, c, arms, ys, noise_var):
    """Brute force: per component dense conditioning on y = X mu + eps, weights by evidence."""
    X = np.eye(3)[arms]
    log_w, means, covs = [], [], []
    for wc, mc, sc in zip(w, m, c, strict=True):
        sy = X @ sc @ X.T + noise_var * np.eye(len(ys))
        gain = sc @ X.T @ np.linalg.inv(sy)
        means.append(mc + gain @ (ys - X @ mc))
        covs.append(sc - gain @ X @ sc)
        log_w.append(np.log(wc) + (multivariate_normal(X @ mc, sy).logpdf(ys) if len(ys) else 0.0))
    log_w = np.array(log_w)
    weights = np.exp(log_w - log_w.max())
    return weights / weights.sum(), np.array(means), np.array(covs)


@pytest.mark.parametrize("scenario", ["mixture", "partial_linear", "lmm_mixture"])
def test_oracle_prior_posterior_equals_brute_force(scenario):
    env = gym.make_vec(ENV_ID, num_envs=2, scenario=scenario, num_batches=2, batch_size=3, steps_per_user=4)
    agent = OraclePriorTS.from_env(env, seed=0)
    history = _play(agent, env, seed=5, rounds=6)  # batch 0 finished, batch 1 half-way
    model, inst = env.unwrapped.model, env.unwrapped.instance
    ids = torch.arange(6).expand(2, 6)
    weights, means, covs, factors = (t.numpy() for t in agent.posterior(ids))
    np.testing.assert_allclose(factors @ np.swapaxes(factors, -1, -2), covs, atol=1e-12)
    prior = conditional_prior(model, inst, inst.x_obs)
    for b in range(2):
        for user in range(6):
            arms, ys = _user_data(history, b, user)
            assert len(ys) == (4 if user < 3 else 2)
            w, m, c = _dense_mixture_posterior(*(p[b, user] for p in prior), arms, ys, model.sigma**2)
            np.testing.assert_allclose(weights[b, user], w, atol=1e-9)
            np.testing.assert_allclose(means[b, user], m, atol=1e-9)
            np.testing.assert_allclose(covs[b, user], c, atol=1e-12)


def test_mixture_posterior_with_singular_prior_and_no_data():
    """No data -> the prior itself; a rank-one component stays rank one after conditioning."""
    u = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    covs = torch.stack([torch.outer(u, u), 0.3 * torch.eye(3, dtype=torch.float64)])
    means = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    weights = torch.tensor([0.3, 0.7], dtype=torch.float64)
    zero = torch.zeros(3, 3, dtype=torch.float64)
    w, m, c, _ = mixture_posterior(weights, means, covs, zero, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(w, weights)
    torch.testing.assert_close(m, means)
    torch.testing.assert_close(c, covs)
    gram = torch.diag(torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64))
    _, _, c, _ = mixture_posterior(weights, means, covs, gram, torch.ones(3, dtype=torch.float64))
    assert torch.linalg.matrix_rank(c[0], atol=1e-10) == 1


def _dense_lmm_posterior(model, x_obs, history, b, users):
    """Joint Gaussian of (theta, mu_users) conditioned on every observed reward (dense)."""
    prior = model.mtts_prior
    phi = feature_map(x_obs[users])  # (n, K, 2)
    n, K = len(users), 3
    lift = np.concatenate([np.eye(2), phi.reshape(-1, 2)], axis=0)  # (2 + nK, 2)
    mean = lift @ prior.mu_theta
    cov = lift @ prior.Sigma_theta @ lift.T
    cov[2:, 2:] += np.kron(np.eye(n), prior.Sigma_delta)
    rows, ys = [], []
    for j, user in enumerate(users):
        arms, y = _user_data(history, b, user)
        for arm, value in zip(arms, y, strict=True):
            h = np.zeros(2 + n * K)
            h[2 + j * K + arm] = 1.0
            rows.append(h)
            ys.append(value)
    H, ys = np.array(rows), np.array(ys)
    gain = cov @ H.T @ np.linalg.inv(H @ cov @ H.T + model.sigma**2 * np.eye(len(ys)))
    return mean + gain @ (ys - H @ mean), cov - gain @ H @ cov


@pytest.mark.parametrize("scenario", ["lmm", "mixture"])
def test_mtts_posterior_equals_dense_joint_gaussian(scenario):
    env = gym.make_vec(ENV_ID, num_envs=2, scenario=scenario, num_batches=3, batch_size=3, steps_per_user=3)
    agent = MTTS.from_env(env, seed=0)
    history = _play(agent, env, seed=9, rounds=7)  # users 0..8 seen, the last batch once
    model, inst = env.unwrapped.model, env.unwrapped.instance
    users = np.arange(9)
    hyper_mean, hyper_cov = (t.numpy() for t in agent.posterior.hyper_posterior())
    marginal = agent.posterior.marginal_posterior(torch.arange(9).expand(2, 9))
    unit_mean, unit_cov = (t.numpy() for t in marginal)
    for b in range(2):
        mean, cov = _dense_lmm_posterior(model, inst.x_obs[b], history, b, users)
        np.testing.assert_allclose(hyper_mean[b], mean[:2], atol=1e-9)
        np.testing.assert_allclose(hyper_cov[b], cov[:2, :2], atol=1e-11)
        for j in users:
            sl = slice(2 + 3 * j, 5 + 3 * j)
            np.testing.assert_allclose(unit_mean[b, j], mean[sl], atol=1e-9)
            np.testing.assert_allclose(unit_cov[b, j], cov[sl, sl], atol=1e-11)


@pytest.mark.parametrize("cls", [IndTS, MTTS, OraclePriorTS])
def test_batched_equals_loop(cls):
    """B replicates in one agent == B single agents fed the same (obs, action, reward) streams."""
    kwargs = {"scenario": "lmm_mixture", "num_batches": 2, "batch_size": 3, "steps_per_user": 3}
    vec = gym.make_vec(ENV_ID, num_envs=3, **kwargs)
    batched = cls.from_env(vec, seed=1)
    history = _play(batched, vec, seed=40, rounds=5)
    for b in range(3):
        env = gym.make(ENV_ID, **kwargs)
        env.reset(seed=40 + b)
        single = cls.from_env(env, seed=1)
        for obs, action, rewards in history:
            single.update({k: v[b] for k, v in obs.items()}, action[b], rewards[b])
        ids = torch.arange(6)[None]
        if cls is OraclePriorTS:
            single.act({k: v[b] for k, v in history[0][0].items()})  # loads the instance's prior
            got, want = single.posterior(ids), batched.posterior(ids.expand(3, 6))
        elif cls is IndTS:  # independent users: the conditional given the fixed prior mean
            got = single.posterior.conditional(ids, single._origin)
            want = batched.posterior.conditional(ids.expand(3, 6), batched._origin)
        else:
            got = single.posterior.marginal_posterior(ids)
            want = batched.posterior.marginal_posterior(ids.expand(3, 6))
        for x, y in zip(got, want, strict=True):
            torch.testing.assert_close(x[0], y[b])


def _regret(cls, scenario: str, seed: int, **kwargs) -> float:
    env = gym.make_vec(ENV_ID, num_envs=4, scenario=scenario, **kwargs)
    agent = cls.from_env(env, seed=seed)
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(env.unwrapped.model.num_rounds):
        action = agent.act(obs)
        next_obs, _, _, _, info = env.step(action)
        agent.update(obs, action, info["rewards"])
        total += info["regret"].sum()
        obs = next_obs
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_orderings_at_small_size(seed):
    small = {"num_batches": 8}
    assert _regret(OraclePriorTS, "mixture", seed, **small) < _regret(IndTS, "mixture", seed, **small)
    assert _regret(MTTS, "lmm", seed, batch_size=20) < _regret(IndTS, "lmm", seed, batch_size=20)
    # Fig. 2(d): with a bimodal population of thetas MTTS's single Gaussian theta does worse than Ind-TS
    bimodal = {"theta_per_user": True, "num_batches": 10}
    assert _regret(IndTS, "lmm_mixture", seed, **bimodal) < _regret(MTTS, "lmm_mixture", seed, **bimodal)


def test_registered_names_and_bad_inputs():
    assert AGENTS["MTTS"] is MTTS and AGENTS["Ind-TS"] is IndTS and AGENTS["OraclePrior-TS"] is OraclePriorTS
    assert OraclePriorTS.oracle and not MTTS.oracle and not IndTS.oracle
    other = gym.make("HierGaussian-v0")
    for cls in (IndTS, MTTS, OraclePriorTS):
        with pytest.raises(ValueError, match="PartialContext"):
            cls.from_env(other)
    env = gym.make(ENV_ID)
    with pytest.raises(ValueError, match="prior_std"):
        IndTS.from_env(env, prior_std=0.0)
    with pytest.raises(ValueError, match="revealed online"):
        FlatTS.from_env(env)
    agent = OraclePriorTS.from_env(env, num_envs=2)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="num_envs"):
        agent.act({k: np.stack([v, v]) for k, v in obs.items()})


def _posteriors_after(scenario: str, device: str, dtype: str):
    """OraclePrior-TS and MTTS posteriors after the same 6 rounds (fixed uniform actions)."""
    env = gym.make_vec(ENV_ID, num_envs=2, scenario=scenario, num_batches=2, batch_size=3, steps_per_user=4)
    oracle = OraclePriorTS.from_env(env, seed=0, device=device, dtype=dtype)
    mtts = MTTS.from_env(env, seed=0, device=device, dtype=dtype)
    obs, _ = env.reset(seed=3)
    actions = np.random.default_rng(0).integers(3, size=(6, 2, 3))
    for t in range(6):
        oracle.act(obs)
        mtts.act(obs)
        next_obs, _, _, _, info = env.step(actions[t])
        for agent in (oracle, mtts):
            agent.update(obs, actions[t], info["rewards"])
        obs = next_obs
    ids = torch.arange(6, device=device).expand(2, 6)
    out = [*oracle.posterior(ids)[:3], *mtts.posterior.marginal_posterior(ids)]
    return [t.double().cpu() for t in out]


@pytest.mark.parametrize("scenario", ["partial_linear", "lmm"])
def test_float32_close_to_float64(scenario):
    single, double = (_posteriors_after(scenario, "cpu", dtype) for dtype in ("float32", "float64"))
    for x, y in zip(single, double, strict=True):
        torch.testing.assert_close(x, y, atol=2e-3, rtol=2e-3)


@requires_cuda
def test_cuda_matches_cpu():
    gpu, cpu = (_posteriors_after("mixture", device, "float64") for device in ("cuda", "cpu"))
    for x, y in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(x, y)
