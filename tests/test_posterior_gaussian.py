"""The two-level Gaussian posterior equals dense joint-Gaussian conditioning (DESIGN.md sec. 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbgym.agents.posteriors.gaussian import DiagonalHierarchicalGaussian, HierarchicalGaussian
from hbgym.agents.posteriors.linalg import NotPSDError, robust_cholesky
from hbgym.agents.random import ReplicateStreams

from tests.conftest import requires_cuda


def random_spd(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return scale * (a @ a.T / n + 0.3 * np.eye(n))


def dense_posterior(hyper_mean, hyper_cov, unit_covs, mixing, obs_units, obs_x, obs_y, noise_var):
    """Condition the joint Gaussian of (psi, theta_1..theta_U) on the observations (brute force).

    Returns the posterior mean and covariance of the stacked vector [psi, theta_1, ..., theta_U].
    """
    D = len(hyper_mean)
    U, d = len(unit_covs), unit_covs[0].shape[0]
    n = D + U * d
    lift = np.zeros((n, D))  # z = lift psi + [0, eps_1..eps_U]
    lift[:D] = np.eye(D)
    noise_cov = np.zeros((n, n))
    for u in range(U):
        lift[D + u * d : D + (u + 1) * d] = mixing[u]
        noise_cov[D + u * d : D + (u + 1) * d, D + u * d : D + (u + 1) * d] = unit_covs[u]
    mean = lift @ hyper_mean
    cov = lift @ hyper_cov @ lift.T + noise_cov
    if len(obs_y) == 0:
        return mean, cov
    H = np.zeros((len(obs_y), n))
    for j, (u, x) in enumerate(zip(obs_units, obs_x)):
        H[j, D + u * d : D + (u + 1) * d] = x
    S = H @ cov @ H.T + np.diag(noise_var)
    gain = cov @ H.T @ np.linalg.inv(S)
    return mean + gain @ (obs_y - H @ mean), cov - gain @ H @ cov


def make_problem(seed: int, U: int, d: int, D: int, mixed: bool, singular_unit: bool = False):
    rng = np.random.default_rng(seed)
    hyper_mean, hyper_cov = rng.normal(size=D), random_spd(rng, D, 2.0)
    unit_covs = np.stack([random_spd(rng, d, 0.5) for _ in range(U)])
    if singular_unit:
        v = rng.normal(size=(d, 1))
        unit_covs[0] = v @ v.T  # rank one: singular S0
    mixing = rng.normal(size=(U, d, D)) if mixed else np.broadcast_to(np.eye(d), (U, d, d)).copy()
    n_obs = 3 * U
    units = rng.integers(0, U - 1, size=n_obs)  # unit U-1 never observed: singular G
    x = rng.normal(size=(n_obs, d))
    y = rng.normal(size=n_obs)
    noise_var = rng.uniform(0.2, 1.0, size=n_obs)
    return hyper_mean, hyper_cov, unit_covs, mixing, units, x, y, noise_var


@pytest.mark.parametrize("mixed", [False, True], ids=["hierts", "mets"])
@pytest.mark.parametrize("singular_unit", [False, True])
def test_matches_dense_conditioning(mixed, singular_unit):
    U, d, D = 5, 3, (4 if mixed else 3)
    problem = make_problem(0, U, d, D, mixed, singular_unit)
    hyper_mean, hyper_cov, unit_covs, mixing, units, x, y, noise_var = problem
    post = HierarchicalGaussian(
        1, U, hyper_mean, hyper_cov, unit_covs, mixing=mixing if mixed else None, refresh_every=0
    )
    # feed the observations in uneven chunks, with a repeated unit inside one chunk
    for chunk in np.array_split(np.arange(len(y)), 4):
        post.update(
            torch.as_tensor(units[chunk])[None],
            torch.as_tensor(x[chunk])[None],
            torch.as_tensor(y[chunk])[None],
            noise_var=torch.as_tensor(noise_var[chunk])[None],
        )
    mean, cov = dense_posterior(hyper_mean, hyper_cov, unit_covs, mixing, units, x, y, noise_var)
    hyper_mean_hat, hyper_cov_hat = post.hyper_posterior()
    np.testing.assert_allclose(hyper_mean_hat[0].numpy(), mean[:D], atol=1e-8)
    np.testing.assert_allclose(hyper_cov_hat[0].numpy(), cov[:D, :D], atol=1e-8)
    ids = torch.arange(U)[None]
    marg_mean, marg_cov = post.marginal_posterior(ids)
    for u in range(U):
        block = slice(D + u * d, D + (u + 1) * d)
        np.testing.assert_allclose(marg_mean[0, u].numpy(), mean[block], atol=1e-8)
        np.testing.assert_allclose(marg_cov[0, u].numpy(), cov[block, block], atol=1e-8)
    # conditional on a fixed psi equals dense conditioning with psi observed exactly
    psi = np.random.default_rng(1).normal(size=D)
    cond_mean, cond_cov = post.conditional(ids, torch.as_tensor(psi)[None])
    for u in range(U):
        block = slice(D + u * d, D + (u + 1) * d)
        s_zp = cov[block, :D] @ np.linalg.inv(cov[:D, :D])
        np.testing.assert_allclose(cond_mean[0, u].numpy(), mean[block] + s_zp @ (psi - mean[:D]), atol=1e-8)
        np.testing.assert_allclose(
            cond_cov[0, u].numpy(), cov[block, block] - s_zp @ cov[:D, block], atol=1e-8
        )


def test_no_data_gives_prior():
    hyper_mean, hyper_cov, unit_covs, mixing, *_ = make_problem(2, 3, 2, 2, mixed=False)
    post = HierarchicalGaussian(2, 3, hyper_mean, hyper_cov, unit_covs)
    mean, cov = post.hyper_posterior()
    np.testing.assert_allclose(mean[1].numpy(), hyper_mean, atol=1e-12)
    np.testing.assert_allclose(cov[0].numpy(), hyper_cov, atol=1e-10)
    marg_mean, marg_cov = post.marginal_posterior(torch.tensor([[2], [0]]))
    np.testing.assert_allclose(marg_cov[0, 0].numpy(), hyper_cov + unit_covs[2], atol=1e-10)


def test_batched_update_equals_loop_of_single_updates():
    B, U, d = 4, 6, 2
    rng = np.random.default_rng(3)
    hyper_cov, unit_cov = random_spd(rng, d), random_spd(rng, d, 0.3)
    batched = HierarchicalGaussian(B, U, np.zeros(d), hyper_cov, unit_cov)
    singles = [HierarchicalGaussian(1, U, np.zeros(d), hyper_cov, unit_cov) for _ in range(B)]
    for _ in range(20):
        ids = torch.as_tensor(rng.integers(0, U, size=(B, 3)))
        x = torch.as_tensor(rng.normal(size=(B, 3, d)))
        y = torch.as_tensor(rng.normal(size=(B, 3)))
        batched.update(ids, x, y, noise_var=0.25)
        for b, single in enumerate(singles):
            single.update(ids[b : b + 1], x[b : b + 1], y[b : b + 1], noise_var=0.25)
    mean, cov = batched.hyper_posterior()
    ids = torch.arange(U)[None]
    for b, single in enumerate(singles):
        m1, c1 = single.hyper_posterior()
        torch.testing.assert_close(mean[b], m1[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(cov[b], c1[0], atol=1e-12, rtol=0)
        mm, mc = batched.marginal_posterior(ids.expand(B, -1))
        sm, sc = single.marginal_posterior(ids)
        torch.testing.assert_close(mm[b], sm[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(mc[b], sc[0], atol=1e-12, rtol=0)


def test_running_sums_equal_recomputation_after_many_updates():
    B, U, d, D = 2, 30, 2, 6
    rng = np.random.default_rng(4)
    mixing = rng.dirichlet(np.ones(3), size=U)  # meTS: A_i = b_i^T (x) I_d
    mixing = np.einsum("ul,ij->uilj", mixing, np.eye(d)).reshape(U, d, D)
    post = HierarchicalGaussian(B, U, np.zeros(D), 3 * np.eye(D), np.eye(d), mixing=mixing, refresh_every=0)
    for _ in range(10_000):
        ids = torch.as_tensor(rng.integers(0, U, size=(B, 1)))
        post.update(ids, torch.as_tensor(rng.uniform(-1, 1, size=(B, 1, d))),
                    torch.as_tensor(rng.normal(size=(B, 1))))
    incremental = post.hyper_precision(), post.hyper_eta()
    post._recompute_sums()
    torch.testing.assert_close(incremental[0], post.hyper_precision(), atol=1e-8, rtol=1e-10)
    torch.testing.assert_close(incremental[1], post.hyper_eta(), atol=1e-8, rtol=1e-10)
    _, cov = post.marginal_posterior(torch.arange(U).expand(B, -1))
    assert torch.allclose(cov, cov.transpose(-1, -2))
    assert bool((torch.linalg.eigvalsh(cov) > 0).all())


def test_set_prior_refreshes_exactly():
    hyper_mean, hyper_cov, unit_covs, mixing, units, x, y, noise_var = make_problem(5, 4, 2, 2, False)
    post = HierarchicalGaussian(1, 4, hyper_mean, hyper_cov, np.eye(2))
    post.update(torch.as_tensor(units)[None], torch.as_tensor(x)[None], torch.as_tensor(y)[None],
                noise_var=torch.as_tensor(noise_var)[None])
    post.set_prior(unit_cov=unit_covs)
    fresh = HierarchicalGaussian(1, 4, hyper_mean, hyper_cov, unit_covs)
    fresh.update(torch.as_tensor(units)[None], torch.as_tensor(x)[None], torch.as_tensor(y)[None],
                 noise_var=torch.as_tensor(noise_var)[None])
    for a, b in zip(post.hyper_posterior(), fresh.hyper_posterior()):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_samples_have_posterior_moments():
    hyper_mean, hyper_cov, unit_covs, mixing, units, x, y, noise_var = make_problem(6, 3, 2, 2, False)
    B = 20_000
    post = HierarchicalGaussian(B, 3, hyper_mean, hyper_cov, unit_covs)
    post.update(torch.as_tensor(units).expand(B, -1), torch.as_tensor(x).expand(B, -1, -1),
                torch.as_tensor(y).expand(B, -1), noise_var=torch.as_tensor(noise_var).expand(B, -1))
    streams = ReplicateStreams(B)
    streams.seed(0)
    psi = post.sample_hyper(streams)
    theta = post.sample_units(torch.zeros(B, 1, dtype=torch.long), psi, streams)[:, 0]  # two-stage draw
    mean, cov = post.marginal_posterior(torch.zeros(1, 1, dtype=torch.long).expand(B, -1))
    np.testing.assert_allclose(theta.mean(0).numpy(), mean[0, 0].numpy(), atol=0.03)
    np.testing.assert_allclose(np.cov(theta.numpy().T), cov[0, 0].numpy(), atol=0.03)


def test_diagonal_fast_path_equals_dense():
    rng = np.random.default_rng(7)
    B, U, K = 3, 4, 5
    hyper_var, unit_var = rng.uniform(0.5, 2, K), rng.uniform(0.01, 0.3, K)
    dense = HierarchicalGaussian(B, U, np.zeros(K), np.diag(hyper_var), np.diag(unit_var))
    diag = DiagonalHierarchicalGaussian(B, U, np.zeros(K), hyper_var, unit_var)
    for _ in range(15):
        ids = torch.as_tensor(rng.integers(0, U, size=(B, 2)))
        arms = torch.as_tensor(rng.integers(0, K, size=(B, 2)))
        x = torch.nn.functional.one_hot(arms, K).double()
        y = torch.as_tensor(rng.normal(size=(B, 2)))
        dense.update(ids, x, y, noise_var=0.5)
        diag.update(ids, x, y, noise_var=0.5)
    for a, b in zip(dense.hyper_posterior(), diag.hyper_posterior()):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    ids = torch.arange(U).expand(B, -1)
    for a, b in zip(dense.marginal_posterior(ids), diag.marginal_posterior(ids)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    psi = torch.as_tensor(rng.normal(size=(B, K)))
    for a, b in zip(dense.conditional(ids, psi), diag.conditional(ids, psi)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_float32_close_to_float64():
    hyper_mean, hyper_cov, unit_covs, mixing, units, x, y, noise_var = make_problem(8, 4, 2, 2, False)
    out = []
    for dtype in (torch.float64, torch.float32):
        post = HierarchicalGaussian(1, 4, hyper_mean, hyper_cov, unit_covs, dtype=dtype)
        post.update(torch.as_tensor(units)[None], torch.as_tensor(x, dtype=dtype)[None],
                    torch.as_tensor(y, dtype=dtype)[None],
                    noise_var=torch.as_tensor(noise_var, dtype=dtype)[None])
        out.append(post.marginal_posterior(torch.arange(4)[None]))
    torch.testing.assert_close(out[1][0].double(), out[0][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[1][1].double(), out[0][1], atol=1e-4, rtol=1e-4)


def test_robust_cholesky_retries_only_failing_members_and_raises():
    good = torch.eye(2, dtype=torch.float64)
    near = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)  # singular PSD
    factor = robust_cholesky(torch.stack([good, near]))
    torch.testing.assert_close(factor[0], good)
    assert torch.isfinite(factor[1]).all()
    with pytest.raises(NotPSDError):
        robust_cholesky(torch.tensor([[1.0, 0.0], [0.0, -5.0]], dtype=torch.float64))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="unit_cov"):
        HierarchicalGaussian(2, 3, np.zeros(2), np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="mixing"):
        HierarchicalGaussian(2, 3, np.zeros(2), np.eye(2), np.eye(2), mixing=np.zeros((3, 2, 5)))


@requires_cuda
def test_cuda_matches_cpu():
    problem = make_problem(9, 4, 2, 2, False)
    hyper_mean, hyper_cov, unit_covs, mixing, units, x, y, noise_var = problem
    out = []
    for device in ("cpu", "cuda"):
        post = HierarchicalGaussian(1, 4, hyper_mean, hyper_cov, unit_covs, device=device)
        post.update(torch.as_tensor(units, device=device)[None], torch.as_tensor(x, device=device)[None],
                    torch.as_tensor(y, device=device)[None],
                    noise_var=torch.as_tensor(noise_var, device=device)[None])
        out.append([t.cpu() for t in post.marginal_posterior(torch.arange(4, device=device)[None])])
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-8, rtol=0)
    torch.testing.assert_close(out[0][1], out[1][1], atol=1e-8, rtol=0)


def test_first_occurrence_small_python_path_equals_tensor_path() -> None:
    from hbgym.agents.posteriors.gaussian import _first_occurrence

    ids = torch.tensor([[3, 1, 3, 0, 1], [2, 2, 2, 4, 0], [0, 1, 2, 3, 4]])
    expected = torch.tensor([
        [True, True, False, True, False], [True, False, False, True, True], [True] * 5,
    ])
    small = _first_occurrence(ids)  # few ids: computed in Python
    large = _first_occurrence(ids.repeat(30, 1))  # > 256 ids: tensor ops
    assert torch.equal(small, expected)
    assert torch.equal(large[:3], expected)
    assert _first_occurrence(ids[2:]) is None  # no repeats: nothing to mask
    assert _first_occurrence(ids[:, :1]) is None


def test_dot_sums_in_index_order_and_equals_vecdot_for_short_rows() -> None:
    from hbgym.agents.posteriors.linalg import dot

    gen = torch.Generator().manual_seed(3)
    for n in (1, 2, 3, 7):
        x = torch.randn(4, 5, 6, n, generator=gen, dtype=torch.float64)
        y = torch.randn(4, 5, 1, n, generator=gen, dtype=torch.float64)  # broadcast over dim 2
        got = dot(x, y)
        in_order = x[..., 0] * y[..., 0]
        for i in range(1, n):
            in_order = in_order + x[..., i] * y[..., i]
        assert torch.equal(got, in_order)
        if n <= 3:
            assert torch.equal(got, torch.linalg.vecdot(x, y))


def test_a_fixed_psi_changed_in_place_or_replaced_is_used_by_the_next_draw() -> None:
    """sample_units writes a fixed psi into its draw buffer once; a psi changed in place (or a new
    tensor) is written again: each draw equals one from a posterior that never saw another psi."""
    B, U, d = 2, 4, 2
    rng = np.random.default_rng(5)
    hyper_cov, unit_cov = random_spd(rng, d), random_spd(rng, d, 0.3)
    ids = torch.as_tensor(rng.integers(0, U, size=(B, 3)))

    def draw(post: HierarchicalGaussian, psi: torch.Tensor, streams: ReplicateStreams) -> torch.Tensor:
        return post.sample_units(ids, psi, streams)

    reused = HierarchicalGaussian(B, U, np.zeros(d), hyper_cov, unit_cov, learn_hyper=False)
    reused.update(ids, torch.as_tensor(rng.normal(size=(B, 3, d))), torch.ones(B, 3))
    streams = ReplicateStreams(B)
    streams.seed(0)
    psi = torch.zeros(B, d, dtype=torch.float64)
    first, second = draw(reused, psi, streams), draw(reused, psi, streams)
    psi += 3.0  # in place
    third = draw(reused, psi, streams)
    fourth = draw(reused, torch.full((B, d), -1.0, dtype=torch.float64), streams)
    for k, (value, got) in enumerate(((0.0, first), (0.0, second), (3.0, third), (-1.0, fourth))):
        fresh = HierarchicalGaussian(B, U, np.zeros(d), hyper_cov, unit_cov, learn_hyper=False)
        fresh.stats.copy_(reused.stats)
        fresh.set_prior(unit_cov=unit_cov)  # recompute the caches from the copied statistics
        ref_streams = ReplicateStreams(B)
        ref_streams.seed(0)
        for _ in range(k):  # the same stream position
            ref_streams.normal((3, d))
        expected = draw(fresh, torch.full((B, d), value, dtype=torch.float64), ref_streams)
        assert torch.equal(got, expected), k
