"""The one two-level Gaussian posterior behind HierTS, meTS, ebmTS, MTTS, HierOPO and their baselines.

Model (``B`` independent replicates, each with ``U`` units)::

    psi ~ N(mu_psi, S_psi)                              hyper-parameter, dim D
    theta_u | psi ~ N(A_u psi, S0_u)                    unit parameter, dim d, u < U
    y = x^T theta_u + eps,  eps ~ N(0, noise_var)       observations of unit u

HierTS (Hong et al. 2022, eq. (2)) is ``A_u = I`` with units = tasks; meTS (Aouali et al. 2023) is
``A_i = b_i^T (x) I_d`` with units = actions and psi the stacked effects; MTTS (Wan et al. 2021) is
``A_u = Phi_u``; ebm (Jiang & Zhu) has units = (instance, arm).

Per-unit sufficient statistics ``G_u = sum x x^T / noise_var`` and ``b_u = sum x y / noise_var``.
With ``S0_u = L0 L0^T`` (any square-root factor, so singular priors work) and the always SPD
``C_u = I + L0^T G_u L0``, every formula below is safe for singular ``G_u`` (units without data):

* hyper-posterior, HierTS eq. (5) generalised: precision
  ``Lambda = S_psi^{-1} + sum_u A_u^T P_u A_u`` and ``Lambda mu_bar = S_psi^{-1} mu_psi +
  sum_u A_u^T q_u`` where ``P_u = (S0_u + G_u^{-1})^{-1} = G_u - W^T C^{-1} W`` and
  ``q_u = (S0_u + G_u^{-1})^{-1} G_u^{-1} b_u = b_u - W^T C^{-1} L0^T b_u`` with ``W = L0^T G_u``
  (Woodbury; no inverse of G_u or S0_u is ever formed);
* conditional, HierTS eq. (6): ``theta_u | psi, data ~ N(A psi + S~ (b - G A psi), S~)`` with
  ``S~ = (S0^{-1} + G)^{-1} = L0 C^{-1} L0^T``;
* marginal given all data, HierTS eq. (8) (total covariance): with ``M = I - S~ G``,
  mean ``M A mu_bar + S~ b`` and covariance ``S~ + M A S_bar A^T M^T``.

The hyper-posterior precision and its linear term are running sums of the per-unit contributions
``(P_u, q_u)``: an update recomputes the contributions of the touched units only and adds the
difference (never a loop over all units), with an exact recomputation of the sums every
``refresh_every`` updates to stop floating-point drift.

:class:`DiagonalHierarchicalGaussian` is the K-armed fast path (HierTS Sec. 4.1, eqs. (3)-(4)):
one-hot features, diagonal covariances, everything elementwise.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from hbgym.agents.posteriors.linalg import psd_factor, robust_cholesky, sample_precision_normal, symmetrize
from hbgym.agents.random import ReplicateStreams

__all__ = ["HierarchicalGaussian", "DiagonalHierarchicalGaussian"]


def _as_tensor(value: Any, like: dict[str, Any]) -> torch.Tensor:
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = value.copy()
    return torch.as_tensor(value, **like)


def _take(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows of a per-(replicate, unit) table for unit ids ``(B, n)``.

    ``table`` has shape ``(B or 1, U or 1, ...)`` (size-1 dims broadcast); returns ``(B, n, ...)``.
    """
    num_envs, n = ids.shape
    tail = table.shape[2:]
    if table.shape[1] == 1:
        return table[:, :1].expand(num_envs, n, *tail)
    if table.shape[0] == 1:
        return table[0][ids]
    rows = torch.arange(num_envs, device=ids.device)[:, None]
    return table[rows, ids]


def _as_ids(unit_ids: torch.Tensor | None) -> torch.Tensor | None:
    """Unit ids as long ``(B, n)``; None stands for all units ``0..U-1`` in order (no gather)."""
    return None if unit_ids is None else unit_ids.long()


