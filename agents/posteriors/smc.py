"""Sequential Monte Carlo over the KL coefficients of the GP log-density meta-prior
(Mukherjee et al., CoCo bandits, Sec. 3.2, App. B.7, B.8 and Alg. 2), batched over ``B`` replicates.

State per replicate: ``N`` particles ``theta (B, N, M)`` (standard-normal KL coefficients of
:class:`~hbgym.agents.posteriors.gp_density.KroneckerKL`), log-weights ``(B, N)``, and per-user
sufficient statistics (count, sum and sum of squares of the rewards of each arm) plus the user's
observed context.

**User evidence** (Sec. 3.2 "user history probability"; B.8). The paper estimates
``p(H_i | f) = int prod_t N(r_t | mu_{a_t}, sigma^2) pi_f(mu | x_i) dmu`` with a single ``mu``
sampled from the grid conditional. We compute it **exactly** as a sum over the whole mu-grid (with
a common log-scale per user to keep it finite), which removes the sampling noise from the weights.
Because ``sigma = 0.1`` is smaller than the grid spacing ``h = 4/19 ~ 0.21``, evaluating the
Gaussian likelihood at grid points only would make the evidence depend on where the rewards fall
between grid points (aliasing; after 5 pulls the point likelihood varies by ``e^{2.8}`` across a
cell). We therefore read the grid density as a histogram (``pi_f`` constant on each cell of width
``h`` centred on a grid point) and use the **cell-integrated likelihood**

    ell_a(g) = (1/h) int_{cell g} prod_t N(r_t | mu, sigma^2) dmu
             = C(r) (1/h) [Phi((hi_g - rbar)/s) - Phi((lo_g - rbar)/s)],   s = sigma / sqrt(n_a),

with ``C(r) = (2 pi sigma^2)^{-(n-1)/2} n^{-1/2} exp(-S / (2 sigma^2))``, ``S`` the within-arm sum of
squared deviations. The two edge cells extend to +-infinity (``mu`` beyond the grid is attributed to
the outermost cell). The user likelihood on the grid is ``prod_a ell_a(g_a)``.

**Tempered SMC update** (B.7, Alg. 2). Each call to :meth:`GPDensitySMC.observe` brings one
round of data (one new reward for each acting user). With ``D(theta) = sum_acting [log p(H_i^new |
theta) - log p(H_i^old | theta)]`` the target moves from ``pi_0`` to ``pi_0 exp(D)`` through
``pi_beta = pi_0 exp(beta D)``: per replicate, ``beta`` jumps straight to 1 when the incremented
weights keep ``ESS >= tau N``; otherwise bisection picks the largest ``beta`` with
``ESS = tau N`` (adaptive tempering), the particles are resampled (systematic) and rejuvenated
by ``num_mh_steps`` Langevin proposals ``theta' = theta + (eta/2) grad log pi_beta + sqrt(eta) eps``
with a Metropolis-Hastings correction (gradients by torch autograd). At most ``max_stages`` tempering
stages per round; the last one forces ``beta = 1`` (and resamples when ``ESS < tau N``).
Schedule choice (App. C.5 says "5 SMC rounds per new data point" and "resample every 5 SMC steps or
ESS < N/2"; too costly for our speed target): one update per round of data, rejuvenation only after
an ESS-triggered resampling, ``num_mh_steps`` MALA steps (default 1) per rejuvenation.
"""

from __future__ import annotations

import math

import torch
from hbgym.agents.posteriors.gp_density import KroneckerKL
from hbgym.agents.random import ReplicateStreams

__all__ = [
    "GPDensitySMC",
    "arm_log_likelihood",
    "cell_bounds",
    "effective_sample_size",
    "log_evidence",
    "log_ndtr_diff",
    "systematic_resample",
]


