"""Baselines of the ebm paper on MultiBandit-v0 (Jiang & Zhu, Sec. 7): no sharing and sparse sharing.

* :class:`DisjointLinTS` / :class:`DisjointLinUCB` — LinTS (Agrawal & Goyal 2013) and LinUCB with
  disjoint linear models (Li et al. 2010), one independent Bayesian linear regression per
  (instance, arm): the paper's "LinTS" and "LinUCB" baselines. The posterior is the shared
  :class:`~hbgym.agents.posteriors.gaussian.HierarchicalGaussian` with ``learn_hyper=False`` (arms folded
  into the batch, instances as units, the hyper-parameter fixed at the prior mean 0).
* :class:`OLSBandit` — Goldenshluger & Zeevi (2013), in the K-arm form of Bastani & Bayati (2020,
  Alg. 1 with OLS): forced sampling on a doubling schedule, a forced-sample estimator to screen
  arms and an all-sample estimator to pick among them; one independent copy per instance.
* :class:`RMBandit` — Xu & Bastani (2025): the same forced-sampling framework, with both estimators
  replaced by the robust multitask estimator (robust aggregation of the instance estimates into a
  global estimate, then a per-instance LASSO correction towards it).

All agents are batched over ``B`` replicates in torch and read only ``obs["task"]`` and
``obs["context"]``; statistics are the shared per-(arm, instance) sufficient statistics of
:class:`~hbgym.agents.multi_bandit.MultiBanditAgent`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from hbgym.agents.multi_bandit import MultiBanditAgent, forced_arm
from hbgym.agents.posteriors.empirical_bayes import UnitStatistics, least_squares, pooled_noise_variance
from hbgym.agents.posteriors.gaussian import HierarchicalGaussian
from torch import Tensor

__all__ = [
    "DisjointLinTS",
    "DisjointLinUCB",
    "OLSBandit",
    "RMBandit",
    "robust_multitask_estimates",
    "weighted_median",
]


class _DisjointLinear(MultiBanditAgent):
    """Independent Gaussian linear model per (instance, arm), no sharing across instances.

    Prior ``beta_{s,k} ~ N(0, prior_std^2 I)``, likelihood ``N(x^T beta_{s,k}, sigma_k^2)`` with the
    model's public per-arm ``noise_std`` (our choice: the baselines are told the noise, which only
    favours them against the ebm agents, which estimate it). The posterior mean is the ridge
    estimate with penalty ``sigma_k^2 / prior_std^2`` and covariance
    ``sigma_k^2 (X^T X + sigma_k^2 / prior_std^2 I)^-1``.

    Args:
        model: MultiBandit public model; rho: exploration scale (posterior spread for TS, bonus
            weight ``alpha`` for UCB; default 1); prior_std: 1; plus :class:`TorchAgent` kwargs.
    """

    def __init__(self, model: Any, rho: float = 1.0, prior_std: float = 1.0, **kwargs: Any) -> None:
        for name, value in (("rho", rho), ("prior_std", prior_std)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if prior_std == 0:
            raise ValueError("prior_std must be > 0, got 0")
        self.rho, self.prior_std = float(rho), float(prior_std)
        super().__init__(model, **kwargs)

    def _setup(self) -> None:
        super()._setup()
        B, K, M, d = self.num_envs, self.num_arms, self.num_instances, self.dim
        like = {"device": self.device, "dtype": self.dtype}
        noise = torch.as_tensor(getattr(self.model, "noise_std", 1.0), **like).expand(B, K).reshape(B * K)
        self._noise_var = (noise**2)[:, None]
        eye = torch.eye(d, **like)
        self.posterior = HierarchicalGaussian(B * K, M, torch.zeros(d, **like), eye, self.prior_std**2 * eye,
                                              learn_hyper=False, device=self.device, dtype=self.dtype)
        self._zero = torch.zeros(B * K, d, **like)
        self._arm_offset = torch.arange(K, device=self.device)

    def _reset_state(self) -> None:
        super()._reset_state()
        self.posterior.reset()

    def _folded_ids(self, task: Tensor) -> Tensor:
        return task.repeat_interleave(self.num_arms)[:, None]

    def _observe(self, task: Tensor, x: Tensor, arm: Tensor, y: Tensor) -> None:
        K = self.num_arms
        self.posterior.update(self._folded_ids(task), x.repeat_interleave(K, dim=0)[:, None],
                              y.repeat_interleave(K)[:, None], noise_var=self._noise_var,
                              mask=(arm[:, None] == self._arm_offset).reshape(-1, 1))

    def posterior_for(self, task: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior of ``beta_{s,k}`` for the arriving instances ``task`` ``(B,)``.

        Returns mean ``(B, K, d)`` and covariance ``(B, K, d, d)``.
        """
        mean, cov = self.posterior.conditional(self._folded_ids(task), self._zero)
        B, K, d = self.num_envs, self.num_arms, self.dim
        return mean.reshape(B, K, d), cov.reshape(B, K, d, d)


