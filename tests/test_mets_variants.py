"""meTS variants as the authors built them, each against a dense / independent NumPy computation.

* meTS: the joint effect posterior (poster, "Closed-form posteriors") = dense joint conditioning;
* meTS-Fa (authors): block l ~ N(Lambda_l^{-1} eta_l, Lambda_l^{-1}), Lambda_l = S_l^{-1} + sum_i b_il^2 P_i,
  eta_l = sum_i b_il P_i G_i^{-1} B_i with P_i = (S_0 + G_i^{-1})^{-1} written with explicit inverses;
* meTS-Fa (mean="joint"): same blocks, centred at the dense joint mean;
* HierTS (collapsed="paper"): psi ~ N(0, I) (= (1/L^2) sum_l 3 I), theta_i | psi ~ N(psi, I), dense.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hbgym.agents import HierTS, MeTS, MeTSFactored

import hbgym  # noqa: F401

K, L_E, D, N = 5, 3, 2, 120


def rollout(agent_cls, **agent_kwargs):
    """Run one agent on a small per-episode-weights MixedEffect env; return (agent, weights, data)."""
    env = gym.make_vec("MixedEffect-v0", num_envs=1, num_actions=K, horizon=N)
    agent = agent_cls.from_env(env, seed=0, **agent_kwargs)
    obs, _ = env.reset(seed=11)
    agent.reset(seed=0)
    weights = obs["mixing"][0, 0].copy()  # (K, L_e)
    data = []
    for _ in range(N):
        action = agent.act(obs)
        next_obs, _, _, _, info = env.step(action)
        agent.update(obs, action, info["rewards"])
        a = int(action[0, 0])
        data.append((a, obs["features"][0, 0, a].copy(), float(info["rewards"][0, 0])))
        obs = next_obs
    return agent, weights, data


def dense_effect_posterior(mixing: np.ndarray, hyper_cov: np.ndarray, unit_cov: np.ndarray, data):
    """Posterior of psi by conditioning the joint Gaussian of (psi, theta_1..K, y_1..n) (sigma = 1).

    ``mixing`` ``(K, d, P)``; returns mean ``(P,)`` and covariance ``(P, P)``.
    """
    P = mixing.shape[-1]
    a_all = mixing.reshape(K * D, P)  # theta = A psi + e, e ~ N(0, I_K (x) S0)
    cov_theta = a_all @ hyper_cov @ a_all.T + np.kron(np.eye(K), unit_cov)
    cov_psi_theta = hyper_cov @ a_all.T
    x = np.zeros((len(data), K * D))
    for t, (a, feat, _) in enumerate(data):
        x[t, a * D : (a + 1) * D] = feat
    y = np.array([r for _, _, r in data])
    cov_y = x @ cov_theta @ x.T + np.eye(len(data))
    cross = cov_psi_theta @ x.T
    mean = cross @ np.linalg.solve(cov_y, y)
    cov = hyper_cov - cross @ np.linalg.solve(cov_y, cross.T)
    return mean, cov


def kron_mixing(weights: np.ndarray) -> np.ndarray:
    return np.einsum("kl,ij->kilj", weights, np.eye(D)).reshape(K, D, L_E * D)


def test_mets_joint_effect_posterior_is_dense_conditioning():
    agent, weights, data = rollout(MeTS)
    mean, cov = dense_effect_posterior(kron_mixing(weights), 3 * np.eye(L_E * D), np.eye(D), data)
    got_mean, got_cov = agent.posterior.hyper_posterior()
    np.testing.assert_allclose(got_mean[0].numpy(), mean, atol=1e-10)
    np.testing.assert_allclose(got_cov[0].numpy(), cov, atol=1e-10)


def test_mets_fa_authors_blocks_match_their_formula():
    agent, weights, data = rollout(MeTSFactored)
    gram, moment = np.zeros((K, D, D)), np.zeros((K, D))
    for a, feat, r in data:
        gram[a] += np.outer(feat, feat)
        moment[a] += r * feat
    assert all(np.linalg.matrix_rank(g) == D for g in gram)  # every G_i invertible (explicit inverses below)
    precision = np.repeat(np.eye(D)[None] / 3.0, L_E, 0)
    eta = np.zeros((L_E, D))
    for i in range(K):
        p_i = np.linalg.inv(np.eye(D) + np.linalg.inv(gram[i]))  # (S0 + G^-1)^-1, S0 = I
        centre = p_i @ np.linalg.inv(gram[i]) @ moment[i]
        for l in range(L_E):
            precision[l] += weights[i, l] ** 2 * p_i
            eta[l] += weights[i, l] * centre
    mean, factor = agent.effect_blocks()
    got_precision = (factor @ factor.transpose(-1, -2))[0].numpy()
    np.testing.assert_allclose(got_precision, precision, atol=1e-9)
    expected_mean = np.stack([np.linalg.solve(precision[l], eta[l]) for l in range(L_E)])
    np.testing.assert_allclose(mean[0].numpy(), expected_mean, atol=1e-9)
    # and it is not the joint mean (the cross-effect terms matter on this data)
    joint, _ = dense_effect_posterior(kron_mixing(weights), 3 * np.eye(L_E * D), np.eye(D), data)
    assert np.abs(mean[0].numpy().reshape(-1) - joint).max() > 1e-3


def test_mets_fa_joint_option_centres_blocks_at_the_dense_mean():
    agent, weights, data = rollout(MeTSFactored, mean="joint")
    joint, cov = dense_effect_posterior(kron_mixing(weights), 3 * np.eye(L_E * D), np.eye(D), data)
    mean, factor = agent.effect_blocks()
    np.testing.assert_allclose(mean[0].numpy().reshape(-1), joint, atol=1e-10)
    dense_precision = np.linalg.inv(cov)
    for l in range(L_E):
        block = dense_precision[l * D : (l + 1) * D, l * D : (l + 1) * D]
        np.testing.assert_allclose((factor[0, l] @ factor[0, l].T).numpy(), block, atol=1e-8)


def test_hierts_paper_baseline_is_the_authors_single_effect_model():
    agent, _, data = rollout(HierTS)
    np.testing.assert_allclose(agent.hierarchy.hyper_cov, np.eye(D))  # (1/L^2) sum_l 3 I
    assert agent.hierarchy.mixing is None
    mixing = np.repeat(np.eye(D)[None], K, 0)
    mean, cov = dense_effect_posterior(mixing, np.eye(D), np.eye(D), data)
    got_mean, got_cov = agent.posterior.hyper_posterior()
    np.testing.assert_allclose(got_mean[0].numpy(), mean, atol=1e-10)
    np.testing.assert_allclose(got_cov[0].numpy(), cov, atol=1e-10)


def test_hierts_weighted_option_needs_fixed_weights_and_unknown_options_raise():
    env = gym.make("MixedEffect-v0", num_actions=K)
    with pytest.raises(ValueError, match="collapsed"):
        HierTS.from_env(env, collapsed="weighted")
    with pytest.raises(ValueError, match="collapsed"):
        HierTS.from_env(env, collapsed="mean")
    with pytest.raises(ValueError, match="mean"):
        MeTSFactored.from_env(env, mean="median")
    fixed = gym.make("MixedEffect-v0", num_actions=K, mixing="simplex", mixing_seed=0)
    weights = fixed.unwrapped.model.mixing_weights
    agent = HierTS.from_env(fixed, collapsed="weighted")
    np.testing.assert_allclose(agent.hierarchy.hyper_cov, 3 * (weights**2).sum() / K * np.eye(D))


def test_flat_ts_prior_is_each_actions_marginal_under_the_episodes_weights():
    from hbgym.agents import FlatTS

    agent, weights, _ = rollout(FlatTS)
    for i in range(K):
        b = weights[i]
        expected = np.eye(D) + 3.0 * (b @ b) * np.eye(D)  # S0 + A_i S_psi A_i^T, A_i = b_i^T (x) I
        np.testing.assert_allclose(agent.posterior.unit_cov[0, i].numpy(), expected, atol=1e-12)


def test_mixing_matrices_are_built_once_per_episode_and_again_when_the_weights_change():
    """meTS reads A_i from the observation's per-episode weights: built at the first act of an episode
    (not every round), rebuilt when a new episode reveals new weights, and never stale when the env
    overwrites its observation arrays in place."""
    env = gym.make_vec("MixedEffect-v0", num_envs=2, num_actions=K, horizon=N)
    agent = MeTS.from_env(env, seed=0)
    built = []
    set_mixing = agent.posterior.set_mixing
    agent.posterior.set_mixing = lambda ids, mixing: (built.append(mixing.clone()), set_mixing(ids, mixing))
    obs, _ = env.reset(seed=4)
    agent.reset(seed=0)
    for _ in range(5):
        action = agent.act(obs)
        next_obs, _, _, _, info = env.step(action)
        agent.update(obs, action, info["rewards"])
        obs = next_obs
    assert len(built) == 1
    np.testing.assert_array_equal(built[0][0, :, 0, :L_E * D:D].numpy(), obs["mixing"][0, 0])
    obs["mixing"][:] *= -1.0  # the same array, new content: A_i is rebuilt
    agent.act(obs)
    assert len(built) == 2
    np.testing.assert_array_equal(built[1][1, :, 1, 1::D].numpy(), obs["mixing"][1, 0])
    obs, _ = env.reset(seed=5)  # a new episode draws new weights
    agent.reset()
    agent.act(obs)
    assert len(built) == 3
    np.testing.assert_array_equal(built[2][0, :, 0, ::D].numpy(), obs["mixing"][0, 0])
