"""Empirical-Bayes estimation of the unit prior of a two-level Gaussian model (Jiang & Zhu, Sec. 4.3).

Model (per arm ``k``, batched over any leading dims, typically ``B x K``): unit ``s < U`` (an
instance) has parameter ``beta_s = beta + delta_s``, ``delta_s ~ N(0, Sigma)``, and observations
``y = x^T beta_s + eps``, ``eps ~ N(0, sigma^2)``. From the raw sufficient statistics of every unit
(``X^T X``, ``X^T y``, ``y^T y``, ``n``) this module estimates

* ``sigma^2`` — pooled residual variance of the per-unit least-squares fits, using only the data of
  this arm (the paper: "the noise variance of each individual arm is estimated exclusively using the
  data collected by that arm itself"): ``sigma^2 = sum_s RSS_s / sum_s (n_s - d)`` over the units
  with ``n_s > d`` (unbiased under the model);
* ``beta`` — the mean ``bar beta = mean_s beta_hat_s`` of the per-unit estimates (the centre of the
  sample covariance; the agents keep a full posterior over ``beta``);
* ``Sigma`` — Bickel & Levina's (2008) hard-thresholded sample covariance of the per-unit estimates
  ``beta_hat_s``: ``T_lam(S)_ij = S_ij 1(|S_ij| >= lam)`` for ``i != j`` (the diagonal is kept, so
  no variance is ever set to zero), followed by a projection onto the PSD cone (thresholding can
  break positive definiteness): eigenvalues clipped at ``min_eig`` times the mean variance.

Threshold rules (``threshold=``):

* ``"cv"`` (default) — Bickel & Levina's Sec. 5 cross-validation: ``num_splits`` random splits of
  the ``n`` estimates into ``n_1 = n - n_2`` and ``n_2 = floor(n / log n)``; ``lam`` minimises
  ``mean_splits ||T_lam(S_1) - S_2||_F^2`` over a grid of ``num_grid`` values in
  ``[0, max_{i != j} |S_ij|]`` (ties: the smallest ``lam``). Needs ``n >= 4``; below that the
  ``"universal"`` rule is used.
* ``"universal"`` — the rule of thumb at Bickel & Levina's rate: threshold the sample *correlation*
  at ``c * sqrt(log d / n)`` (``lam_ij = c sqrt(S_ii S_jj log d / n)``, scale invariant), ``c =
  universal_c``.
* a number — a fixed ``lam``; ``None`` — no thresholding (the plain sample covariance).

Optional ``debias=True`` subtracts the average estimation-noise covariance
``mean_s sigma^2 (X_s^T X_s)^-1`` from ``S`` (method of moments: ``E S = Sigma + mean_s
Cov(beta_hat_s)``), before thresholding; the paper uses the plain ``S`` (default).

Warm-up: ``Sigma`` is only estimated where at least ``min_units`` units have ``n_s >= min_obs``
observations (``cov_ready``), ``sigma^2`` only where the pooled residual degrees of freedom reach
``min_dof`` (``noise_ready``); callers keep their initial values elsewhere.

All functions are batched over leading dims ``...``, follow the inputs' device and dtype, and never
loop over the batch in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hbgym.agents.posteriors.linalg import robust_cholesky
from hbgym.agents.random import ReplicateStreams
from torch import Tensor

__all__ = [
    "EBPrior",
    "UnitStatistics",
    "bickel_levina_cv",
    "estimate_prior",
    "hard_threshold",
    "least_squares",
    "mean_and_covariance",
    "pooled_noise_variance",
    "project_psd",
    "universal_threshold",
]

THRESHOLD_RULES = ("cv", "universal")


def _sym(a: Tensor) -> Tensor:
    return 0.5 * (a + a.transpose(-1, -2))


class UnitStatistics:
    """Raw sufficient statistics of per-(arm, unit) linear regressions, batched over ``B``.

    Stored arm-major so that ``view(B * K, U, ...)`` folds the arms into the batch:
    ``gram`` ``(B, K, U, d, d)`` = ``X^T X``, ``moment`` ``(B, K, U, d)`` = ``X^T y``, ``sq``
    ``(B, K, U)`` = ``y^T y``, ``counts`` ``(B, K, U)`` = ``n``. Raw means "not divided by a noise
    variance", so the statistics stay valid when the noise estimate changes.
    """

    def __init__(self, num_envs: int, num_arms: int, num_units: int, dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.shape = (num_envs, num_arms, num_units)
        self.dim = dim
        opts = {"device": device, "dtype": dtype}
        self.gram = torch.zeros(*self.shape, dim, dim, **opts)
        self.moment = torch.zeros(*self.shape, dim, **opts)
        self.sq = torch.zeros(self.shape, **opts)
        self.counts = torch.zeros(self.shape, **opts)

    def reset(self) -> None:
        for t in (self.gram, self.moment, self.sq, self.counts):
            t.zero_()

    def add(self, arms: Tensor, units: Tensor, x: Tensor, y: Tensor, mask: Tensor | None = None) -> None:
        """Add one observation per replicate: arms, units ``(B,)`` long, x ``(B, d)``, y ``(B,)``.

        ``mask`` ``(B,)`` bool skips replicates (their statistics are unchanged).
        """
        num_envs, num_arms, num_units = self.shape
        w = torch.ones_like(y) if mask is None else mask.to(y.dtype)
        flat = (torch.arange(num_envs, device=y.device) * num_arms + arms) * num_units + units
        d = self.dim
        self.gram.view(-1, d, d).index_add_(0, flat, w[:, None, None] * x[:, :, None] * x[:, None, :])
        self.moment.view(-1, d).index_add_(0, flat, (w * y)[:, None] * x)
        self.sq.view(-1).index_add_(0, flat, w * y * y)
        self.counts.view(-1).index_add_(0, flat, w)

    def folded(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(gram, moment, sq, counts)`` with arms folded into the batch: ``(B * K, U, ...)``."""
        num_envs, num_arms, num_units = self.shape
        lead = (num_envs * num_arms, num_units)
        d = self.dim
        return (self.gram.view(*lead, d, d), self.moment.view(*lead, d), self.sq.view(lead),
                self.counts.view(lead))