class DisjointLinTS(_DisjointLinear):
    """LinTS per (instance, arm): ``beta_{s,k} ~ N(mean, rho^2 cov)``, pull ``argmax_k x^T beta``.

    Agrawal & Goyal (2013) with disjoint models; see :class:`_DisjointLinear` for the posterior.
    """

    name = "DisjointLinTS"

    def _scores(self, task: Tensor, x: Tensor) -> Tensor:
        ids = self._folded_ids(task)
        theta = self.posterior.sample_units(ids, self._zero, self.streams, scale=self.rho)
        return (theta.reshape(self.num_envs, self.num_arms, self.dim) * x[:, None]).sum(-1)


class DisjointLinUCB(_DisjointLinear):
    """LinUCB with disjoint linear models (Li et al. 2010, Alg. 1) per (instance, arm).

    Pull ``argmax_k x^T mean_{s,k} + rho sqrt(x^T cov_{s,k} x)`` (``rho`` is Li et al.'s ``alpha``
    up to the factor ``sigma_k``); see :class:`_DisjointLinear` for the posterior.
    """

    name = "DisjointLinUCB"

    def _scores(self, task: Tensor, x: Tensor) -> Tensor:
        mean, cov = self.posterior_for(task)
        variance = (x[:, None, None, :] @ cov @ x[:, None, :, None])[..., 0, 0]
        return (mean * x[:, None]).sum(-1) + self.rho * variance.clamp_min(0.0).sqrt()


class _ForcedSamplingBandit(MultiBanditAgent):
    """Forced sampling + forced-sample screening + all-sample choice (Bastani & Bayati 2020, Alg. 1).

    At the instance-local time ``tau`` (this instance's arrival count), arm ``k`` is pulled if
    ``tau`` is in its forced set ``T_k`` (:func:`~hbgym.agents.multi_bandit.forced_arm`). Otherwise
    ``K_hat = {k : x^T beta_F_k >= max_j x^T beta_F_j - h / 2}`` with the forced-sample estimates
    ``beta_F``, and the agent pulls ``argmax_{k in K_hat} x^T beta_A_k`` with the all-sample
    estimates ``beta_A``. Subclasses supply the estimator (:meth:`_estimates`).
    """

    def __init__(self, model: Any, q: int = 1, h: float = 5.0, ridge: float = 1.0, **kwargs: Any) -> None:
        if not isinstance(q, int) or isinstance(q, bool) or q < 1:
            raise ValueError(f"q (forced samples per arm per epoch) must be a positive integer, got {q!r}")
        if not (isinstance(h, (int, float)) and h >= 0 and math.isfinite(h)):
            raise ValueError(f"h (screening gap) must be a finite number >= 0, got {h!r}")
        if not (isinstance(ridge, (int, float)) and ridge >= 0 and math.isfinite(ridge)):
            raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
        self.q, self.h, self.ridge = q, float(h), float(ridge)
        super().__init__(model, **kwargs)

    def _setup(self) -> None:
        super()._setup()
        self.forced_stats = UnitStatistics(self.num_envs, self.num_arms, self.num_instances, self.dim,
                                           device=self.device, dtype=self.dtype)

    def _reset_state(self) -> None:
        super()._reset_state()
        self.forced_stats.reset()

    def _forced(self, task: Tensor) -> Tensor:
        local = self.arrivals[torch.arange(self.num_envs, device=self.device), task] + 1
        return forced_arm(local, self.num_arms, self.q)

    def _estimates(self, stats: UnitStatistics, task: Tensor, which: str) -> Tensor:
        """``(B, K, d)`` arm parameter estimates for the arriving instances ``task`` ``(B,)``."""
        raise NotImplementedError

    def _act(self, obs: dict[str, Tensor]) -> Tensor:
        task, x = self._unpack(obs)
        forced = self._forced(task)
        screen = (self._estimates(self.forced_stats, task, "forced") * x[:, None]).sum(-1)  # (B, K)
        value = (self._estimates(self.stats, task, "all") * x[:, None]).sum(-1)
        keep = screen >= screen.amax(-1, keepdim=True) - self.h / 2
        greedy = torch.where(keep, value, torch.full_like(value, -math.inf)).argmax(-1)
        return torch.where(forced >= 0, forced, greedy)[:, None]

    def _observe(self, task: Tensor, x: Tensor, arm: Tensor, y: Tensor) -> None:
        self.forced_stats.add(arm, task, x, y, mask=self._forced(task) == arm)


