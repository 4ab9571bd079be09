"""A straightforward per-round NumPy meTS, written the way research code usually is: every round it
recomputes the effect posterior and every action posterior from the sufficient statistics with
Python loops over the K actions and explicit inverses. It is the speed baseline of
``benchmarks/mets_reproduction.py`` (never used by the library) and a cross-check of our posterior:
with the same statistics it gives the same effect posterior.
"""

from __future__ import annotations

import numpy as np


def mets_effect_posterior(hyper_mean, hyper_cov, unit_cov, mixing_weights, gram, moment):
    """Effect posterior of the meTS poster, recomputed with a loop over actions (explicit inverses).

    ``gram`` ``(K, d, d)`` and ``moment`` ``(K, d)`` per action; returns mean ``(L d,)`` and
    covariance ``(L d, L d)``.
    """
    d = unit_cov.shape[0]
    precision = np.linalg.inv(hyper_cov)
    eta = precision @ hyper_mean
    for i in range(len(gram)):
        a = np.kron(mixing_weights[i][None, :], np.eye(d))  # (d, L d)
        if np.linalg.matrix_rank(gram[i]) < d:
            inner = np.linalg.inv(unit_cov @ gram[i] + np.eye(d))  # (S0 + G^-1)^-1 G^-1 form
            precision += a.T @ inner @ gram[i] @ a
            eta += a.T @ inner @ moment[i]
        else:
            g_inv = np.linalg.inv(gram[i])
            inner = np.linalg.inv(unit_cov + g_inv)
            precision += a.T @ inner @ a
            eta += a.T @ inner @ g_inv @ moment[i]
    cov = np.linalg.inv(precision)
    return cov @ eta, cov


def run_mets_reference(env, rounds: int, seed: int = 0) -> float:
    """Play ``rounds`` rounds of meTS on a single MixedEffect env; returns the cumulative regret."""
    model = env.unwrapped.model
    rng = np.random.default_rng(seed)
    K, d, L = model.num_actions, model.dim, model.num_effects
    hyper_mean = model.effect_mean.reshape(-1)
    hyper_cov = np.kron(np.eye(L), model.effect_cov[0])
    gram, moment = np.zeros((K, d, d)), np.zeros((K, d))
    noise = model.noise_std**2
    obs, _ = env.reset(seed=seed)
    weights = obs["mixing"][0]  # (K, L): the episode's public mixing weights
    regret = 0.0
    for _ in range(rounds):
        mean, cov = mets_effect_posterior(hyper_mean, hyper_cov, model.action_cov, weights, gram, moment)
        psi = rng.multivariate_normal(mean, cov)
        scores = np.empty(K)
        for i in range(K):
            prior_mean = np.kron(weights[i][None, :], np.eye(d)) @ psi
            post_cov = np.linalg.inv(np.linalg.inv(model.action_cov) + gram[i])
            post_mean = post_cov @ (np.linalg.inv(model.action_cov) @ prior_mean + moment[i])
            theta = rng.multivariate_normal(post_mean, post_cov)
            scores[i] = obs["features"][0, i] @ theta
        action = int(np.argmax(scores))
        x = obs["features"][0, action]
        obs, _, _, _, info = env.step(np.array([action]))
        gram[action] += np.outer(x, x) / noise
        moment[action] += x * info["rewards"][0] / noise
        regret += float(info["regret"][0])
    return regret