def least_squares(gram: Tensor, moment: Tensor, ridge: float = 1e-8, penalty: float = 0.0) -> Tensor:
    """Per-unit (ridge) least squares ``(G + r I)^-1 b``: gram ``(..., d, d)``, moment ``(..., d)``.

    ``r = ridge * (trace(G) / d + 1) + penalty``: the relative ``ridge`` only guards singular Gram
    matrices (units with ``n < d`` or no data; callers mask them out), ``penalty`` is an explicit
    ridge penalty. Returns ``(..., d)``.
    """
    d = gram.shape[-1]
    eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
    scale = gram.diagonal(dim1=-2, dim2=-1).sum(-1) / d + 1.0
    reg = gram + (ridge * scale + penalty)[..., None, None] * eye
    return torch.cholesky_solve(moment.unsqueeze(-1), robust_cholesky(reg)).squeeze(-1)


def pooled_noise_variance(
    gram: Tensor, moment: Tensor, sq: Tensor, counts: Tensor, estimates: Tensor
) -> tuple[Tensor, Tensor]:
    """Pooled residual variance over units with ``n_s > d``.

    Args:
        gram: ``(..., U, d, d)`` ``X_s^T X_s``; moment ``(..., U, d)`` ``X_s^T y_s``;
            sq ``(..., U)`` ``y_s^T y_s``; counts ``(..., U)`` ``n_s``; estimates ``(..., U, d)``
            the least-squares fits ``beta_hat_s``.

    Returns:
        ``sigma2`` ``(...)`` (``nan`` where no degrees of freedom) and the residual degrees of
        freedom ``(...)``: ``sum_s (y^T y - 2 b^T m + b^T G b) / sum_s (n_s - d)``.
    """
    d = gram.shape[-1]
    use = counts > d
    fitted = (estimates * (gram @ estimates.unsqueeze(-1)).squeeze(-1)).sum(-1)
    rss = sq - 2.0 * (estimates * moment).sum(-1) + fitted
    rss = torch.where(use, rss.clamp_min(0.0), torch.zeros_like(rss))
    dof = torch.where(use, counts.to(rss.dtype) - d, torch.zeros_like(rss)).sum(-1)
    sigma2 = rss.sum(-1) / dof
    return torch.where(dof > 0, sigma2, torch.full_like(sigma2, float("nan"))), dof


