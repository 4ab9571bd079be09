"""CoCo bandits (Mukherjee et al., "Co-exploration and co-exploitation"): Thompson sampling (NPM-TS)
and global information-directed sampling (GIDS) on a nonparametric GP log-density meta-prior
(Sec. 3.4, Alg. 1, App. B.9, B.10).

Both agents share one posterior, :class:`~hbgym.agents.posteriors.smc.GPDensitySMC` (particles over the
KL coefficients of :class:`~hbgym.agents.posteriors.gp_density.KroneckerKL`), updated once per round with
the acting users' rewards, and differ only in how they turn it into actions.

Example::

    env = gym.make_vec("PartialContext-v0", num_envs=4, scenario="mixture")
    agent = NPMTS.from_env(env, seed=0)          # or GIDS.from_env(...)
"""

from __future__ import annotations

from typing import Any

import torch
from hbgym.agents.base import TorchAgent
from hbgym.agents.posteriors.gp_density import KroneckerKL
from hbgym.agents.posteriors.smc import GPDensitySMC, log_ndtr_diff

__all__ = ["GIDS", "NPMTS"]


class _CoCoAgent(TorchAgent):
    """Shared set-up of the CoCo agents (hyper-parameters of App. C.5 as defaults).

    Args:
        model: ``PartialContextModel`` (``num_actions``, ``num_tasks``, ``sigma``, ``context_dim=1``).
        num_particles: ``N`` SMC particles (200).
        num_components: ``M`` KL components (80).
        lengthscale: SE kernel lengthscale (0.7).
        mu_grid_size, mu_range: arm-mean grid (20 points on ``[-2, 2]``).
        context_grid_size, context_range: context grid (10 points on ``[-1, 1]``).
        step_size: Langevin step ``eta`` (0.05).
        ess_threshold: ``tau`` (0.5).
        num_mh_steps: Langevin-MH steps per rejuvenation (1; see :mod:`hbgym.agents.posteriors.smc`).
        max_stages: tempering stages per round (5).
    """

    #: seconds per seed on CPU: run by the leaderboard's ``coco`` suite, not by ``--agent all`` elsewhere
    leaderboard_default = False

    def __init__(
        self,
        model: Any,
        num_envs: int = 1,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype | None = None,
        seed: int | None = None,
        num_particles: int = 200,
        num_components: int = 80,
        lengthscale: float = 0.7,
        mu_grid_size: int = 20,
        mu_range: tuple[float, float] = (-2.0, 2.0),
        context_grid_size: int = 10,
        context_range: tuple[float, float] = (-1.0, 1.0),
        step_size: float = 0.05,
        ess_threshold: float = 0.5,
        num_mh_steps: int = 1,
        max_stages: int = 5,
    ) -> None:
        self.hparams = {
            "num_particles": num_particles, "num_components": num_components, "lengthscale": lengthscale,
            "mu_grid_size": mu_grid_size, "mu_range": tuple(mu_range), "context_grid_size": context_grid_size,
            "context_range": tuple(context_range), "step_size": step_size, "ess_threshold": ess_threshold,
            "num_mh_steps": num_mh_steps, "max_stages": max_stages,
        }
        super().__init__(model, num_envs=num_envs, device=device, dtype=dtype, seed=seed)

    def _setup(self) -> None:
        m, hp = self.model, self.hparams
        if getattr(m, "context_dim", 1) != 1:
            raise ValueError(f"CoCo agents need a scalar observed context, got context_dim={m.context_dim}")
        self.kl = KroneckerKL(
            num_actions=m.num_actions, num_components=hp["num_components"], lengthscale=hp["lengthscale"],
            mu_grid_size=hp["mu_grid_size"], mu_range=hp["mu_range"],
            context_grid_size=hp["context_grid_size"], context_range=hp["context_range"],
            device=self.device, dtype=self.dtype,
        )
        grid = self.kl.grid  # (G^K, K)
        best = grid.max(-1, keepdim=True).values
        ties = (grid == best).to(self.dtype)
        #: P(a* = k | mu_g) with ties split evenly, (G^K, K)
        self.best_arm = ties / ties.sum(-1, keepdim=True)
        #: per-grid-point regret of each arm, (G^K, K)
        self.gap = best - grid

    def _reset_state(self) -> None:
        hp = self.hparams
        self.smc = GPDensitySMC(
            self.kl, num_envs=self.num_envs, num_tasks=self.model.num_tasks, sigma=self.model.sigma,
            num_particles=hp["num_particles"], step_size=hp["step_size"], ess_threshold=hp["ess_threshold"],
            num_mh_steps=hp["num_mh_steps"], max_stages=hp["max_stages"], streams=self.streams,
        )

    def _update(self, obs: dict[str, torch.Tensor], action: torch.Tensor, reward: torch.Tensor) -> None:
        self.smc.observe(obs["task"], obs["context"][..., 0], action, reward)

    def _sample_particles(self, L: int) -> torch.Tensor:
        """Particle indices ``(B, L)`` drawn by weight, one per acting user."""
        return self.streams.categorical(self.smc.weights, L)

    def _user_conditionals(self, particles: torch.Tensor, x_obs: torch.Tensor) -> torch.Tensor:
        """``pi_f(mu_g | x_obs)`` ``(B, L, G^K)`` of particles ``(B, L)`` at contexts ``(B, L)``."""
        probs = self.smc.probs
        idx = particles[..., None, None].expand(-1, -1, *probs.shape[2:])
        slices = probs.gather(1, idx)  # (B, L, C, G^K)
        w = self.kl.context_weights(x_obs)
        return torch.einsum("blcg,blc->blg", slices, w)