class OLSBandit(_ForcedSamplingBandit):
    """OLS Bandit (Goldenshluger & Zeevi 2013; K arms as in Bastani & Bayati 2020), per instance.

    Each instance runs its own copy on its own clock, without sharing: both estimators are
    per-(instance, arm) least squares ``(X^T X + ridge I)^-1 X^T y`` on the forced samples resp. all
    samples of that arm in that instance. Our choices: ``q = 1`` forced sample per arm and epoch and
    screening gap ``h = 5`` (the constants of Bastani & Bayati's simulations; a smaller ``h`` screens
    with the few, shrunk forced-sample estimates and costs regret on MultiBandit-v0), and a
    ``ridge = 1`` penalty so that estimates exist before ``d`` samples (G&Z use plain OLS).

    Args:
        model: MultiBandit public model; q, h, ridge: see above; plus :class:`TorchAgent` kwargs.
    """

    name = "OLSBandit"

    def _estimates(self, stats: UnitStatistics, task: Tensor, which: str) -> Tensor:
        gram, moment = self._gather(stats.gram, task), self._gather(stats.moment, task)
        return least_squares(gram, moment, penalty=self.ridge)


def weighted_median(values: Tensor, weights: Tensor) -> Tensor:
    """Coordinate-wise weighted median over units: values ``(..., U, d)``, weights ``(..., U)``.

    The smallest value whose cumulative weight reaches half the total (the minimiser of
    ``sum_s w_s |v_s - m|``). Where all weights are zero the result is 0. Returns ``(..., d)``.
    """
    v = values.transpose(-1, -2)  # (..., d, U)
    w = weights.unsqueeze(-2).expand_as(v)
    order = v.argsort(-1)
    v_sorted, w_sorted = v.gather(-1, order), w.gather(-1, order)
    cum = w_sorted.cumsum(-1)
    total = cum[..., -1:]
    index = (cum < 0.5 * total).sum(-1, keepdim=True).clamp_max(v.shape[-1] - 1)
    median = v_sorted.gather(-1, index).squeeze(-1)
    return torch.where(total.squeeze(-1) > 0, median, torch.zeros_like(median))


