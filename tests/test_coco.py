"""CoCo bandits: Kronecker KL expansion, cell-integrated likelihood, tempered SMC, NPM-TS, GIDS."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hbgym.agents.coco import GIDS, NPMTS
from hbgym.agents.posteriors.gp_density import KroneckerKL
from hbgym.agents.posteriors.smc import (
    GPDensitySMC,
    arm_log_likelihood,
    effective_sample_size,
    grid_log_likelihood,
    log_evidence,
    systematic_resample,
)
from hbgym.agents.random import ReplicateStreams

from tests.conftest import requires_cuda

SIGMA = 0.1


def small_kl(num_components: int = 20, **kw) -> KroneckerKL:
    args = {"num_actions": 2, "mu_grid_size": 6, "context_grid_size": 3, "lengthscale": 0.7}
    args.update(kw)
    return KroneckerKL(num_components=num_components, **args)


# --------------------------------------------------------------------------- KL expansion


def test_kronecker_eigenpairs_equal_dense_eigendecomposition():
    kl = KroneckerKL(num_actions=2, mu_grid_size=5, context_grid_size=4, num_components=100)
    dense = kl.dense_kernel()
    assert dense.shape == (100, 100)
    ref = torch.linalg.eigvalsh(dense).flip(0)
    torch.testing.assert_close(kl.eigenvalues, ref, atol=1e-10, rtol=1e-10)
    basis = kl.dense_basis()  # (M, grid)
    torch.testing.assert_close(basis @ basis.T, torch.eye(100, dtype=basis.dtype), atol=1e-10, rtol=0)
    # each Kronecker vector is an eigenvector of the dense kernel with its product eigenvalue
    torch.testing.assert_close(basis @ dense, kl.eigenvalues[:, None] * basis, atol=1e-9, rtol=0)


def test_truncated_covariance_converges_to_kernel():
    kl_full = KroneckerKL(num_actions=2, mu_grid_size=5, context_grid_size=4, num_components=100)
    dense = kl_full.dense_kernel()
    errors = []
    for m in (5, 10, 20, 40, 100):
        kl = KroneckerKL(num_actions=2, mu_grid_size=5, context_grid_size=4, num_components=m)
        basis = kl.dense_basis()
        cov = basis.T @ (kl.eigenvalues[:, None] * basis)
        err = torch.linalg.matrix_norm(cov - dense)
        # Frobenius error of the truncation = norm of the dropped eigenvalues
        torch.testing.assert_close(err, kl_full.eigenvalues[m:].norm(), atol=1e-8, rtol=1e-6)
        errors.append(float(err))
    assert all(a >= b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-8 and errors[0] > 1.0


@pytest.mark.parametrize("num_actions", [1, 2, 3])
def test_factored_log_density_equals_dense_basis(num_actions):
    m = min(30, 4**num_actions * 3)
    kl = KroneckerKL(num_actions=num_actions, mu_grid_size=4, context_grid_size=3, num_components=m)
    theta = torch.randn(2, 5, m, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dense = (theta * kl.eigenvalues.sqrt()) @ kl.dense_basis()  # (2, 5, G^K * C), x fastest
    f = kl.log_density(theta)  # (2, 5, C, G^K)
    torch.testing.assert_close(f, dense.reshape(2, 5, kl.num_grid, 3).transpose(-1, -2))
    # the paper's grid (20 per arm, 10 contexts, M = 80) without any dense 80,000 x 80,000 matrix
    big = KroneckerKL()
    assert big.num_grid == 8000 and big.num_slices == 10 and big.eigenvalues.shape == (80,)
    assert big.log_density(torch.zeros(1, 80, dtype=torch.float64)).shape == (1, 10, 8000)


def test_context_interpolation_of_the_conditional():
    kl = small_kl()
    x = torch.tensor([-1.0, -0.25, 0.0, 0.6, 1.0, 2.0], dtype=torch.float64)
    w = kl.context_weights(x)
    torch.testing.assert_close(w.sum(-1), torch.ones(6, dtype=torch.float64))
    assert (w > 0).sum(-1).le(2).all()
    torch.testing.assert_close(w @ kl.context_grid, x.clamp(-1, 1))  # linear interpolation
    theta = torch.randn(6, kl.num_components, dtype=torch.float64)
    p = kl.conditional_probs(theta, x)
    torch.testing.assert_close(p.sum(-1), torch.ones(6, dtype=torch.float64))
    slices = torch.softmax(kl.log_density(theta), -1)
    torch.testing.assert_close(p[0], slices[0, 0])  # x on a grid point = that slice


def test_bad_kl_arguments_raise():
    with pytest.raises(ValueError, match="num_components"):
        KroneckerKL(num_actions=2, mu_grid_size=3, context_grid_size=2, num_components=19)
    with pytest.raises(ValueError, match="lengthscale"):
        KroneckerKL(lengthscale=0.0)
    with pytest.raises(ValueError, match="mu_range"):
        KroneckerKL(mu_range=(1.0, -1.0))


# --------------------------------------------------------------------------- likelihood / evidence


def test_cell_integrated_likelihood_matches_quadrature():
    mu_grid = torch.linspace(-2, 2, 20, dtype=torch.float64)
    h = float(mu_grid[1] - mu_grid[0])
    rewards = [torch.tensor([0.33, 0.41, 0.29]), torch.tensor([1.95]), torch.tensor([2.6, 2.7])]
    for r in rewards:
        r = r.double()
        n = torch.tensor([float(len(r))])
        got = arm_log_likelihood(n, r.sum()[None], (r * r).sum()[None], mu_grid, SIGMA)
        for g in (0, 5, 11, 19):
            lo = -8.0 if g == 0 else float(mu_grid[g]) - h / 2
            hi = 8.0 if g == 19 else float(mu_grid[g]) + h / 2
            mu = torch.linspace(lo, hi, 200001, dtype=torch.float64)
            lik = torch.exp(-((r[:, None] - mu) ** 2).sum(0) / (2 * SIGMA**2))
            lik = lik / (2 * math.pi * SIGMA**2) ** (len(r) / 2)
            ref = torch.trapezoid(lik, mu) / h
            if ref > 1e-200:
                assert float(got[0, g]) == pytest.approx(math.log(float(ref)), rel=1e-6, abs=1e-6)
    zero = arm_log_likelihood(torch.zeros(2), torch.zeros(2), torch.zeros(2), mu_grid, SIGMA)
    assert torch.equal(zero, torch.zeros(2, 20, dtype=torch.float64))


def test_log_evidence_matches_brute_force_sum():
    kl = small_kl()
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(1, 4, kl.num_components, dtype=torch.float64, generator=gen)
    count = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)
    total = torch.tensor([[[0.6, 0.0], [-1.0, 0.5], [0.0, 0.0]]], dtype=torch.float64)
    total_sq = torch.tensor([[[0.185, 0.0], [1.0, 0.25], [0.0, 0.0]]], dtype=torch.float64)
    x = torch.tensor([[-0.3, 0.9, 0.1]], dtype=torch.float64)
    loglik = grid_log_likelihood(arm_log_likelihood(count, total, total_sq, kl.mu_grid, SIGMA))  # (1, 3, 36)
    scale = loglik.amax(-1)
    probs = torch.softmax(kl.log_density(theta), -1)
    got = log_evidence(probs, torch.exp(loglik - scale[..., None]), scale, kl.context_weights(x))
    for n in range(4):
        for u in range(3):
            pi = kl.conditional_probs(theta[0, n], x[0, u])
            ref = torch.logsumexp(torch.log(pi) + loglik[0, u], -1)
            torch.testing.assert_close(got[0, n, u], ref)
    assert torch.allclose(got[0, :, 2], torch.zeros(4, dtype=torch.float64), atol=1e-12)  # no data


# --------------------------------------------------------------------------- SMC machinery


def test_systematic_resampling_is_unbiased_and_ess_in_range():
    gen = torch.Generator().manual_seed(0)
    logw = torch.randn(1, 50, dtype=torch.float64, generator=gen) * 2
    values = torch.randn(50, dtype=torch.float64, generator=gen)
    w = torch.softmax(logw, -1)
    ess = effective_sample_size(logw)
    assert 1.0 <= float(ess) <= 50.0
    reps = 20000
    streams = ReplicateStreams(reps)
    streams.seed(0)
    idx = systematic_resample(logw.expand(reps, -1), streams)
    means = values[idx].mean(-1)
    se = means.std() / math.sqrt(reps)
    assert abs(float(means.mean() - w[0] @ values)) < 4 * float(se) + 1e-12
    # each particle is copied floor(N w) or ceil(N w) times
    ones = torch.ones_like(idx, dtype=torch.float64)
    counts = torch.zeros(reps, 50, dtype=torch.float64).scatter_add_(1, idx, ones)
    assert (counts >= torch.floor(50 * w) - 1e-9).all() and (counts <= torch.ceil(50 * w) + 1e-9).all()


def _tiny_smc(num_particles: int, seed: int, num_envs: int = 1, **kw) -> GPDensitySMC:
    kl = small_kl(num_components=3, mu_grid_size=8, context_grid_size=3, lengthscale=1.0)
    streams = ReplicateStreams(num_envs)
    streams.seed(seed)
    return GPDensitySMC(kl, num_envs=num_envs, num_tasks=6, sigma=SIGMA, num_particles=num_particles,
                        streams=streams, **kw)


ROUNDS = [  # (users, x_obs, actions, rewards) per round, one replicate
    ([0, 1], [-0.8, 0.7], [0, 1], [1.1, 0.9]),
    ([0, 1], [-0.8, 0.7], [1, 1], [-0.6, 1.0]),
    ([2, 3], [-0.5, 0.2], [0, 0], [0.8, -0.2]),
]


def _feed(smc: GPDensitySMC, rounds=ROUNDS) -> None:
    B = smc.num_envs
    for users, x, a, r in rounds:
        smc.observe(torch.tensor([users] * B), torch.tensor([x] * B, dtype=torch.float64),
                    torch.tensor([a] * B), torch.tensor([r] * B, dtype=torch.float64))


def _reference_posterior_mean(smc: GPDensitySMC, samples: int = 200_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance sampling from the prior with the exact grid likelihood (brute force)."""
    gen = torch.Generator().manual_seed(123)
    theta = torch.randn(1, samples, smc.kl.num_components, dtype=torch.float64, generator=gen)
    users = torch.arange(4)[None]
    loglik = smc.user_log_likelihood(users)
    scale = loglik.amax(-1)
    probs = torch.softmax(smc.kl.log_density(theta), -1)
    ll = log_evidence(probs, torch.exp(loglik - scale[..., None]), scale,
                      smc.kl.context_weights(smc.context.gather(1, users)))
    w = torch.softmax(ll.sum(-1), -1)[0]
    mean = w @ theta[0]
    sd = (w @ (theta[0] - mean) ** 2).sqrt()
    return mean, sd


