"""Exact posterior of a Gaussian-mixture prior under a linear-Gaussian likelihood (conjugate).

Prior ``mu ~ sum_c w_c N(m_c, S_c)`` (``S_c`` PSD, may be singular), observations
``y = x^T mu + eps``, ``eps ~ N(0, noise_var)``, summarised by ``G = sum x x^T / noise_var`` and
``b = sum x y / noise_var``. The posterior is again a mixture (e.g. Bishop 2006, Sec. 2.3.3 and
eq. (2.115) per component):

* per component, with ``S_c = L L^T`` (any square-root factor, so singular covariances work) and
  the always SPD ``C = I + L^T G L``: covariance ``S~_c = L C^{-1} L^T``, mean
  ``m~_c = m_c + S~_c (b - G m_c)`` — the same Woodbury forms as
  :mod:`hbgym.agents.posteriors.gaussian` (no inverse of ``S_c`` or ``G``);
* weights ``w~_c ∝ w_c p(y | c)`` with the marginal likelihood, up to a term common to all
  components, ``log p(y | c) = -1/2 log det C - 1/2 [m^T G m - 2 b^T m - r^T S~ r]``,
  ``r = b - G m`` (matrix determinant lemma and Woodbury on ``noise_var I + X S X^T``).
"""

from __future__ import annotations

import torch
from hbgym.agents.posteriors.linalg import psd_factor, robust_cholesky, symmetrize
from hbgym.agents.random import ReplicateStreams

__all__ = ["mixture_posterior", "sample_mixture"]


def mixture_posterior(
    weights: torch.Tensor,
    means: torch.Tensor,
    covs: torch.Tensor,
    gram: torch.Tensor,
    moment: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior of a Gaussian-mixture prior given sufficient statistics.

    Args:
        weights: ``(..., C)`` prior component weights (non-negative, summing to 1).
        means: ``(..., C, d)``; covs: ``(..., C, d, d)`` PSD (singular allowed).
        gram: ``(..., d, d)`` ``G``; moment: ``(..., d)`` ``b``.

    Returns:
        posterior weights ``(..., C)``, means ``(..., C, d)``, covariances ``(..., C, d, d)`` and
        square-root factors ``F`` of the covariances (``F F^T = S~``) ``(..., C, d, d)``.
    """
    gram_c, moment_c = gram[..., None, :, :], moment[..., None, :]
    factor = psd_factor(symmetrize(covs))  # L, (..., C, d, d)
    w = factor.transpose(-1, -2) @ gram_c  # L^T G
    eye = torch.eye(means.shape[-1], dtype=means.dtype, device=means.device)
    chol_c = robust_cholesky(symmetrize(eye + w @ factor))
    half = torch.linalg.solve_triangular(chol_c, factor.transpose(-1, -2), upper=False)  # C^{-1/2} L^T
    post_factor = half.transpose(-1, -2)
    post_cov = post_factor @ half
    residual = moment_c - (gram_c @ means[..., None])[..., 0]  # r = b - G m
    post_mean = means + (post_cov @ residual[..., None])[..., 0]
    quad = (
        (means * (gram_c @ means[..., None])[..., 0]).sum(-1)
        - 2.0 * (moment_c * means).sum(-1)
        - (residual * (post_cov @ residual[..., None])[..., 0]).sum(-1)
    )
    log_det = 2.0 * torch.log(torch.diagonal(chol_c, dim1=-2, dim2=-1)).sum(-1)
    log_w = torch.log(weights.clamp_min(torch.finfo(weights.dtype).tiny)) - 0.5 * (log_det + quad)
    return torch.softmax(log_w, dim=-1), post_mean, symmetrize(post_cov), post_factor


def sample_mixture(
    weights: torch.Tensor, means: torch.Tensor, factors: torch.Tensor, streams: ReplicateStreams
) -> torch.Tensor:
    """One draw per leading index from ``sum_c w_c N(means_c, F_c F_c^T)``: ``(..., d)``.

    Draws the component ``c ~ Categorical(weights)`` ``(..., C)``, then ``means_c + F_c z``.
    """
    lead, num_comp = weights.shape[:-1], weights.shape[-1]
    comp = streams.categorical(weights.reshape(streams.num_envs, -1, num_comp)).reshape(lead)
    mean = means.gather(-2, comp[..., None, None].expand(*lead, 1, means.shape[-1]))[..., 0, :]
    d = factors.shape[-1]
    factor = factors.gather(-3, comp[..., None, None, None].expand(*lead, 1, d, d))[..., 0, :, :]
    z = streams.normal_like(mean)
    return mean + (factor @ z[..., None])[..., 0]