def mean_and_covariance(samples: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Masked sample mean and unbiased covariance.

    Args:
        samples: ``(..., n, d)``; weights: ``(..., n)`` 0/1 membership (float or bool).

    Returns:
        mean ``(..., d)``, covariance ``(..., d, d)`` (divided by ``n_eff - 1``; zero where
        ``n_eff < 2``) and ``n_eff`` ``(...)``.
    """
    w = weights.to(samples.dtype)
    n = w.sum(-1)
    mean = (w.unsqueeze(-1) * samples).sum(-2) / n.clamp_min(1.0).unsqueeze(-1)
    centred = (samples - mean.unsqueeze(-2)) * w.unsqueeze(-1)
    cov = centred.transpose(-1, -2) @ centred / (n - 1.0).clamp_min(1.0)[..., None, None]
    return mean, _sym(cov), n


def hard_threshold(cov: Tensor, lam: Tensor | float, keep_diagonal: bool = True) -> Tensor:
    """Bickel & Levina's ``T_lam``: zero the entries with ``|S_ij| < lam``.

    ``cov`` ``(..., d, d)``; ``lam`` a float, ``(...)`` or ``(..., d, d)`` (entry-wise thresholds).
    The diagonal is kept unless ``keep_diagonal=False``.
    """
    lam_t = torch.as_tensor(lam, dtype=cov.dtype, device=cov.device)
    if lam_t.ndim == cov.ndim - 2:
        lam_t = lam_t[..., None, None]
    keep = cov.abs() >= lam_t
    if keep_diagonal:
        keep = keep | torch.eye(cov.shape[-1], dtype=torch.bool, device=cov.device)
    return torch.where(keep, cov, torch.zeros_like(cov))


def universal_threshold(cov: Tensor, n: Tensor, c: float = 1.0) -> Tensor:
    """Entry-wise thresholds ``c sqrt(S_ii S_jj) sqrt(log d / n)`` ``(..., d, d)`` (correlation scale)."""
    d = cov.shape[-1]
    var = cov.diagonal(dim1=-2, dim2=-1).clamp_min(0.0)
    rate = torch.sqrt(math.log(max(d, 2)) / n.to(cov.dtype).clamp_min(1.0))
    return c * torch.sqrt(var.unsqueeze(-1) * var.unsqueeze(-2)) * rate[..., None, None]


def bickel_levina_cv(
    samples: Tensor,
    mask: Tensor,
    streams: ReplicateStreams | None = None,
    num_splits: int = 10,
    num_grid: int = 20,
) -> Tensor:
    """Threshold chosen by Bickel & Levina's (2008, Sec. 5) random-split cross-validation.

    Args:
        samples: ``(..., n, d)`` per-unit estimates; mask: ``(..., n)`` bool, which are valid.
        streams: per-replicate random streams for the splits (the leading batch dims are
            replicate-major); None uses one stream of seed 0 for the whole batch.
        num_splits: N random splits; num_grid: number of candidate thresholds.

    Returns:
        ``lam`` ``(...)``; ``nan`` where fewer than 4 valid samples exist (the rule is undefined).
    """
    dtype, device = samples.dtype, samples.device
    valid = mask.to(torch.bool)
    n = valid.sum(-1)  # (...)
    n_f = n.to(dtype)
    n2 = torch.floor(n_f / torch.log(n_f.clamp_min(2.0))).clamp_min(1.0)  # (...)
    batch = samples.shape[:-2]
    size = samples.shape[-2]
    if streams is None:
        streams = ReplicateStreams(1, device)
        streams.seed(0)
    reps = streams.num_envs
    if math.prod(batch) % reps:
        raise ValueError(f"batch shape {tuple(batch)} is not a multiple of the {reps} replicate streams")
    scores = streams.uniform((num_splits, math.prod(batch) // reps, size), dtype)  # (R, splits, m, size)
    scores = scores.transpose(0, 1).reshape(num_splits, *batch, size)
    scores = torch.where(valid, scores, torch.full_like(scores, 2.0))  # invalid ones sort last
    ranks = scores.argsort(-1).argsort(-1).to(dtype)  # rank among (valid first) units
    in2 = valid & (ranks < n2.unsqueeze(-1))
    in1 = valid & ~in2
    _, s1, _ = mean_and_covariance(samples.expand(num_splits, *samples.shape), in1)
    _, s2, _ = mean_and_covariance(samples.expand(num_splits, *samples.shape), in2)
    _, full, _ = mean_and_covariance(samples, valid)
    d = samples.shape[-1]
    off = ~torch.eye(d, dtype=torch.bool, device=device)
    top = torch.where(off, full.abs(), torch.zeros_like(full)).flatten(-2).amax(-1)  # (...)
    grid = torch.linspace(0.0, 1.0, num_grid, dtype=dtype, device=device)
    lams = grid * top.unsqueeze(-1)  # (..., G)
    # ||T_lam(S_1) - S_2||_F^2 = sum S_2^2 + sum_{kept ij} [(S_1 - S_2)^2 - S_2^2]; the first sum does
    # not depend on lam, so the risk differs from sum_{kept} D_ij by a constant (kept: |S_1| >= lam
    # off the diagonal; the diagonal is always kept and adds a constant too)
    gain = ((s1 - s2).square() - s2.square()).masked_fill(~off, 0.0).flatten(-2)  # (N, ..., d*d)
    kept = s1.abs().flatten(-2).unsqueeze(-2) >= lams.unsqueeze(0).unsqueeze(-1)  # (N, ..., G, d*d)
    risk = (kept.to(dtype) @ gain.unsqueeze(-1)).squeeze(-1).mean(0)  # (..., G)
    best = risk.argmin(-1, keepdim=True)
    lam = lams.gather(-1, best).squeeze(-1)
    return torch.where(n >= 4, lam, torch.full_like(lam, float("nan")))


def project_psd(cov: Tensor, min_eig: Tensor | float) -> Tensor:
    """Nearest (Frobenius) symmetric matrix with eigenvalues ``>= min_eig`` (``(...)`` or float)."""
    w, v = torch.linalg.eigh(_sym(cov))
    floor = torch.as_tensor(min_eig, dtype=cov.dtype, device=cov.device)
    if floor.ndim:
        floor = floor.unsqueeze(-1)
    w = torch.maximum(w, floor)
    return _sym((v * w.unsqueeze(-2)) @ v.transpose(-1, -2))


@dataclass
class EBPrior:
    """Empirical-Bayes estimates, batched over ``...`` (e.g. ``B x K``).

    Attributes:
        mean: ``(..., d)`` ``bar beta``, the mean of the valid per-unit estimates.
        cov: ``(..., d, d)`` thresholded, PSD-projected Sigma (meaningful where ``cov_ready``).
        noise_var: ``(...)`` pooled sigma^2 (meaningful where ``noise_ready``).
        cov_ready: ``(...)`` bool, at least ``min_units`` units with ``n_s >= min_obs``.
        noise_ready: ``(...)`` bool, residual degrees of freedom ``>= min_dof``.
        threshold: ``(...)`` the threshold used (``nan`` for entry-wise universal thresholds).
        num_units: ``(...)`` number of units used for Sigma; noise_dof ``(...)``.
        estimates: ``(..., U, d)`` the per-unit least-squares estimates; valid ``(..., U)``.
    """

    mean: Tensor
    cov: Tensor
    noise_var: Tensor
    cov_ready: Tensor
    noise_ready: Tensor
    threshold: Tensor
    num_units: Tensor
    noise_dof: Tensor
    estimates: Tensor
    valid: Tensor


def estimate_prior(
    gram: Tensor,
    moment: Tensor,
    sq: Tensor,
    counts: Tensor,
    *,
    min_obs: int | None = None,
    min_units: int = 3,
    min_dof: int | None = None,
    threshold: str | float | None = "cv",
    num_splits: int = 10,
    num_grid: int = 20,
    universal_c: float = 1.0,
    debias: bool = False,
    min_eig: float = 1e-4,
    noise_var_fallback: Tensor | float = 1.0,
    streams: ReplicateStreams | None = None,
) -> EBPrior:
    """Estimate ``(bar beta, Sigma, sigma^2)`` from raw per-unit statistics (module docstring).

    Args:
        gram: ``(..., U, d, d)`` raw ``X_s^T X_s`` (not divided by the noise variance).
        moment: ``(..., U, d)`` ``X_s^T y_s``; sq ``(..., U)`` ``y_s^T y_s``; counts ``(..., U)``.
        min_obs: a unit enters the covariance estimate with ``n_s >= min_obs`` (default ``2 d``).
        min_units: units needed before Sigma is estimated (warm-up).
        min_dof: residual degrees of freedom needed before sigma^2 is estimated (default ``2 d``).
        threshold: ``"cv"`` | ``"universal"`` | a number | None.
        num_splits, num_grid: the CV rule's splits and grid size; universal_c: its constant.
        debias: subtract the mean estimation-noise covariance from the sample covariance.
        min_eig: PSD floor, relative to the mean of the estimated variances.
        noise_var_fallback: sigma^2 used for debiasing where it cannot be estimated yet.
        streams: per-replicate random streams for the CV splits (see :func:`bickel_levina_cv`).
    """
    if not (threshold is None or threshold in THRESHOLD_RULES or isinstance(threshold, (int, float))):
        raise ValueError(f"threshold={threshold!r} is unknown; allowed: 'cv', 'universal', a number or None")
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    d = gram.shape[-1]
    min_obs = 2 * d if min_obs is None else min_obs
    min_dof = 2 * d if min_dof is None else min_dof
    counts_f = counts.to(gram.dtype)
    estimates = least_squares(gram, moment)
    noise_var, dof = pooled_noise_variance(gram, moment, sq, counts_f, estimates)
    noise_ready = dof >= min_dof
    valid = counts_f >= min_obs
    estimates = torch.where(valid.unsqueeze(-1), estimates, torch.zeros_like(estimates))
    mean, cov, n = mean_and_covariance(estimates, valid)
    cov_ready = n >= max(min_units, 2)
    if debias:
        fallback = torch.as_tensor(noise_var_fallback, dtype=gram.dtype, device=gram.device)
        s2 = torch.where(noise_ready, noise_var, fallback.expand_as(noise_var))
        eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
        scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1) + 1.0
        factor = robust_cholesky(gram + 1e-8 * scale[..., None, None] * eye)
        inv = torch.cholesky_solve(eye.expand_as(gram), factor)
        w = valid.to(gram.dtype)[..., None, None]
        err = (w * inv).sum(-3) / n.clamp_min(1.0)[..., None, None]
        cov = cov - s2[..., None, None] * err
    if threshold is None:
        lam = torch.zeros_like(n)
        thresholded = cov
    elif threshold == "cv":
        lam = bickel_levina_cv(estimates, valid, streams, num_splits, num_grid)
        universal = hard_threshold(cov, universal_threshold(cov, n, universal_c))
        thresholded = torch.where(torch.isnan(lam)[..., None, None], universal,
                                  hard_threshold(cov, torch.nan_to_num(lam)))
    elif threshold == "universal":
        lam = torch.full_like(n, float("nan"))
        thresholded = hard_threshold(cov, universal_threshold(cov, n, universal_c))
    else:
        lam = torch.full_like(n, float(threshold))
        thresholded = hard_threshold(cov, float(threshold))
    scale = thresholded.diagonal(dim1=-2, dim2=-1).clamp_min(0.0).mean(-1)
    floor = min_eig * scale + torch.finfo(gram.dtype).tiny ** 0.5
    return EBPrior(
        mean=mean,
        cov=project_psd(thresholded, floor),
        noise_var=noise_var,
        cov_ready=cov_ready,
        noise_ready=noise_ready,
        threshold=lam,
        num_units=n,
        noise_dof=dof,
        estimates=estimates,
        valid=valid,
    )