def test_smc_posterior_mean_matches_importance_sampling():
    smc = _tiny_smc(3000, seed=0, num_mh_steps=3, step_size=0.3, ess_threshold=0.95)
    _feed(smc)
    w = smc.weights
    torch.testing.assert_close(w.sum(-1), torch.ones(1, dtype=torch.float64))
    assert 1.0 <= float(smc.ess()) <= smc.num_particles
    assert smc.stats["resampled"] >= 1 and smc.stats["accepted"] > 0  # the test exercises the moves
    mean = (w[0, :, None] * smc.theta[0]).sum(0)
    ref_mean, ref_sd = _reference_posterior_mean(smc)
    # Monte Carlo error of N = 3000 particles after a few tempered stages: well under 0.15 sd
    assert ((mean - ref_mean).abs() / ref_sd).max() < 0.15, (mean, ref_mean, ref_sd)


def test_langevin_mh_leaves_tempered_target_invariant():
    smc = _tiny_smc(4000, seed=1, step_size=0.3)
    _feed(smc)
    users = torch.tensor([[0, 1]])
    new = smc.user_log_likelihood(users)
    old = torch.zeros_like(new)
    data = smc._round_data(users, old, new)
    beta = torch.tensor([0.5], dtype=torch.float64)
    # exact draws from pi_beta by sampling-importance-resampling from a large prior sample
    gen = torch.Generator().manual_seed(7)
    prior = torch.randn(1, 100_000, smc.kl.num_components, dtype=torch.float64, generator=gen)
    lp, _, _ = smc.log_target(prior, beta, data, grad=False)
    logw = lp + 0.5 * (prior * prior).sum(-1)
    idx = torch.multinomial(torch.softmax(logw, -1), 4000, replacement=True, generator=gen)
    start = prior[0, idx[0]][None]
    moved, _ = smc._rejuvenate(start, beta, data)
    for _ in range(4):
        moved, _ = smc._rejuvenate(moved, beta, data)
    assert smc.stats["accepted"] / smc.stats["proposals"] > 0.3
    ref_w = torch.softmax(logw, -1)[0]
    ref_mean = ref_w @ prior[0]
    ref_sd = (ref_w @ (prior[0] - ref_mean) ** 2).sqrt()
    tol = 5 * ref_sd / math.sqrt(4000) + 0.03 * ref_sd
    assert ((moved[0].mean(0) - ref_mean).abs() < tol).all()
    assert ((moved[0].std(0) / ref_sd - 1).abs() < 0.1).all()