class _UnitTables:
    """Gathers rows of per-(replicate, unit) tables; ``ids=None`` takes every unit without a copy."""

    num_envs: int
    num_units: int

    _like: dict[str, Any]

    def _weights(
        self, rewards: torch.Tensor, noise_var: float | torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Observation weights ``1 / noise_var`` ``(B, n)``, zero where ``mask`` is False."""
        if isinstance(noise_var, (int, float)):
            weight = torch.full_like(rewards, 1.0 / noise_var)
        else:
            weight = torch.ones_like(rewards) / _as_tensor(noise_var, self._like)
        return weight if mask is None else weight * mask.to(weight.dtype)

    def _flat(self, ids: torch.Tensor) -> torch.Tensor:
        """Row indices ``b * U + u`` of ``(B, n)`` unit ids into ``(B * U, ...)`` views of the tables."""
        if self.num_envs == 1:
            return ids.reshape(-1)
        return (self._row_starts + ids).reshape(-1)

    @functools.cached_property
    def _row_starts(self) -> torch.Tensor:
        """``b * U`` ``(B, 1)`` long on the tables' device, built once."""
        return torch.arange(self.num_envs, device=self._like["device"])[:, None] * self.num_units

    @functools.cached_property
    def _shared_views(self) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
        """(id(table), n) -> (table, its row broadcast to ``(B n, ...)``) for tables shared by every unit
        and replicate (a view costs a few us at B = 1; it stays valid when its table is written in
        place, and a replaced table, told apart by identity, gets a new one)."""
        return {}

    def _take(self, table: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        if ids is None:
            return table.expand(self.num_envs, self.num_units, *table.shape[2:])
        return _take(table, ids)

    def _rows(self, table: torch.Tensor, ids: torch.Tensor | None, flat: torch.Tensor | None) -> torch.Tensor:
        """:meth:`_take` with the (replicate, unit) dims flattened: ``(B n, ...)``, the batch layout of
        ``torch.bmm`` (a third of the cost of ``@`` on tiny matrices); ``flat``: :meth:`_flat` of ``ids``."""
        tail = table.shape[2:]
        if table.shape[0] == table.shape[1] == 1:  # shared: a view, built once per (table, n)
            n = self.num_units if ids is None else ids.shape[1]
            cached = self._shared_views.get((id(table), n))
            if cached is None or cached[0] is not table:
                view = table[0, 0].expand(self.num_envs * n, *tail)
                cached = self._shared_views[id(table), n] = (table, view)
            return cached[1]
        if ids is None or table.shape[1] == 1:
            return self._take(table, ids).reshape(-1, *tail)
        if table.shape[0] == 1:
            return table[0].index_select(0, ids.reshape(-1))
        return table.reshape(-1, *tail).index_select(0, flat)


def _first_occurrence(ids: torch.Tensor, dtype: torch.dtype = torch.bool) -> torch.Tensor | None:
    """``(B, n)``: True (1) where ``ids[b, j]`` does not occur in ``ids[b, :j]``, as ``dtype``; None
    when every entry is a first occurrence (no unit repeats within a row)."""
    n = ids.shape[1]
    if n == 1:
        return None
    if ids.device.type == "cpu" and ids.numel() <= 256:  # a few ids: Python beats a dozen torch ops
        rows = ids.tolist()
        if all(len(set(row)) == n for row in rows):
            return None
        mask = np.array([[row.index(u) == j for j, u in enumerate(row)] for row in rows])
        return torch.from_numpy(mask).to(dtype)  # (torch.tensor of nested lists: ~5x the time)
    same = ids[:, :, None] == ids[:, None, :]
    earlier = torch.ones(n, n, dtype=torch.bool, device=ids.device).tril(-1)
    return (~(same & earlier).any(-1)).to(dtype)


class HierarchicalGaussian(_UnitTables):
    """B independent copies of the two-level Gaussian model (see the module docstring).

    Args:
        num_envs: ``B``.
        num_units: ``U``.
        hyper_mean: ``(D,)`` or ``(B, D)`` mu_psi.
        hyper_cov: ``(D, D)`` or ``(B, D, D)`` S_psi (positive definite when ``learn_hyper``).
        unit_cov: ``(d, d)``, ``(U, d, d)`` or ``(B, U, d, d)`` S0_u (PSD; may be singular).
        mixing: None (``A_u = I``, needs ``D == d``), ``(U, d, D)`` or ``(B, U, d, D)``.
        learn_hyper: False skips the hyper-posterior bookkeeping (flat, oracle and independent
            per-unit agents, which call :meth:`conditional` with a fixed psi).
        refresh_every: exact recomputation of the running sums every this many updates.
        device, dtype: torch device and dtype (float64 by default).
    """

    def __init__(
        self,
        num_envs: int,
        num_units: int,
        hyper_mean: Any,
        hyper_cov: Any,
        unit_cov: Any,
        mixing: Any = None,
        learn_hyper: bool = True,
        refresh_every: int = 1000,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.num_envs, self.num_units = int(num_envs), int(num_units)
        self.learn_hyper = learn_hyper
        self.refresh_every = int(refresh_every)
        self._like = {"device": torch.device(device or "cpu"), "dtype": dtype or torch.float64}
        self.mixing = None if mixing is None else self._table(mixing, 4, "mixing")
        self._set_hyper_prior(hyper_mean, hyper_cov)
        self.unit_dim = self.hyper_dim if self.mixing is None else self.mixing.shape[-2]
        if self.mixing is not None and self.mixing.shape[-1] != self.hyper_dim:
            raise ValueError(f"mixing must have last dim D={self.hyper_dim}, got {tuple(self.mixing.shape)}")
        self._set_unit_prior(unit_cov)
        self._eye = torch.eye(self.unit_dim, **self._like)
        self._rhs: torch.Tensor | None = None  # see _draw_rhs
        self._rhs_hyper: tuple[torch.Tensor, int] | None = None  # the psi in _rhs and its version
        self.reset()

    # ------------------------------------------------------------------ construction helpers

    def _table(self, value: Any, ndim: int, name: str) -> torch.Tensor:
        """A per-(replicate, unit) table with ``ndim`` dims, size-1 leading dims allowed."""
        t = _as_tensor(value, self._like)
        while t.ndim < ndim:
            t = t[None]
        if t.ndim != ndim or t.shape[0] not in (1, self.num_envs) or t.shape[1] not in (1, self.num_units):
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}; expected (..., d, d) with leading dims "
                f"(B={self.num_envs} or 1, U={self.num_units} or 1)"
            )
        return t

    def _set_hyper_prior(self, hyper_mean: Any, hyper_cov: Any) -> None:
        mean = _as_tensor(hyper_mean, self._like)
        cov = _as_tensor(hyper_cov, self._like)
        self.hyper_dim = mean.shape[-1]
        self.hyper_mean = mean.expand(self.num_envs, self.hyper_dim).clone()
        cov = cov.expand(self.num_envs, self.hyper_dim, self.hyper_dim)
        if self.learn_hyper:
            factor = robust_cholesky(symmetrize(cov))
            precision = torch.cholesky_inverse(factor)
        else:
            precision = torch.zeros_like(cov)
        self.hyper_cov = cov.clone()
        # [S_psi^{-1} | S_psi^{-1} mu_psi] (B, D, D + 1), packed like the running sums
        self._prior = torch.cat([precision, precision @ self.hyper_mean[..., None]], dim=-1)

    def _set_unit_prior(self, unit_cov: Any) -> None:
        cov = self._table(unit_cov, 4, "unit_cov")
        if cov.shape[-1] != self.unit_dim:
            raise ValueError(f"unit_cov must be {self.unit_dim}x{self.unit_dim}, got {tuple(cov.shape)}")
        self.unit_cov = cov
        self.__dict__.pop("_shared_views", None)  # views of the old factors
        self._unit_factor = psd_factor(symmetrize(cov))  # L0
        self._unit_factor_t = self._unit_factor.mT.contiguous()  # L0^T

    def reset(self) -> None:
        """Forget all observations."""
        B, U, d, D = self.num_envs, self.num_units, self.unit_dim, self.hyper_dim
        self.stats = torch.zeros(B, U, d, d + 1, **self._like)  # [G_u | b_u]: one gather, one scatter
        self._sums = torch.zeros(B, D, D + 1, **self._like)  # [sum A^T P A | sum A^T q]
        self._num_updates = 0
        self._refresh_all()

    @property
    def gram(self) -> torch.Tensor:
        """``G_u`` ``(B, U, d, d)``: a view of :attr:`stats` (writable in place)."""
        return self.stats[..., :-1]

    @property
    def moment(self) -> torch.Tensor:
        """``b_u`` ``(B, U, d)``: a view of :attr:`stats` (writable in place)."""
        return self.stats[..., -1]

    # ------------------------------------------------------------------ per-unit algebra

    def _mixing_rows(self, ids: torch.Tensor | None, flat: torch.Tensor | None) -> torch.Tensor | None:
        """``A_u`` ``(B n, d, D)`` of units ``ids`` (``flat``: see :meth:`_unit_cache`); None when ``A_u = I``
        (no mixing)."""
        return None if self.mixing is None else self._rows(self.mixing, ids, flat)

    def _unit_cache(
        self, ids: torch.Tensor | None, flat: torch.Tensor | None, mixing: torch.Tensor | None
    ) -> torch.Tensor:
        """Everything a unit's posterior needs, from its statistics (B, n units at a time; ``flat`` is
        :meth:`_flat` of ``ids``, None for every unit; ``mixing``: their :meth:`_mixing_rows`).

        Returns the packed per-unit cache ``(B n, d, 3 d + D + 2)`` (see :meth:`_unpack`): ``P_u``
        and ``q_u`` (side by side, so that one slice lifts both into the hyper-posterior sums), the
        conditional covariance ``S~_u = L0 C^{-1} L0^T``, its square-root factor ``L0 C^{-T/2}``, the
        shrinkage times the mixing matrix ``M_u A_u`` with ``M_u = I - S~_u G_u`` and ``S~_u b_u``.
        With them the conditional mean given psi is ``M_u A_u psi + S~_u b_u``. Without a
        hyper-posterior (``learn_hyper=False``) the ``[P | q]`` slot holds ``[G | b]`` (never read).
        """
        stats = self._rows(self.stats, ids, flat)  # [G | b] (B n, d, d + 1)
        d = self.unit_dim
        gram = stats[:, :, :d]
        factor_t = self._rows(self._unit_factor_t, ids, flat)  # L0^T
        w = torch.bmm(factor_t, gram)  # W = L0^T G
        # C = I + L0^T G L0 (Cholesky reads its lower triangle only: no symmetrisation needed)
        chol_c = robust_cholesky(torch.baddbmm(self._eye, w, self._rows(self._unit_factor, ids, flat)))
        half = torch.linalg.solve_triangular(chol_c, factor_t, upper=False)  # C^{-1/2} L0^T
        cond_factor = half.mT
        cond_cov = torch.bmm(cond_factor, half)  # S~ = L0 C^{-1} L0^T
        # Woodbury: W^T C^{-1} W = G S~ G and W^T C^{-1} L0^T b = G S~ b; two products give all four
        s_rhs = torch.bmm(cond_cov, stats)  # [S~ G | S~ b]
        shrink = self._eye - s_rhs[:, :, :d]  # M = I - S~ G
        if mixing is not None:
            shrink = torch.bmm(shrink, mixing)  # M A
        if self.learn_hyper:
            woodbury = torch.baddbmm(stats, gram, s_rhs, alpha=-1.0)  # [G - G S~ G | b - G S~ b] = [P | q]
            pq = [symmetrize(woodbury[:, :, :d]), woodbury[:, :, d:]]
        else:  # no hyper-posterior: the [P | q] slot is never read (it holds [G | b])
            pq = [stats]
        return torch.cat([*pq, cond_cov, cond_factor, shrink, s_rhs[:, :, d:]], dim=-1)

    def _unpack(self, packed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Views ``[P | q]`` ``(..., d, d + 1)``, ``S~`` and ``F`` ``(..., d, d)``, ``M A`` ``(..., d, D)``
        and ``S~ b`` ``(..., d)`` of a packed cache."""
        d = self.unit_dim
        return (
            packed[..., : d + 1], packed[..., d + 1 : 2 * d + 1], packed[..., 2 * d + 1 : 3 * d + 1],
            packed[..., 3 * d + 1 : -1], packed[..., -1],
        )

    def _lift(self, pq: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
        """``[sum_u A^T P A | sum_u A^T q]`` ``(B, D, D + 1)`` of per-unit ``[P | q]`` ``pq``
        ``(B n, d, d + 1)`` with their ``A_u`` ``a`` (:meth:`_mixing_rows`), summed per replicate."""
        d = self.unit_dim
        if a is None:
            lifted = pq
        else:
            lifted = torch.bmm(a.mT, pq)  # [A^T P | A^T q]
            lifted = torch.cat([torch.bmm(lifted[:, :, :d], a), lifted[:, :, d:]], dim=-1)
        lifted = lifted.view(self.num_envs, -1, *lifted.shape[1:])
        if lifted.shape[1] == 1:  # one unit per replicate: nothing to sum
            return lifted[:, 0]
        # two sums: torch's reduction order depends on the layout, this one keeps the seeded bits
        return torch.cat([lifted[..., :-1].sum(1), lifted[..., -1:].sum(1)], dim=-1)

    def _apply_mixing(self, ids: torch.Tensor | None, hyper: torch.Tensor) -> torch.Tensor:
        """``A_u psi`` ``(B, n, d)`` for ``hyper`` ``(B, D)``."""
        if self.mixing is None:
            n = self.num_units if ids is None else ids.shape[1]
            return hyper[:, None, :].expand(self.num_envs, n, self.unit_dim)
        if ids is None and self.mixing.shape[0] == 1:  # one A for all replicates: a single GEMM
            stacked = self.mixing[0].reshape(-1, self.hyper_dim)  # (U d, D)
            return (hyper @ stacked.mT).view(self.num_envs, self.num_units, self.unit_dim)
        return (self._take(self.mixing, ids) @ hyper[:, None, :, None])[..., 0]

    def _refresh_units(self, ids: torch.Tensor, flat: torch.Tensor) -> None:
        """Recompute the caches of units ``ids`` ``(B, n)`` (``flat``: their :meth:`_flat`) and their share
        of the running sums."""
        self._hyper_cache = None
        mixing = self._mixing_rows(ids, flat)
        packed = self._unit_cache(ids, flat, mixing)
        table = self._packed.view(-1, *packed.shape[1:])
        if self.learn_hyper:
            d = self.unit_dim
            delta = packed[:, :, : d + 1] - table.index_select(0, flat)[:, :, : d + 1]  # [P | q] new - old
            first = _first_occurrence(ids, delta.dtype)  # a unit repeated within a row counts once
            if first is not None:
                delta = delta * first.reshape(-1, 1, 1)
            self._sums += self._lift(delta, mixing)
        table.index_copy_(0, flat, packed)  # a repeated unit: the same values twice
        self._num_updates += 1
        if self.learn_hyper and self.refresh_every and self._num_updates % self.refresh_every == 0:
            self._recompute_sums()

    def _refresh_all(self) -> None:
        """Recompute every unit's cache and the running sums exactly (reset, prior changes)."""
        self._hyper_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        packed = self._unit_cache(None, None, self._mixing_rows(None, None))
        self._packed = packed.view(self.num_envs, -1, *packed.shape[1:])  # (B, U, d, 3 d + D + 2)
        self._recompute_sums()

    @property
    def _cond_cov(self) -> torch.Tensor:
        return self._unpack(self._packed)[1]

    def _recompute_sums(self) -> None:
        """Exact running sums from the stored per-unit contributions."""
        if self.learn_hyper:
            pq = self._unpack(self._packed)[0].reshape(-1, self.unit_dim, self.unit_dim + 1)
            self._sums = self._lift(pq, self._mixing_rows(None, None))

    # ------------------------------------------------------------------ data

    def update(
        self,
        unit_ids: torch.Tensor,
        features: torch.Tensor,
        rewards: torch.Tensor,
        noise_var: float | torch.Tensor = 1.0,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Condition on ``rewards`` ``(B, n)`` of units ``unit_ids`` ``(B, n)`` at ``features`` ``(B, n, d)``.

        ``noise_var`` is a float or ``(B, n)``; ``mask`` ``(B, n)`` bool drops observations.
        Units may repeat within a row (e.g. a task acting twice in one concurrent round).
        """
        ids = unit_ids.long()
        if mask is None and isinstance(noise_var, (int, float)):
            weighted = features * (1.0 / noise_var)  # w x
        else:
            weighted = self._weights(rewards, noise_var, mask)[..., None] * features
        B, U, d = self.num_envs, self.num_units, self.unit_dim
        row = torch.cat([features, rewards[..., None]], dim=-1)  # [x, y]
        outer = weighted[..., :, None] * row[..., None, :]  # [w x x^T | w x y] (B, n, d, d + 1)
        flat = self._flat(ids)
        self.stats.view(B * U, d, d + 1).index_add_(0, flat, outer.reshape(-1, d, d + 1))
        self._refresh_units(ids, flat)

    def set_statistics(self, unit_ids: torch.Tensor, gram: torch.Tensor, moment: torch.Tensor) -> None:
        """Replace ``G_u`` ``(B, n, d, d)`` and ``b_u`` ``(B, n, d)`` of units ``unit_ids`` ``(B, n)``.

        Used by Laplace (GLM) posteriors (G = curvature at the mode, b = G mode) and by empirical
        Bayes agents that re-weight their raw statistics.
        """
        ids = unit_ids.long()
        rows = torch.arange(self.num_envs, device=ids.device)[:, None].expand_as(ids)
        self.gram[rows, ids] = gram.to(**self._like)
        self.moment[rows, ids] = moment.to(**self._like)
        self._refresh_units(ids, self._flat(ids))

    def set_mixing(self, unit_ids: torch.Tensor, mixing: torch.Tensor) -> None:
        """Set ``A_u`` ``(B, n, d, D)`` of units ``unit_ids`` ``(B, n)`` (units met over time, e.g.
        MTTS users whose design ``Phi_u`` is known once they arrive).

        Units that already have data move their share of the hyper-posterior sums from the old
        ``A_u`` to the new one (``A^T P A``, ``A^T q``) and get their cached ``M_u A_u`` recomputed.
        """
        if self.mixing is None:
            raise ValueError("set_mixing needs a posterior built with mixing matrices (A_u), got mixing=None")
        ids = unit_ids.long()
        if self.mixing.shape[:2] != (self.num_envs, self.num_units):
            self.mixing = self.mixing.expand(self.num_envs, self.num_units, -1, -1).clone()
        flat = self._flat(ids)
        table = self._packed.view(-1, *self._packed.shape[2:])
        if self.learn_hyper:
            pq = table.index_select(0, flat)[:, :, : self.unit_dim + 1]
            first = _first_occurrence(ids, pq.dtype)
            if first is not None:
                pq = pq * first.reshape(-1, 1, 1)
            old = self._lift(pq, self._mixing_rows(ids, flat))
        rows = torch.arange(self.num_envs, device=ids.device)[:, None].expand_as(ids)
        self.mixing[rows, ids] = mixing.to(**self._like)
        new = self._mixing_rows(ids, flat)
        if self.learn_hyper:
            self._sums += self._lift(pq, new) - old
        table.index_copy_(0, flat, self._unit_cache(ids, flat, new))
        self._hyper_cache = None

    def set_prior(self, hyper_mean: Any = None, hyper_cov: Any = None, unit_cov: Any = None) -> None:
        """Change the prior (empirical Bayes) and recompute every unit's cache exactly."""
        if hyper_mean is not None or hyper_cov is not None:
            self._set_hyper_prior(
                self.hyper_mean if hyper_mean is None else hyper_mean,
                self.hyper_cov if hyper_cov is None else hyper_cov,
            )
        if unit_cov is not None:
            self._set_unit_prior(unit_cov)
        self._refresh_all()

    # ------------------------------------------------------------------ posteriors

    def hyper_factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Hyper-posterior mean ``(B, D)`` and the Cholesky factor of its precision ``(B, D, D)``."""
        if not self.learn_hyper:
            raise RuntimeError("this posterior was built with learn_hyper=False")
        if self._hyper_cache is None:
            # both terms are symmetric; Cholesky reads the lower triangle only
            total = self._prior + self._sums  # [precision | eta]
            factor = robust_cholesky(total[..., :-1])
            mean = torch.cholesky_solve(total[..., -1:], factor)[..., 0]
            self._hyper_cache = (mean, factor)
        return self._hyper_cache

    def hyper_posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Q_t = N(mu_bar, S_bar): mean ``(B, D)``, covariance ``(B, D, D)`` (HierTS eq. (5))."""
        mean, factor = self.hyper_factor()
        return mean, torch.cholesky_inverse(factor)

    def hyper_precision(self) -> torch.Tensor:
        """The hyper-posterior precision ``S_bar^{-1}`` ``(B, D, D)``."""
        return symmetrize(self._prior[..., :-1] + self._sums[..., :-1])

    def hyper_eta(self) -> torch.Tensor:
        """The hyper-posterior natural mean ``S_bar^{-1} mu_bar`` ``(B, D)``:
        ``S_psi^{-1} mu_psi + sum_u A_u^T P_u G_u^{-1} b_u`` (HierTS eq. (5); ``P_u G_u^{-1}`` in exact
        form, without inverting ``G_u``)."""
        if not self.learn_hyper:
            raise RuntimeError("this posterior was built with learn_hyper=False")
        return self._prior[..., -1] + self._sums[..., -1]

    def sample_hyper(self, streams: ReplicateStreams) -> torch.Tensor:
        """psi_t ~ Q_t, ``(B, D)`` (Alg. 1 line 5)."""
        mean, factor = self.hyper_factor()
        return sample_precision_normal(mean, factor, streams)

    def conditional(
        self, unit_ids: torch.Tensor | None, hyper: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """theta_u | psi, data (HierTS eq. (6)): mean ``(B, n, d)``, covariance ``(B, n, d, d)``.

        ``mean = A psi + S~ (b - G A psi)`` (equal to ``S~ (S0^{-1} A psi + b)``, without S0^{-1}).
        """
        ids = _as_ids(unit_ids)
        cov = self._take(self._cond_cov, ids)
        prior_mean = self._apply_mixing(ids, hyper)
        gram = self._take(self.gram, ids)
        residual = self._take(self.moment, ids) - (gram @ prior_mean[..., None])[..., 0]
        return prior_mean + (cov @ residual[..., None])[..., 0], cov

    def sample_units(
        self,
        unit_ids: torch.Tensor | None,
        hyper: torch.Tensor,
        streams: ReplicateStreams,
        scale: float = 1.0,
    ) -> torch.Tensor:
        """theta_u ~ P(theta_u | psi, data), ``(B, n, d)``, for ``unit_ids`` ``(B, n)`` (Alg. 1 line 8).

        ``scale`` multiplies the deviation from the conditional mean (1 = exact posterior draw).
        """
        ids = _as_ids(unit_ids)
        d = self.unit_dim
        rows = self._packed.view(-1, *self._packed.shape[2:])  # (B U, d, 3 d + D + 2)
        if ids is not None:
            rows = rows.index_select(0, self._flat(ids))
        draw_map = rows[:, :, 2 * d + 1 :]  # [F | M A | S~ b] (B n, d, d + D + 1)
        n, width = rows.shape[0] // self.num_envs, draw_map.shape[-1]
        # [F | M A | S~ b] [z; psi; 1] = F z + M A psi + S~ b: the conditional mean (eq. (6)) plus the draw
        rhs = self._draw_rhs(n)
        z = streams.normal_like(rhs[..., :d])
        if scale != 1.0:
            torch.mul(z, scale, out=rhs[..., :d])
        else:
            rhs[..., :d] = z
        last = self._rhs_hyper  # a fixed psi (flat, oracle and ridge agents) is written once
        if last is None or last[0] is not hyper or last[1] != hyper._version:
            rhs[..., d:-1] = hyper[:, None, :]
            self._rhs_hyper = (hyper, hyper._version)
        theta = torch.bmm(draw_map, rhs.view(-1, width, 1))
        return theta.view(self.num_envs, n, d)

    def _draw_rhs(self, n: int) -> torch.Tensor:
        """The reused right-hand side ``[z; psi; 1]`` ``(B, n, d + D + 1)`` of :meth:`sample_units`
        (its last column stays 1; the draw overwrites the rest), rebuilt when ``n`` changes."""
        rhs = self._rhs
        if rhs is None or rhs.shape[1] != n:
            rhs = self._rhs = torch.ones(self.num_envs, n, self.unit_dim + self.hyper_dim + 1, **self._like)
            self._rhs_hyper = None
        return rhs

    def marginal_posterior(self, unit_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """theta_u | all data (HierTS eq. (8)): mean ``(B, n, d)``, covariance ``(B, n, d, d)``."""
        ids = _as_ids(unit_ids)
        hyper_mean, hyper_cov = self.hyper_posterior()
        cond_mean, cond_cov = self.conditional(ids, hyper_mean)
        eye = torch.eye(self.unit_dim, **self._like)
        shrink = eye - cond_cov @ self._take(self.gram, ids)  # M = I - S~ G
        lifted = shrink if self.mixing is None else shrink @ self._take(self.mixing, ids)  # M A
        cov = cond_cov + lifted @ hyper_cov[:, None] @ lifted.transpose(-1, -2)
        return cond_mean, symmetrize(cov)


class DiagonalHierarchicalGaussian(_UnitTables):
    """K-armed fast path of :class:`HierarchicalGaussian` (HierTS Sec. 4.1, eqs. (3)-(4)).

    ``A_u = I``, one-hot features, diagonal ``S_psi = diag(hyper_var)`` and ``S0 = diag(unit_var)``;
    the arms decouple, so every quantity is an elementwise formula over ``(B, U, K)`` tensors.
    Same methods as the dense class; covariances are returned as diagonal matrices by the
    matrix-returning methods and as variances by :meth:`marginal_variance`.

    Args:
        num_envs, num_units: ``B``, ``U``.
        hyper_mean: ``(K,)`` or ``(B, K)``; hyper_var: ``(K,)`` or ``(B, K)`` (positive).
        unit_var: ``(K,)``, ``(U, K)`` or ``(B, U, K)`` (non-negative).
    """

    def __init__(
        self,
        num_envs: int,
        num_units: int,
        hyper_mean: Any,
        hyper_var: Any,
        unit_var: Any,
        learn_hyper: bool = True,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.num_envs, self.num_units = int(num_envs), int(num_units)
        self.learn_hyper = learn_hyper
        self._like = {"device": torch.device(device or "cpu"), "dtype": dtype or torch.float64}
        mean = _as_tensor(hyper_mean, self._like)
        self.hyper_dim = self.unit_dim = mean.shape[-1]
        self.hyper_mean = mean.expand(self.num_envs, -1).clone()
        self.hyper_var = _as_tensor(hyper_var, self._like).expand(self.num_envs, -1).clone()
        unit = _as_tensor(unit_var, self._like)
        while unit.ndim < 3:
            unit = unit[None]
        self.unit_var = unit
        self.reset()

    def reset(self) -> None:
        B, U, K = self.num_envs, self.num_units, self.unit_dim
        self.counts = torch.zeros(B, U, K, **self._like)  # sum of 1 / noise_var per arm
        self.moment = torch.zeros(B, U, K, **self._like)
        self._hyper_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def gram(self) -> torch.Tensor:
        """``G_u`` as diagonal matrices ``(B, U, K, K)``."""
        return torch.diag_embed(self.counts)

    def update(
        self,
        unit_ids: torch.Tensor,
        features: torch.Tensor,
        rewards: torch.Tensor,
        noise_var: float | torch.Tensor = 1.0,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Same contract as :meth:`HierarchicalGaussian.update`; ``features`` are one-hot ``(B, n, K)``."""
        ids = unit_ids.long()
        weight = self._weights(rewards, noise_var, mask)
        B, U, K = self.num_envs, self.num_units, self.unit_dim
        flat = self._flat(ids)
        self.counts.view(B * U, K).index_add_(0, flat, (weight[..., None] * features).reshape(-1, K))
        self.moment.view(B * U, K).index_add_(
            0, flat, ((weight * rewards)[..., None] * features).reshape(-1, K)
        )
        self._hyper_cache = None

    def _unit_var(self, ids: torch.Tensor | None) -> torch.Tensor:
        return self._take(self.unit_var, ids)

    def _hyper(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Hyper-posterior mean and variance ``(B, K)`` (eq. (3))."""
        if not self.learn_hyper:
            raise RuntimeError("this posterior was built with learn_hyper=False")
        if self._hyper_cache is None:
            unit_var = self._unit_var(None)
            shrink = 1.0 / (1.0 + unit_var * self.counts)  # (1 + s0^2 N / s^2)^{-1}
            precision = 1.0 / self.hyper_var + (self.counts * shrink).sum(1)
            eta = self.hyper_mean / self.hyper_var + (self.moment * shrink).sum(1)
            self._hyper_cache = (eta / precision, 1.0 / precision)
        return self._hyper_cache

    def hyper_posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._hyper()
        return mean, torch.diag_embed(var)

    def sample_hyper(self, streams: ReplicateStreams) -> torch.Tensor:
        mean, var = self._hyper()
        return mean + var.sqrt() * streams.normal_like(mean)

    def _conditional(
        self, ids: torch.Tensor | None, hyper: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        counts, moment = self._take(self.counts, ids), self._take(self.moment, ids)
        unit_var = self._unit_var(ids)
        var = unit_var / (1.0 + unit_var * counts)  # (1/s0^2 + N/s^2)^{-1}, eq. (4)
        prior_mean = hyper[:, None, :]
        return prior_mean + var * (moment - counts * prior_mean), var

    def conditional(
        self, unit_ids: torch.Tensor | None, hyper: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._conditional(_as_ids(unit_ids), hyper)
        return mean, torch.diag_embed(var)

    def sample_units(
        self,
        unit_ids: torch.Tensor | None,
        hyper: torch.Tensor,
        streams: ReplicateStreams,
        scale: float = 1.0,
    ) -> torch.Tensor:
        mean, var = self._conditional(_as_ids(unit_ids), hyper)
        return mean + scale * var.sqrt() * streams.normal_like(mean)

    def marginal_variance(self, unit_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Marginal posterior mean and variance ``(B, n, K)`` of theta_u given all data (eq. (8))."""
        ids = _as_ids(unit_ids)
        hyper_mean, hyper_var = self._hyper()
        cond_mean, cond_var = self._conditional(ids, hyper_mean)
        shrink = 1.0 - cond_var * self._take(self.counts, ids)
        return cond_mean, cond_var + shrink**2 * hyper_var[:, None, :]

    def marginal_posterior(self, unit_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self.marginal_variance(unit_ids)
        return mean, torch.diag_embed(var)