def robust_multitask_estimates(
    gram: Tensor,
    moment: Tensor,
    sq: Tensor,
    counts: Tensor,
    lam: float = 1.0,
    min_obs: int | None = None,
    iterations: int = 100,
    ridge: float = 1.0,
) -> Tensor:
    """Robust multitask estimator (Xu & Bastani 2025, two stages), per arm, batched.

    1. Robust aggregation: ``beta_glob = weighted_median_s(beta_hat_s)`` coordinate-wise over the
       instances with ``n_s >= min_obs`` (default ``d``), weights ``n_s`` (the weighted median of
       Huang et al.'s MOLAR; it minimises ``sum_s n_s ||beta_hat_s - beta||_1``); ``beta_hat_s``
       are ridge estimates (penalty ``ridge``, as in :class:`OLSBandit`).
    2. Debiasing: ``beta_s = beta_glob + delta_s``,
       ``delta_s = argmin (1/2n_s) ||y_s - X_s (beta_glob + delta)||^2 + lam_s ||delta||_1`` with
       ``lam_s = lam * sigma_hat * sqrt(2 log(2d) / n_s)`` (the universal LASSO rate;
       ``sigma_hat`` the arm's pooled residual standard deviation, 1 until estimable), solved by
       FISTA on the sufficient statistics (``iterations`` steps, step ``n_s / lambda_max(G_s)``).

    Args:
        gram ``(..., U, d, d)``, moment ``(..., U, d)``, sq ``(..., U)``, counts ``(..., U)``: raw
        per-instance statistics of one arm (leading dims e.g. ``B x K``).

    Returns:
        ``(..., U, d)`` the per-instance estimates (``beta_glob`` for instances without data).
    """
    d = gram.shape[-1]
    min_obs = d if min_obs is None else min_obs
    n = counts.to(gram.dtype)
    ols = least_squares(gram, moment, penalty=ridge)
    glob = weighted_median(ols, torch.where(n >= min_obs, n, torch.zeros_like(n)))  # (..., d)
    sigma2, _ = pooled_noise_variance(gram, moment, sq, n, least_squares(gram, moment))
    sigma = torch.sqrt(torch.nan_to_num(sigma2, nan=1.0)).unsqueeze(-1)  # (..., 1)
    n_safe = n.clamp_min(1.0)
    lam_s = lam * sigma * torch.sqrt(2.0 * math.log(2 * d) / n_safe)  # (..., U)
    # f(delta) = (delta^T G delta - 2 delta^T r) / (2 n), r = m - G beta_glob
    resid = moment - (gram @ glob.unsqueeze(-2).unsqueeze(-1)).squeeze(-1)
    lipschitz = torch.linalg.eigvalsh(gram)[..., -1] / n_safe
    step = (1.0 / lipschitz.clamp_min(1e-12)).unsqueeze(-1)
    delta = torch.zeros_like(moment)
    z, t = delta, 1.0
    for _ in range(iterations):
        grad = ((gram @ z.unsqueeze(-1)).squeeze(-1) - resid) / n_safe.unsqueeze(-1)
        u = z - step * grad
        new = torch.sign(u) * (u.abs() - step * lam_s.unsqueeze(-1)).clamp_min(0.0)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        z = new + ((t - 1.0) / t_next) * (new - delta)
        delta, t = new, t_next
    delta = torch.where((n > 0).unsqueeze(-1), delta, torch.zeros_like(delta))
    return glob.unsqueeze(-2) + delta


class RMBandit(_ForcedSamplingBandit):
    """RMBandit (Xu & Bastani 2025): forced-sampling bandit with robust multitask estimators.

    Same decision rule as :class:`OLSBandit` (per-instance forced sampling, screening with the
    forced-sample estimates, choice with the all-sample estimates), but each estimator pools all
    instances through :func:`robust_multitask_estimates` (weighted-median global estimate + LASSO
    correction), computed per arm from the forced-sample resp. all-sample statistics of every
    instance. As in Xu & Bastani's batched analysis the estimators are refreshed periodically, every
    ``refit_every`` rounds (default 10; our choice), not every round.

    Args:
        model: MultiBandit public model; q, h: forced-sampling constants (as OLSBandit);
        lam: LASSO penalty constant (1.0); refit_every: rounds between estimator refreshes;
        iterations: FISTA steps per refresh; ridge: stage-1 ridge penalty (1.0); plus
        :class:`TorchAgent` kwargs.
    """

    name = "RMBandit"

    def __init__(self, model: Any, q: int = 1, h: float = 5.0, lam: float = 1.0, refit_every: int = 10,
                 iterations: int = 100, ridge: float = 1.0, **kwargs: Any) -> None:
        if not (isinstance(lam, (int, float)) and lam >= 0 and math.isfinite(lam)):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        for name, value in (("refit_every", refit_every), ("iterations", iterations)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.lam, self.refit_every, self.iterations = float(lam), refit_every, iterations
        super().__init__(model, q=q, h=h, ridge=ridge, **kwargs)

    def _reset_state(self) -> None:
        super()._reset_state()
        self._cache: dict[str, Tensor] = {}
        self._cache_round = -1

    def _refit(self) -> None:
        for which, stats in (("forced", self.forced_stats), ("all", self.stats)):
            self._cache[which] = robust_multitask_estimates(
                stats.gram, stats.moment, stats.sq, stats.counts, lam=self.lam, iterations=self.iterations,
                ridge=self.ridge)
        self._cache_round = self.rounds

    def _estimates(self, stats: UnitStatistics, task: Tensor, which: str) -> Tensor:
        if self._cache_round < 0 or self.rounds - self._cache_round >= self.refit_every:
            self._refit()
        return self._gather(self._cache[which], task)