def test_batched_smc_equals_per_replicate():
    # no resampling (tau tiny) -> weights are deterministic given the particles
    single = [_tiny_smc(64, seed=s, ess_threshold=1e-9) for s in (0, 1)]
    batched = _tiny_smc(64, seed=9, num_envs=2, ess_threshold=1e-9)
    batched.theta = torch.cat([s.theta for s in single])
    batched._fill_probs()
    rounds_b = [[[0, 1], [2, 3]], [[-0.8, 0.7], [-0.1, 0.3]], [[0, 1], [1, 0]], [[1.1, 0.9], [0.2, -1.3]]]
    for b, s in enumerate(single):
        s.observe(torch.tensor([rounds_b[0][b]]), torch.tensor([rounds_b[1][b]], dtype=torch.float64),
                  torch.tensor([rounds_b[2][b]]), torch.tensor([rounds_b[3][b]], dtype=torch.float64))
    batched.observe(torch.tensor(rounds_b[0]), torch.tensor(rounds_b[1], dtype=torch.float64),
                    torch.tensor(rounds_b[2]), torch.tensor(rounds_b[3], dtype=torch.float64))
    ref = torch.cat([s.log_weights for s in single])
    torch.testing.assert_close(batched.log_weights, ref)


def test_smc_bad_inputs_raise():
    smc = _tiny_smc(8, seed=0)
    x, a, r = torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2)
    with pytest.raises(ValueError, match="distinct"):
        smc.observe(torch.tensor([[1, 1]]), x, a, r.double())
    with pytest.raises(ValueError, match="user ids"):
        smc.observe(torch.tensor([[7, 1]]), x, a, r.double())
    with pytest.raises(ValueError, match="actions"):
        smc.observe(torch.tensor([[0, 1]]), x, a + 2, r.double())
    with pytest.raises(ValueError, match="num_particles"):
        _tiny_smc(1, seed=0)