def log_ndtr_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(Phi(b) - Phi(a))`` for ``a < b`` elementwise, stable in both tails."""
    flip = a > 0  # use Phi(b) - Phi(a) = Phi(-a) - Phi(-b) to stay in the lower tail
    lo = torch.where(flip, -b, a)
    hi = torch.where(flip, -a, b)
    la, lb = torch.special.log_ndtr(lo), torch.special.log_ndtr(hi)
    diff = (la - lb).clamp_max(-1e-300)
    return lb + torch.log(-torch.expm1(diff))


def cell_bounds(mu_grid: torch.Tensor, unbounded_edges: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells ``[lo_g, hi_g]`` ``(G,)`` of width ``h`` centred on the grid points (edge cells
    extended to ``-inf`` / ``+inf`` when ``unbounded_edges``)."""
    h = mu_grid[1] - mu_grid[0]
    lo, hi = mu_grid - h / 2, mu_grid + h / 2
    if unbounded_edges:
        lo = lo.clone()
        hi = hi.clone()
        lo[0], hi[-1] = -math.inf, math.inf
    return lo, hi


def arm_log_likelihood(
    count: torch.Tensor, total: torch.Tensor, total_sq: torch.Tensor, mu_grid: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Cell-integrated log-likelihood ``log ell_a(g)`` ``(..., K, G)`` of per-arm reward statistics
    ``count, total, total_sq`` ``(..., K)`` (see the module docstring; 0 for arms never pulled)."""
    h = mu_grid[1] - mu_grid[0]
    lo, hi = cell_bounds(mu_grid)
    n = count.clamp_min(1.0)
    mean = total / n
    s = sigma / n.sqrt()
    ss = (total_sq - total * mean).clamp_min(0.0)
    const = -(n - 1) / 2 * math.log(2 * math.pi * sigma**2) - 0.5 * n.log() - ss / (2 * sigma**2)
    const = const - torch.log(h)
    z_lo = (lo - mean[..., None]) / s[..., None]
    z_hi = (hi - mean[..., None]) / s[..., None]
    out = log_ndtr_diff(z_lo, z_hi) + const[..., None]
    return torch.where(count[..., None] > 0, out, torch.zeros_like(out))


def grid_log_likelihood(arm_loglik: torch.Tensor) -> torch.Tensor:
    """``(..., K, G)`` per-arm log-likelihoods -> ``(..., G^K)`` on the mu-grid (grid order of
    :class:`KroneckerKL`: arm 0 slowest)."""
    K = arm_loglik.shape[-2]
    out = arm_loglik[..., 0, :]
    for a in range(1, K):
        out = (out[..., :, None] + arm_loglik[..., a, None, :]).flatten(-2)
    return out


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    """``1 / sum w^2`` ``(...)`` of (unnormalised) log-weights ``(..., N)``."""
    w = torch.softmax(log_weights, dim=-1)
    return 1.0 / (w * w).sum(-1)


def systematic_resample(
    log_weights: torch.Tensor, streams: ReplicateStreams, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Systematic resampling: indices ``(R, N)`` for log-weights ``(R, N)`` (one uniform per row).

    ``rows`` ``(R,)``: which replicates' streams the rows belong to (None: all ``B``, ``R = B``).
    """
    B, N = log_weights.shape
    w = torch.softmax(log_weights, dim=-1)
    cdf = w.cumsum(-1)
    cdf[:, -1] = 1.0
    u = streams.uniform((1,), w.dtype, rows)
    points = (u + torch.arange(N, dtype=w.dtype, device=w.device)) / N
    return torch.searchsorted(cdf, points).clamp_max(N - 1)


def log_evidence(
    probs: torch.Tensor, lik_scaled: torch.Tensor, log_scale: torch.Tensor, ctx_weights: torch.Tensor
) -> torch.Tensor:
    """``log p(H_u | theta_n)`` ``(B, n, U)`` = ``log sum_c w_uc sum_g pi_c(g) L_u(g)``.

    Args:
        probs: ``(B, n, C, G^K)`` slice conditionals ``pi_c`` of each particle.
        lik_scaled: ``(B, U, G^K)`` user likelihoods on the grid divided by their max.
        log_scale: ``(B, U)`` the log of that max.
        ctx_weights: ``(B, U, C)`` context interpolation weights.
    """
    B, n, C, G = probs.shape
    per_slice = torch.bmm(probs.reshape(B, n * C, G), lik_scaled.transpose(1, 2)).reshape(B, n, C, -1)
    ev = torch.einsum("bncu,buc->bnu", per_slice, ctx_weights)
    return torch.log(ev.clamp_min(torch.finfo(ev.dtype).tiny)) + log_scale[:, None, :]


class GPDensitySMC:
    """Particle posterior over GP log-densities ``Q_t(f)`` for ``B`` replicates (see module doc).

    Args:
        kl: the :class:`KroneckerKL` basis (its device and dtype are used).
        num_envs: ``B``.
        num_tasks: number of user ids (statistics are kept per id).
        sigma: reward noise standard deviation.
        num_particles: ``N`` (App. C.5: 200).
        step_size: Langevin step ``eta`` (App. C.5: 0.05).
        ess_threshold: ``tau`` (resample when ``ESS < tau N``; App. C.5: 0.5).
        num_mh_steps: Langevin-MH steps per rejuvenation.
        max_stages: cap on tempering stages per round.
        chunk_size: particles per autograd evaluation (bounds memory).
        streams: per-replicate random streams for every draw (None: a stream of seed 0 per replicate).

    Attributes:
        theta ``(B, N, M)``, log_weights ``(B, N)``, count/total/total_sq ``(B, U, K)``,
        context ``(B, U)``, probs ``(B, N, C, G^K)`` (cached slice conditionals of the particles),
        stats (counters of stages, resamplings, proposals and acceptances).
    """

    def __init__(
        self,
        kl: KroneckerKL,
        num_envs: int,
        num_tasks: int,
        sigma: float,
        num_particles: int = 200,
        step_size: float = 0.05,
        ess_threshold: float = 0.5,
        num_mh_steps: int = 1,
        max_stages: int = 5,
        chunk_size: int | None = None,
        streams: ReplicateStreams | None = None,
    ) -> None:
        if int(num_particles) != num_particles or num_particles < 2:
            raise ValueError(f"num_particles={num_particles!r} must be an integer >= 2")
        if not step_size > 0:
            raise ValueError(f"step_size={step_size!r} must be > 0")
        if not 0 < ess_threshold <= 1:
            raise ValueError(f"ess_threshold={ess_threshold!r} must be in (0, 1]")
        if int(num_mh_steps) != num_mh_steps or num_mh_steps < 0:
            raise ValueError(f"num_mh_steps={num_mh_steps!r} must be an integer >= 0")
        if int(max_stages) != max_stages or max_stages < 1:
            raise ValueError(f"max_stages={max_stages!r} must be an integer >= 1")
        if not sigma > 0:
            raise ValueError(f"sigma={sigma!r} must be > 0")
        self.kl = kl
        self.num_envs, self.num_tasks = int(num_envs), int(num_tasks)
        self.sigma = float(sigma)
        self.num_particles = int(num_particles)
        self.step_size = float(step_size)
        self.ess_threshold = float(ess_threshold)
        self.num_mh_steps = int(num_mh_steps)
        self.max_stages = int(max_stages)
        grid_cells = kl.num_slices * kl.num_grid
        default_chunk = min(self.num_particles, 2_000_000 // (num_envs * grid_cells) + 1)
        self.chunk_size = int(chunk_size or max(1, default_chunk))
        self._kw = {"device": kl.mu_grid.device, "dtype": kl.mu_grid.dtype}
        if streams is None:
            streams = ReplicateStreams(self.num_envs, self._kw["device"])
            streams.seed(0)
        if streams.num_envs != self.num_envs:
            raise ValueError(f"streams has {streams.num_envs} replicates but num_envs={self.num_envs}")
        self.streams = streams
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Particles from the prior ``theta ~ N(0, I)``, uniform weights, no data."""
        B, N, M, K = self.num_envs, self.num_particles, self.kl.num_components, self.kl.num_actions
        self.theta = self.streams.normal((N, M), self._kw["dtype"])
        self.log_weights = torch.full((B, N), -math.log(N), **self._kw)
        self.count = torch.zeros(B, self.num_tasks, K, **self._kw)
        self.total = torch.zeros_like(self.count)
        self.total_sq = torch.zeros_like(self.count)
        self.context = torch.zeros(B, self.num_tasks, **self._kw)
        self.has_data = torch.zeros(self.num_tasks, dtype=torch.bool, device=self._kw["device"])
        self._fill_probs()
        self.stats = {"rounds": 0, "stages": 0, "resampled": 0, "proposals": 0, "accepted": 0}

    def _fill_probs(self, rows: torch.Tensor | None = None) -> None:
        """Recompute the cached slice conditionals (in place, chunked) of replicates ``rows``."""
        if rows is None:
            shape = self.theta.shape[:2] + (self.kl.num_slices, self.kl.num_grid)
            self.probs = torch.empty(shape, **self._kw)
            rows = torch.arange(self.num_envs, device=self.theta.device)
        full = rows.numel() == self.num_envs
        for i in range(0, self.num_particles, self.chunk_size):
            th = self.theta[:, i : i + self.chunk_size] if full else self.theta[rows, i : i + self.chunk_size]
            p = torch.softmax(self.kl.log_density(th), dim=-1)
            if full:
                self.probs[:, i : i + self.chunk_size] = p
            else:
                self.probs[rows, i : i + self.chunk_size] = p

    @property
    def weights(self) -> torch.Tensor:
        """Normalised particle weights ``(B, N)``."""
        return torch.softmax(self.log_weights, dim=-1)

    def ess(self) -> torch.Tensor:
        """Effective sample size ``(B,)``."""
        return effective_sample_size(self.log_weights)

    def user_log_likelihood(self, users: torch.Tensor) -> torch.Tensor:
        """Log-likelihood on the mu-grid ``(B, L, G^K)`` of the histories of ``users`` ``(B, L)``."""
        idx = users[..., None].expand(-1, -1, self.kl.num_actions)
        arm = arm_log_likelihood(self.count.gather(1, idx), self.total.gather(1, idx),
                                 self.total_sq.gather(1, idx), self.kl.mu_grid, self.sigma)
        return grid_log_likelihood(arm)

    def scaled(self, loglik: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(exp(loglik - max), max)``: likelihoods ``(..., G^K)`` scaled by their max ``(...)``."""
        scale = loglik.amax(-1)
        return torch.exp(loglik - scale[..., None]), scale

    def user_posterior(self, probs_users: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Grid posterior ``pi(mu_g | x_i, H_i)`` ``(B, L, ..., G^K)`` from per-user grid conditionals
        ``probs_users`` ``(B, L, ..., G^K)`` and the histories of ``users`` ``(B, L)``."""
        loglik = self.user_log_likelihood(users)
        extra = probs_users.dim() - 3
        loglik = loglik.reshape(loglik.shape[:2] + (1,) * extra + loglik.shape[-1:])
        logp = torch.log(probs_users.clamp_min(torch.finfo(probs_users.dtype).tiny)) + loglik
        return torch.softmax(logp, dim=-1)

    # ------------------------------------------------------------------ SMC update

    def observe(
        self, users: torch.Tensor, x_obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor
    ) -> None:
        """One round of data: ``users, actions`` ``(B, L)`` int, ``x_obs, rewards`` ``(B, L)``.

        Users must be distinct within a row (one new reward per user per round).
        """
        B, L = users.shape
        srt = users.sort(dim=1).values
        if L > 1 and bool((srt[:, 1:] == srt[:, :-1]).any()):
            raise ValueError("users must be distinct within each replicate's round")
        if bool((users < 0).any()) or bool((users >= self.num_tasks).any()):
            raise ValueError(f"user ids must be in [0, {self.num_tasks - 1}]")
        if bool((actions < 0).any()) or bool((actions >= self.kl.num_actions).any()):
            raise ValueError(f"actions must be in [0, {self.kl.num_actions - 1}]")
        old = self.user_log_likelihood(users)
        bidx = torch.arange(B, device=users.device)[:, None].expand(B, L)
        self.count[bidx, users, actions] += 1
        self.total[bidx, users, actions] += rewards
        self.total_sq[bidx, users, actions] += rewards * rewards
        self.context[bidx, users] = x_obs.to(self.context.dtype)
        new = self.user_log_likelihood(users)
        self.has_data[users.reshape(-1)] = True
        self._tempered_update(users, old, new)

    def _round_data(
        self, users: torch.Tensor, old: torch.Tensor, new: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Stacked likelihoods of all users with data (coefficient 1, acting ones excluded: they
        enter through ``new`` and ``old`` pseudo-users with coefficients ``beta`` and ``1 - beta``)."""
        B, L = users.shape
        seen = self.has_data.nonzero().squeeze(-1)
        others = seen[None, :].expand(B, -1)
        acting = (others[:, :, None] == users[:, None, :]).any(-1)  # (B, S)
        lik_o, scale_o = self.scaled(self.user_log_likelihood(others))
        lik_n, scale_n = self.scaled(new)
        lik_p, scale_p = self.scaled(old)
        ctx = self.kl.context_weights
        w_o = ctx(self.context.gather(1, others))
        w_a = ctx(self.context.gather(1, users))
        return {
            "lik": torch.cat([lik_o, lik_n, lik_p], 1),
            "scale": torch.cat([scale_o, scale_n, scale_p], 1),
            "ctx": torch.cat([w_o, w_a, w_a], 1),
            "base_coef": torch.cat([(~acting).to(lik_o.dtype), torch.zeros(B, 2 * L, **self._kw)], 1),
            "new_mask": torch.cat([torch.zeros_like(acting, dtype=lik_o.dtype), torch.ones(B, L, **self._kw),
                                   torch.zeros(B, L, **self._kw)], 1),
            "old_mask": torch.cat([torch.zeros_like(acting, dtype=lik_o.dtype), torch.zeros(B, L, **self._kw),
                                   torch.ones(B, L, **self._kw)], 1),
        }

    def _tempered_update(self, users: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> None:
        B, N = self.log_weights.shape
        L = users.shape[1]
        lik, scale = self.scaled(torch.cat([new, old], 1))
        w_a = self.kl.context_weights(self.context.gather(1, users))
        ev = log_evidence(self.probs, lik, scale, torch.cat([w_a, w_a], 1))
        delta = (ev[..., :L] - ev[..., L:]).sum(-1)
        beta = torch.zeros(B, **self._kw)
        target = self.ess_threshold * N
        data: dict[str, torch.Tensor] | None = None
        self.stats["rounds"] += 1
        for stage in range(self.max_stages):
            active = beta < 1
            if not bool(active.any()):
                break
            self.stats["stages"] += 1
            full = effective_sample_size(self.log_weights + (1 - beta)[:, None] * delta) >= target
            last = stage == self.max_stages - 1
            nb = torch.ones_like(beta) if last else torch.where(
                full, torch.ones_like(beta), self._bisect(beta, delta, target))
            nb = torch.where(active, nb, beta)
            self.log_weights = self.log_weights + (nb - beta)[:, None] * delta
            self.log_weights = self.log_weights - torch.logsumexp(self.log_weights, -1, keepdim=True)
            beta = nb
            # resample + move after a bisected (ESS = tau N) stage, or when even beta = 1 left ESS < tau N
            bisected = active & ~full if not last else torch.zeros_like(active)
            move = bisected | (active & (effective_sample_size(self.log_weights) < target))
            if not bool(move.any()):
                continue
            rows = move.nonzero().squeeze(-1)
            idx = systematic_resample(self.log_weights[rows], self.streams, rows)
            self.stats["resampled"] += int(rows.numel())
            self.theta[rows] = self.theta[rows].gather(1, idx[..., None].expand(-1, -1, self.theta.shape[-1]))
            delta[rows] = delta[rows].gather(1, idx)
            self.log_weights[rows] = -math.log(N)
            if self.num_mh_steps > 0:
                if data is None:
                    data = self._round_data(users, old, new)
                sub = {k: v[rows] for k, v in data.items()}
                theta, d = self._rejuvenate(self.theta[rows], beta[rows], sub, rows)
                self.theta[rows], delta[rows] = theta, d
            else:
                self.probs[rows] = self.probs[rows].gather(
                    1, idx[..., None, None].expand(-1, -1, *self.probs.shape[2:]))
                continue
            self._fill_probs(rows)

    def _bisect(
        self, beta: torch.Tensor, delta: torch.Tensor, target: float, iters: int = 40
    ) -> torch.Tensor:
        lo, hi = beta.clone(), torch.ones_like(beta)
        for _ in range(iters):
            mid = (lo + hi) / 2
            ok = effective_sample_size(self.log_weights + (mid - beta)[:, None] * delta) >= target
            lo = torch.where(ok, mid, lo)
            hi = torch.where(ok, hi, mid)
        # always make progress (a degenerate delta could keep lo at beta)
        return torch.maximum(lo, beta + 1e-6).clamp_max(1.0)

    def log_target(
        self, theta: torch.Tensor, beta: torch.Tensor, data: dict[str, torch.Tensor], grad: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Tempered log-target ``log pi_beta(theta)`` ``(b, n)``, its gradient ``(b, n, M)`` (torch
        autograd) and the increment ``D(theta)`` ``(b, n)``, evaluated in particle chunks of
        :attr:`chunk_size`."""
        lps, grads, deltas = [], [], []
        coef_new = data["new_mask"] * beta[:, None]
        coef = data["base_coef"] + coef_new + data["old_mask"] * (1 - beta)[:, None]
        for i in range(0, theta.shape[1], self.chunk_size):
            th = theta[:, i : i + self.chunk_size].detach().requires_grad_(grad)
            with torch.enable_grad():
                p = torch.softmax(self.kl.log_density(th), dim=-1)
                ll = log_evidence(p, data["lik"], data["scale"], data["ctx"])
                lp = -0.5 * (th * th).sum(-1) + (ll * coef[:, None, :]).sum(-1)
                if grad:
                    grads.append(torch.autograd.grad(lp.sum(), th)[0])
            lps.append(lp.detach())
            deltas.append((ll.detach() * (data["new_mask"] - data["old_mask"])[:, None, :]).sum(-1))
        g = torch.cat(grads, 1) if grad else None
        return torch.cat(lps, 1), g, torch.cat(deltas, 1)

    def _rejuvenate(
        self, theta: torch.Tensor, beta: torch.Tensor, data: dict[str, torch.Tensor],
        rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``num_mh_steps`` Langevin-MH (MALA) steps targeting ``pi_beta`` (B.7; Alg. 2 l. 25-28) for
        the replicates ``rows`` ``(R,)`` (``theta`` ``(R, N, M)``; None: all ``B``)."""
        eta = self.step_size
        lp, g, d = self.log_target(theta, beta, data)
        for _ in range(self.num_mh_steps):
            noise = self.streams.normal(theta.shape[1:], theta.dtype, rows)
            prop = theta + 0.5 * eta * g + math.sqrt(eta) * noise
            lp2, g2, d2 = self.log_target(prop, beta, data)
            fwd = -((prop - theta - 0.5 * eta * g) ** 2).sum(-1) / (2 * eta)
            bwd = -((theta - prop - 0.5 * eta * g2) ** 2).sum(-1) / (2 * eta)
            log_alpha = lp2 - lp + bwd - fwd
            u = self.streams.uniform(log_alpha.shape[1:], log_alpha.dtype, rows)
            acc = torch.log(u) < log_alpha
            self.stats["proposals"] += acc.numel()
            self.stats["accepted"] += int(acc.sum())
            theta = torch.where(acc[..., None], prop, theta)
            g = torch.where(acc[..., None], g2, g)
            lp = torch.where(acc, lp2, lp)
            d = torch.where(acc, d2, d)
        return theta, d
