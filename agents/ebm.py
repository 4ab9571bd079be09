"""ebmTS and ebmUCB: empirical-Bayes multi-bandit agents (Jiang & Zhu, Empirical Bayesian Multi-Bandit
Learning, 2025, Sec. 4-5) on MultiBandit-v0.

Model (per arm ``k``): ``beta_k ~ N(mu_k, Sigma_q)`` (the env's public hyper-prior),
``beta_{s,k} | beta_k ~ N(beta_k, Sigma_k)`` for instances ``s < M``, rewards
``y = x^T beta_{s,k} + eps``, ``eps ~ N(0, sigma_k^2)``. This IS the two-level model of
:class:`~hbgym.agents.posteriors.gaussian.HierarchicalGaussian` (``psi = beta_k``, units = instances,
``A_u = I``, ``S0_u = Sigma_k``), once per arm: the arms are folded into the batch dimension
(``B * K`` independent two-level posteriors with ``M`` units each). The paper's estimation steps map
onto it exactly:

* Step 1, eq. (4.1): ``beta_{s,k} | beta_k, data`` — ``HierarchicalGaussian.conditional``;
* Step 2: ``beta_k | data of all instances`` — ``hyper_posterior`` (the Woodbury form (4.3) is how
  the core forms each instance's contribution ``(Sigma_k + G_{s,k}^{-1})^{-1}`` with ``d x d``
  algebra only, so the cost never depends on the number of observations);
* Step 3, eq. (4.2): total expectation / variance — ``marginal_posterior``; the predicted reward
  (5.1) is ``x^T mean`` and its uncertainty (5.2) ``sqrt(x^T cov x)``.

Empirical Bayes (Sec. 4.3, :mod:`hbgym.agents.posteriors.empirical_bayes`): ``Sigma_k`` is the
Bickel-Levina thresholded sample covariance of the per-instance least-squares estimates
(threshold by their cross-validation rule, PSD-projected), ``sigma_k^2`` the pooled residual
variance of arm ``k``'s own data, ``bar beta_k`` their mean. Re-estimation schedule: after
``refit_start * 2^j`` rounds (``j = 0, 1, ...``) while that is below ``refit_every``, then every
``refit_every`` rounds. Warm-up: until an arm has ``min_units`` instances with ``min_obs``
observations (resp. ``min_dof`` residual degrees of freedom), its ``Sigma_k`` stays at the initial
``prior_std^2 I`` (resp. ``sigma_k`` at ``noise_std_init``). After each re-estimation the
posterior's prior is replaced (``set_prior``) and its statistics re-weighted by the new
``1 / sigma_k^2`` (``set_statistics`` from the raw statistics) — an exact refresh.

Policies: :class:`EbmTS` samples ``beta_{s,k}`` from the posterior with its spread scaled by
``rho`` (two-stage: ``beta_k`` from the hyper-posterior, then ``beta_{s,k} | beta_k``, which has the
marginal law (4.2)); :class:`EbmUCB` pulls ``argmax_k x^T mean_{s,k} + rho sqrt(x^T cov_{s,k} x)``
(the ReUCB construction of Zhu & Kveton 2022 with the estimated prior). The paper scales the
exploration parameter with time in its experiments but the formula was lost; we use a constant
``rho`` (default 1: exact posterior sampling for ebmTS).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from hbgym.agents.multi_bandit import MultiBanditAgent
from hbgym.agents.posteriors.empirical_bayes import THRESHOLD_RULES, EBPrior, estimate_prior
from hbgym.agents.posteriors.gaussian import HierarchicalGaussian
from torch import Tensor

__all__ = ["EbmTS", "EbmUCB"]


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class _Ebm(MultiBanditAgent):
    """Shared posterior and empirical-Bayes machinery of :class:`EbmTS` and :class:`EbmUCB`.

    Args:
        model: MultiBandit public model (``env.unwrapped.model``).
        rho: exploration scale (posterior spread multiplier for TS, bonus weight for UCB).
        estimate_cov: estimate ``Sigma_k`` by empirical Bayes (False: use the model's ``task_cov``).
        estimate_noise: estimate ``sigma_k`` (False: use the model's ``noise_std``).
        threshold: ``"cv"`` (Bickel & Levina's cross-validation), ``"universal"``, a number, or None.
        num_splits, num_grid, universal_c, debias, min_eig: see
            :func:`~hbgym.agents.posteriors.empirical_bayes.estimate_prior`.
        min_obs: observations for an instance to enter the ``Sigma_k`` estimate (default ``2 d``).
        min_units: instances needed before ``Sigma_k`` is estimated (default 3).
        min_dof: residual degrees of freedom needed before ``sigma_k`` is estimated (default ``2 d``).
        refit_start, refit_every: the re-estimation schedule (defaults 10 and 50 rounds).
        prior_std: initial ``Sigma_k = prior_std^2 I`` before warm-up ends (default 1).
        noise_std_init: initial ``sigma_k`` before warm-up ends (default 1).
        plus :class:`~hbgym.agents.base.TorchAgent` kwargs (num_envs, device, dtype, seed).
    """

    def __init__(
        self,
        model: Any,
        rho: float = 1.0,
        estimate_cov: bool = True,
        estimate_noise: bool = True,
        threshold: str | float | None = "cv",
        num_splits: int = 10,
        num_grid: int = 20,
        universal_c: float = 1.0,
        debias: bool = False,
        min_eig: float = 1e-4,
        min_obs: int | None = None,
        min_units: int = 3,
        min_dof: int | None = None,
        refit_start: int = 10,
        refit_every: int = 50,
        prior_std: float = 1.0,
        noise_std_init: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.rho = _positive("rho", rho, allow_zero=True)
        number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
        if not (threshold is None or threshold in THRESHOLD_RULES or (number and threshold >= 0)):
            raise ValueError(f"threshold={threshold!r} is unknown; allowed: 'cv', 'universal', a number >= 0 "
                             f"or None")
        self.estimate_cov, self.estimate_noise = bool(estimate_cov), bool(estimate_noise)
        self.threshold = threshold
        self.num_splits, self.num_grid = _count("num_splits", num_splits), _count("num_grid", num_grid, 2)
        self.universal_c = _positive("universal_c", universal_c)
        self.debias = bool(debias)
        self.min_eig = _positive("min_eig", min_eig, allow_zero=True)
        self.min_obs = None if min_obs is None else _count("min_obs", min_obs, 2)
        self.min_units = _count("min_units", min_units, 2)
        self.min_dof = None if min_dof is None else _count("min_dof", min_dof)
        self.refit_start = _count("refit_start", refit_start)
        self.refit_every = _count("refit_every", refit_every)
        self.prior_std = _positive("prior_std", prior_std)
        self.noise_std_init = _positive("noise_std_init", noise_std_init)
        super().__init__(model, **kwargs)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        super()._setup()
        B, K, M, d = self.num_envs, self.num_arms, self.num_instances, self.dim
        like = {"device": self.device, "dtype": self.dtype}
        m = self.model
        for attr in ("hyper_mean", "hyper_cov"):
            if not hasattr(m, attr):
                raise ValueError(f"{type(self).__name__} needs the model's {attr} (the prior of beta_k)")
        self._hyper_mean = torch.as_tensor(m.hyper_mean, **like).expand(B, K, d).reshape(B * K, d)
        self._hyper_cov = torch.as_tensor(m.hyper_cov, **like).expand(B, K, d, d).reshape(B * K, d, d)
        eye = torch.eye(d, **like)
        self._init_cov = (self.prior_std**2 * eye).expand(B * K, d, d)
        self._init_noise_var = torch.full((B * K,), self.noise_std_init**2, **like)
        if not self.estimate_cov:
            self._init_cov = torch.as_tensor(m.task_cov, **like).expand(B, K, d, d).reshape(B * K, d, d)
        if not self.estimate_noise:
            noise = torch.as_tensor(m.noise_std, **like).expand(B, K).reshape(B * K)
            self._init_noise_var = noise**2
        self.posterior = HierarchicalGaussian(
            B * K, M, self._hyper_mean, self._hyper_cov, self._unit_covs(self._init_cov), device=self.device,
            dtype=self.dtype)
        self._arm_offset = torch.arange(K, device=self.device)

    def _unit_covs(self, cov: Tensor) -> Tensor:
        """``(B K, d, d)`` per-arm covariances -> the posterior's ``(B K, M, d, d)`` unit table."""
        return cov[:, None].expand(-1, self.num_instances, -1, -1)

    def _reset_state(self) -> None:
        super()._reset_state()
        self.cov = self._init_cov.clone()  # (B K, d, d) current Sigma_k
        self.noise_var = self._init_noise_var.clone()  # (B K,) current sigma_k^2
        self.last_estimate: EBPrior | None = None
        self.num_refits = 0
        self.posterior.reset()
        self.posterior.set_prior(unit_cov=self._unit_covs(self.cov))

    # ------------------------------------------------------------------ schedule

    def _is_refit_round(self, rounds: int) -> bool:
        """After ``rounds`` observations: ``refit_start * 2^j`` below ``refit_every``, then multiples."""
        if not (self.estimate_cov or self.estimate_noise) or rounds < self.refit_start:
            return False
        if rounds % self.refit_every == 0:
            return True
        ratio = rounds // self.refit_start
        return rounds < self.refit_every and rounds % self.refit_start == 0 and ratio & (ratio - 1) == 0

    def refit(self) -> EBPrior:
        """Re-estimate ``Sigma_k`` and ``sigma_k^2`` from all data and refresh the posterior exactly."""
        gram, moment, sq, counts = self.stats.folded()
        est = estimate_prior(
            gram, moment, sq, counts, min_obs=self.min_obs, min_units=self.min_units, min_dof=self.min_dof,
            threshold=self.threshold, num_splits=self.num_splits, num_grid=self.num_grid,
            universal_c=self.universal_c, debias=self.debias, min_eig=self.min_eig,
            noise_var_fallback=self.noise_var, streams=self.streams)
        if self.estimate_cov:
            self.cov = torch.where(est.cov_ready[:, None, None], est.cov, self.cov)
        if self.estimate_noise:
            self.noise_var = torch.where(est.noise_ready, est.noise_var.clamp_min(1e-12), self.noise_var)
        # re-weight the statistics by the new 1 / sigma_k^2, then one exact refresh under the new prior
        weight = (1.0 / self.noise_var)[:, None]
        self.posterior.gram.copy_(gram * weight[..., None, None])
        self.posterior.moment.copy_(moment * weight[..., None])
        self.posterior.set_prior(unit_cov=self._unit_covs(self.cov))
        self.last_estimate = est
        self.num_refits += 1
        return est

    # ------------------------------------------------------------------ data

    def _folded_ids(self, task: Tensor) -> Tensor:
        """Unit ids ``(B K, 1)``: the arriving instance, repeated for each arm."""
        return task.repeat_interleave(self.num_arms)[:, None]

    def _update(self, obs: dict[str, Tensor], action: Tensor, reward: Tensor) -> None:
        task, x = self._unpack(obs)
        super()._update(obs, action, reward)
        K = self.num_arms
        pulled = (action[:, :1] == self._arm_offset).reshape(-1, 1)  # (B K, 1)
        self.posterior.update(
            self._folded_ids(task),
            x.repeat_interleave(K, dim=0)[:, None],
            reward[:, :1].repeat_interleave(K, dim=0),
            noise_var=self.noise_var[:, None],
            mask=pulled,
        )
        if self._is_refit_round(self.rounds):
            self.refit()

    # ------------------------------------------------------------------ posterior views

    def marginal_posterior(self, task: Tensor) -> tuple[Tensor, Tensor]:
        """``beta_{s,k} | all data`` for the arriving instances ``task`` ``(B,)`` (eq. (4.2)).

        Returns mean ``(B, K, d)`` and covariance ``(B, K, d, d)``.
        """
        mean, cov = self.posterior.marginal_posterior(self._folded_ids(task))
        B, K, d = self.num_envs, self.num_arms, self.dim
        return mean.reshape(B, K, d), cov.reshape(B, K, d, d)


class EbmTS(_Ebm):
    """ebmTS (Jiang & Zhu, Sec. 5, Alg. 1): Thompson sampling from the empirical-Bayes posterior.

    Each round: ``beta_k ~ hyper-posterior``, then ``beta_{s_t,k} ~ N(cond. mean, cond. cov)``
    (eq. (4.1)) — jointly a draw from the marginal posterior (4.2) — with deviations from the
    posterior mean scaled by ``rho``; pull ``argmax_k x_t^T beta_{s_t,k}``. See the module docstring
    for the posterior, the empirical-Bayes step and the arguments (:class:`_Ebm`).
    """

    name = "EbmTS"

    def _scores(self, task: Tensor, x: Tensor) -> Tensor:
        post, ids = self.posterior, self._folded_ids(task)
        hyper = post.sample_hyper(self.streams)  # (B K, d)
        if self.rho != 1.0:  # scale the hyper draw's deviation too, so the joint draw is N(m, rho^2 S)
            hyper_mean, _ = post.hyper_posterior()
            hyper = hyper_mean + self.rho * (hyper - hyper_mean)
        theta = post.sample_units(ids, hyper, self.streams, scale=self.rho)  # (B K, 1, d)
        theta = theta.reshape(self.num_envs, self.num_arms, self.dim)
        return (theta * x[:, None]).sum(-1)


class EbmUCB(_Ebm):
    """ebmUCB (Jiang & Zhu, Sec. 5; ReUCB of Zhu & Kveton 2022 with the estimated prior).

    Pull ``argmax_k x_t^T mu_{s_t,k} + rho sqrt(x_t^T Sigma_{s_t,k} x_t)`` with the marginal
    posterior mean and covariance (4.2) — the predicted reward (5.1) plus ``rho`` times its
    uncertainty (5.2). See :class:`_Ebm` for the arguments.
    """

    name = "EbmUCB"

    def _scores(self, task: Tensor, x: Tensor) -> Tensor:
        mean, cov = self.marginal_posterior(task)
        predicted = (mean * x[:, None]).sum(-1)  # (B, K)
        variance = (x[:, None, None, :] @ cov @ x[:, None, :, None])[..., 0, 0]
        return predicted + self.rho * variance.clamp_min(0.0).sqrt()