class NPMTS(_CoCoAgent):
    """NPM-TS: Thompson sampling with the nonparametric meta-prior (Sec. 3.4; App. B.9).

    Per acting user: draw a particle ``s ~ w``, form the user's grid posterior
    ``pi_s(mu_g | x_obs, H_i) ∝ pi_s(mu_g | x_obs) L_i(mu_g)`` (cell-integrated likelihood, see
    :mod:`hbgym.agents.posteriors.smc`), compute ``P(a* = k) = sum_g pi_s(g | ...) 1[argmax_a mu_{g,a} = k]``
    (ties split evenly) and sample the action from it (B.9 steps 1-4).
    """

    name = "NPM-TS"

    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        users = obs["task"]
        B, L = users.shape
        cond = self._user_conditionals(self._sample_particles(L), obs["context"][..., 0])
        post = self.smc.user_posterior(cond, users)  # (B, L, G^K)
        p_best = (post @ self.best_arm).reshape(B * L, -1).clamp_min(0)  # P(a* = k), (B L, K)
        return self.streams.categorical(p_best.reshape(B, L, -1))


def _arm_marginals(post: torch.Tensor, K: int, G: int) -> torch.Tensor:
    """Per-arm marginals ``(B, N, K, G)`` of grid weights ``post`` ``(B, N, G^K)`` (two passes)."""
    B, N = post.shape[:2]
    margs, cur = [], post
    for _ in range(K):
        v = cur.reshape(B, N, -1, G)
        margs.append(v.sum(2))  # marginal of the last remaining arm
        cur = v.sum(-1)
    return torch.stack(margs[::-1], dim=2)