# --------------------------------------------------------------------------- agents

SMALL = {"num_particles": 32, "num_components": 20, "mu_grid_size": 10, "context_grid_size": 4}


def _model(num_tasks: int = 10) -> SimpleNamespace:
    return SimpleNamespace(num_actions=3, num_tasks=num_tasks, sigma=SIGMA, context_dim=1)


def test_ids_policy_matches_brute_force_simplex_search():
    agent = GIDS(_model(), seed=0, **SMALL)
    gen = torch.Generator().manual_seed(3)
    axis = torch.linspace(0, 1, 201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1)
    simplex = torch.cat([grid, 1 - grid.sum(-1, keepdim=True)], -1).reshape(-1, 3)
    simplex = simplex[simplex[:, 2] >= -1e-12].clamp_min(0)
    for _ in range(5):
        regret = torch.rand(3, dtype=torch.float64, generator=gen)
        gain = torch.rand(3, dtype=torch.float64, generator=gen)
        pol = agent.ids_policy(regret, gain)
        assert float(pol.sum()) == pytest.approx(1.0) and (pol >= 0).all()
        value = (pol @ regret) ** 2 / (pol @ gain + agent.ids_eps)
        brute = ((simplex @ regret) ** 2 / (simplex @ gain + agent.ids_eps)).min()
        assert float(value) <= float(brute) * (1 + 1e-3) + 1e-12


