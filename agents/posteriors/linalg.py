"""Batched linear-algebra helpers (BoTorch style): Cholesky with per-member jitter retries, solves.

Never form an inverse on a hot path: factor once with :func:`robust_cholesky`, then use
``torch.cholesky_solve`` / ``torch.linalg.solve_triangular``.
"""

from __future__ import annotations

import torch
from hbgym.agents.random import ReplicateStreams

__all__ = ["NotPSDError", "dot", "psd_factor", "robust_cholesky", "symmetrize", "sample_precision_normal"]


class NotPSDError(ValueError):
    """A matrix stayed non positive-definite after the allowed jitter retries."""


def symmetrize(m: torch.Tensor) -> torch.Tensor:
    """``(m + m^T) / 2`` over the last two dims."""
    return 0.5 * (m + m.transpose(-1, -2))


def dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``sum_i x_i y_i`` over the last dim of ``x`` ``(..., n)`` and ``y`` (broadcast to ``x``'s shape).

    Summed in index order from zero, whatever the batch size: the bits of a batch of ``1 x n`` by
    ``n x 1`` ``torch.bmm`` products (the same as ``torch.linalg.vecdot`` for ``n <= 3``). Up to
    :data:`_SHORT_DOT` terms the sum is unrolled into elementwise adds, a third of bmm's time on many
    short rows; the final ``+ 0.0`` turns a ``-0.0`` into the ``+0.0`` a sum started from zero gives.
    """
    n = x.shape[-1]
    if 1 < n <= _SHORT_DOT:
        terms = x * y
        total = terms[..., 0] + terms[..., 1]
        for i in range(2, n):
            total += terms[..., i]
        return total.add_(0.0)
    y = y.expand_as(x)
    return torch.bmm(x.reshape(-1, 1, n), y.reshape(-1, n, 1)).view(x.shape[:-1])


#: most terms of a :func:`dot` summed by elementwise adds (longer ones take one bmm)
_SHORT_DOT = 4


def robust_cholesky(a: torch.Tensor, max_tries: int = 6) -> torch.Tensor:
    """Lower Cholesky factor of ``a`` ``(..., n, n)``.

    Members whose factorisation fails get jitter ``eps * mean(diag) * 10^k`` added, ``k = 0, 1, ...``
    (only those members are retried). Raises :class:`NotPSDError` when retries run out.
    """
    factor, info = torch.linalg.cholesky_ex(a)
    if not torch.count_nonzero(info):  # info > 0 marks a failed member (never negative here)
        return factor
    eps = 1e-10 if a.dtype == torch.float64 else 1e-6
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    scale = a.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(1e-12)
    failed = info > 0
    for k in range(max_tries):
        jitter = (eps * 10.0**k * scale)[..., None, None] * eye
        retry, retry_info = torch.linalg.cholesky_ex(a + jitter)
        factor = torch.where(failed[..., None, None], retry, factor)
        failed = failed & (retry_info > 0)
        if not bool(failed.any()):
            return factor
    bad = int(failed.sum())
    raise NotPSDError(
        f"{bad} matrices are not positive definite even with jitter {eps * 10.0**max_tries:.1e}"
    )


def sample_precision_normal(
    mean: torch.Tensor, precision_factor: torch.Tensor, streams: ReplicateStreams
) -> torch.Tensor:
    """Draw from ``N(mean, Lambda^{-1})`` given the lower Cholesky factor of ``Lambda``.

    ``mean`` ``(..., D)``, ``precision_factor`` ``(..., D, D)``; returns ``(..., D)``:
    ``mean + L^{-T} z`` with ``z ~ N(0, I)``.
    """
    z = streams.normal_like(mean)
    step = torch.linalg.solve_triangular(precision_factor.transpose(-1, -2), z[..., None], upper=True)
    return mean + step[..., 0]


def psd_factor(cov: torch.Tensor) -> torch.Tensor:
    """Square-root factor ``F`` with ``F F^T = cov`` (Cholesky; eigen-factor for singular PSD)."""
    factor, info = torch.linalg.cholesky_ex(cov)
    if not bool((info > 0).any()):
        return factor
    w, v = torch.linalg.eigh(symmetrize(cov))
    if bool((w < -1e-8 * w.abs().amax(-1, keepdim=True).clamp_min(1.0)).any()):
        raise ValueError("a prior covariance is not positive semi-definite")
    eig_factor = v * w.clamp_min(0.0).sqrt()[..., None, :]
    return torch.where((info > 0)[..., None, None], eig_factor, factor)