class GIDS(_CoCoAgent):
    """GIDS: global information-directed sampling over the particle weights (Sec. 3.4; App. B.10).

    Per acting user: draw a particle ``s ~ w``; expected regret of each arm under the user's grid
    posterior for ``s``; information gain of each arm = entropy of the particle weights minus the
    expected entropy after a hypothetical reward ``r`` on a reward grid (``2 G`` points spanning the
    arm-mean cells), with ``w'_j ∝ w_j p_j(r | a, x_obs, H_i)`` and ``r ~ p_s(r | a, x_obs, H_i)``
    (cell-integrated Gaussian predictive, normalised over the reward grid). The policy minimises
    ``(sum pi_a Regret_a)^2 / (sum pi_a EIG_a + eps)`` over the simplex; we use the 2-point support
    property of IDS (Russo & Van Roy 2018) and search every pair of arms with the mixing probability
    on a 101-point grid (the paper uses exponentiated gradient; our search is exact up to the grid).

    Args:
        ids_eps: ``eps`` of the ratio (1e-9). Other keyword args as :class:`NPMTS`.
    """

    name = "GIDS"

    def __init__(self, model: Any, *args: Any, ids_eps: float = 1e-9, **kwargs: Any) -> None:
        if not ids_eps > 0:
            raise ValueError(f"ids_eps={ids_eps!r} must be > 0")
        self.ids_eps = float(ids_eps)
        super().__init__(model, *args, **kwargs)

    def _setup(self) -> None:
        super()._setup()
        mu = self.kl.mu_grid
        h = mu[1] - mu[0]
        G = mu.numel()
        self.reward_grid = torch.linspace(float(mu[0] - h), float(mu[-1] + h), 2 * G, device=self.device,
                                          dtype=self.dtype)
        lo, hi = mu - h / 2, mu + h / 2
        s = self.model.sigma
        logp = log_ndtr_diff((lo[:, None] - self.reward_grid) / s, (hi[:, None] - self.reward_grid) / s)
        #: p(r_j | mu in cell g), normalised over the reward grid, (G, R)
        self.reward_lik = torch.softmax(logp, dim=-1)
        q = torch.linspace(0, 1, 101, device=self.device, dtype=self.dtype)
        K = self.model.num_actions
        pairs = torch.cartesian_prod(torch.arange(K, device=self.device), torch.arange(K, device=self.device))
        self._pairs, self._q = pairs, q

    def ids_policy(self, regret: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """Minimiser of ``(pi . regret)^2 / (pi . gain + eps)`` over the simplex, ``(..., K)`` ->
        ``(..., K)`` (support of at most two arms, mixing weight on a 101-point grid)."""
        a, b = self._pairs[:, 0], self._pairs[:, 1]  # (P,)
        q = self._q[:, None]  # (Q, 1)
        reg = q * regret[..., None, a] + (1 - q) * regret[..., None, b]  # (..., Q, P)
        inf = q * gain[..., None, a] + (1 - q) * gain[..., None, b]
        ratio = reg * reg / (inf + self.ids_eps)
        flat = ratio.flatten(-2).argmin(-1)
        qi, pi = flat // a.numel(), flat % a.numel()
        qbest = self._q[qi]
        policy = torch.zeros(regret.shape, dtype=regret.dtype, device=regret.device)
        policy.scatter_add_(-1, a[pi][..., None], qbest[..., None])
        policy.scatter_add_(-1, b[pi][..., None], (1 - qbest)[..., None])
        return policy

    def _act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        users = obs["task"]
        x_obs = obs["context"][..., 0]
        B, L = users.shape
        K, G = self.kl.num_actions, self.kl.mu_grid_size
        sampled = self._sample_particles(L)
        logw = torch.log_softmax(self.smc.log_weights, -1)  # (B, N)
        h0 = -(logw.exp() * logw).sum(-1)  # (B,)
        actions = torch.empty(B, L, dtype=torch.long, device=self.device)
        bidx = torch.arange(B, device=self.device)
        lik, _ = self.smc.scaled(self.smc.user_log_likelihood(users))  # (B, L, G^K)
        lo, t = self.kl.context_cells(x_obs)  # (B, L)
        probs = self.smc.probs
        for slot in range(L):
            # only the two context slices with non-zero interpolation weight (views, no gather copy)
            c0, tt = lo[:, slot].tolist(), t[:, slot]
            post = torch.stack(
                [torch.lerp(probs[b, :, c0[b]], probs[b, :, c0[b] + 1], tt[b]) for b in range(B)])
            post.mul_(lik[:, slot, None])  # (B, N, G^K) unnormalised user posterior of every particle
            marg = _arm_marginals(post, K, G)  # (B, N, K, G), unnormalised
            z = marg[:, :, 0].sum(-1, keepdim=True).clamp_min(torch.finfo(post.dtype).tiny)  # (B, N, 1)
            marg = marg / z[..., None]
            pred = marg @ self.reward_lik  # (B, N, K, R)
            mine = sampled[:, slot]
            regret = (post[bidx, mine] / z[bidx, mine]) @ self.gap  # (B, K)
            new_logw = logw[:, :, None, None] + torch.log(pred.clamp_min(torch.finfo(pred.dtype).tiny))
            new_logw = torch.log_softmax(new_logw, dim=1)
            h_new = -(new_logw.exp() * new_logw).sum(1)  # (B, K, R)
            gain = (h0[:, None] - (pred[bidx, mine] * h_new).sum(-1)).clamp_min(0.0)  # (B, K)
            policy = self.ids_policy(regret, gain)
            actions[:, slot] = self.streams.categorical(policy.clamp_min(0))
        return actions