@pytest.mark.parametrize("cls", [NPMTS, GIDS])
def test_agents_act_update_deterministic_and_batched(cls):
    obs = {"task": np.array([[0, 1], [2, 3]]), "context": np.array([[[-0.5], [0.4]], [[0.9], [-1.0]]])}
    runs = []
    for _ in range(2):
        agent = cls(_model(), num_envs=2, seed=5, **SMALL)
        acts = []
        for _ in range(3):
            a = agent.act(obs)
            assert a.shape == (2, 2) and a.dtype == np.int64 and ((a >= 0) & (a < 3)).all()
            agent.update(obs, a, np.where(a == 0, 1.0, -1.0))
            acts.append(a)
        runs.append(np.stack(acts))
    np.testing.assert_array_equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="shape"):
        agent.update(obs, np.zeros((2, 3), dtype=int), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="context_dim"):
        cls(SimpleNamespace(num_actions=3, num_tasks=4, sigma=SIGMA, context_dim=2), **SMALL)


def test_npmts_learns_a_user_with_its_history():
    agent = NPMTS(_model(), seed=0, **SMALL)
    obs = {"task": np.array([0]), "context": np.array([[0.1]])}
    for arm, r in [(0, -1.0), (1, 1.5), (2, -1.2), (1, 1.4)]:
        agent.update(obs, np.array([arm]), np.array([r]))
    acts = [int(agent.act(obs)[0]) for _ in range(30)]
    assert acts.count(1) >= 27


def test_registered():
    from hbgym.agents import AGENTS

    assert AGENTS["NPM-TS"] is NPMTS and AGENTS["GIDS"] is GIDS


@pytest.mark.slow
@pytest.mark.parametrize("cls", [NPMTS, GIDS])
def test_beats_ind_ts_on_mixture_at_small_size(cls):
    gym = pytest.importorskip("gymnasium")
    from hbgym.agents import IndTS

    import hbgym  # noqa: F401

    kwargs = {"scenario": "mixture", "num_batches": 6}
    small = {"num_particles": 48, "num_components": 40, "mu_grid_size": 14, "context_grid_size": 6}
    totals = {}
    for name, make in (("coco", lambda v: cls.from_env(v, seed=0, **small)),
                       ("ind", lambda v: IndTS.from_env(v, seed=0))):
        vec = gym.make_vec("PartialContext-v0", num_envs=3, **kwargs)
        agent = make(vec)
        obs, _ = vec.reset(seed=0)
        total = np.zeros(3)
        for _ in range(vec.unwrapped.model.num_rounds):
            a = agent.act(obs)
            nxt, _, _, _, info = vec.step(a)
            agent.update(obs, a, info["rewards"])
            obs = nxt
            total += info["regret"].sum(-1)
        totals[name] = total
    print(totals)
    assert totals["coco"].mean() < totals["ind"].mean(), totals


@requires_cuda
@pytest.mark.parametrize("cls", [NPMTS, GIDS])
def test_cuda_runs_and_matches_shapes(cls):
    agent = cls(_model(), num_envs=2, device="cuda", dtype="float32", seed=0, **SMALL)
    obs = {"task": np.array([[0, 1], [2, 3]]), "context": np.array([[[-0.5], [0.4]], [[0.9], [-1.0]]])}
    a = agent.act(obs)
    agent.update(obs, a, np.ones((2, 2)))
    assert agent.act(obs).shape == (2, 2)
