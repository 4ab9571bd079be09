"""GP meta-prior over the log-density ``f(mu, x_obs)`` via a truncated, Kronecker-factored
Karhunen-Loeve expansion (Mukherjee et al., CoCo bandits, Sec. 3.1 and App. B.6, B.9).

The joint log-density lives on a tensor grid: ``G`` points per arm mean in ``mu_range`` for each of
the ``K`` arms and ``C`` points for the (scalar) observed context in ``context_range``
(App. C.5: ``G = 20`` on ``[-2, 2]``, ``C = 10`` on ``[-1, 1]``). With the squared-exponential
kernel ``k(z, z') = variance * prod_d exp(-(z_d - z'_d)^2 / (2 l^2))`` the grid kernel matrix is the
Kronecker product ``K_mu (x) ... (x) K_mu (x) K_x`` of 1-D kernel matrices, so its eigenpairs are
the products of the 1-D eigenvalues and the Kronecker products of the 1-D eigenvectors. We keep the
``M`` largest products (App. C.5: ``M = 80``) and never form the ``(G^K C) x (G^K C)`` grid kernel:

    f(z) = sum_l sqrt(lambda_l) theta_l phi_l(z),   theta ~ N(0, I_M),
    phi_l = u_{i_1(l)} (x) ... (x) u_{i_K(l)} (x) v_{m(l)}    (1-D eigenvectors u of K_mu, v of K_x).

``f`` is evaluated factored: the ``M`` coefficients fill a small core tensor
``(r_mu,)*K + (r_x,)`` (``r`` = largest 1-D index used + 1) that is multiplied mode by mode by the
leading 1-D eigenvectors (a Tucker product), never by an ``M x G^K C`` basis matrix.

Conditional density (App. B.9): at context slice ``c`` the conditional ``pi_c(mu) =
softmax_mu f(mu, x_c)`` over the ``G^K`` mu-grid. For a user's ``x_obs`` between slices ``c`` and
``c + 1`` we **interpolate the conditional density linearly** between the two slices,
``pi(mu | x_obs) = (1 - t) pi_c + t pi_{c+1}`` (choice: the paper only says "evaluate on the grid";
interpolating in density space keeps every user's evidence a linear function of ``C`` shared
per-particle slice softmaxes, instead of one ``G^K`` softmax per user per particle). ``x_obs`` outside
the context range is clamped to it.
"""

from __future__ import annotations

import torch

__all__ = ["KroneckerKL", "se_kernel_1d", "top_kronecker_eigenpairs"]


def se_kernel_1d(points: torch.Tensor, lengthscale: float) -> torch.Tensor:
    """SE kernel matrix ``(n, n)`` of 1-D ``points`` ``(n,)`` (unit variance)."""
    diff = points[:, None] - points[None, :]
    return torch.exp(-0.5 * (diff / lengthscale) ** 2)


def top_kronecker_eigenpairs(
    eigenvalues: list[torch.Tensor], num_components: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``M`` largest products of 1-D eigenvalues.

    Args:
        eigenvalues: one tensor ``(n_d,)`` per grid dimension (any order).
        num_components: ``M``, at most ``prod_d n_d``.

    Returns:
        ``(values (M,), index (M, D))``: products in decreasing order and, per product, the index of
        the 1-D eigenvalue used in each dimension ``d``. Ties are broken by the index order of
        :func:`torch.sort` (stable).
    """
    sizes = [int(v.numel()) for v in eigenvalues]
    total = 1
    for s in sizes:
        total *= s
    if not 1 <= num_components <= total:
        raise ValueError(f"num_components={num_components} must be in [1, {total}] for grid sizes {sizes}")
    # products on the full index lattice in log space (prod n_d = 80,000 numbers: cheap; this is
    # not the kernel matrix, only its eigenvalues)
    logs = [torch.log(v.clamp_min(torch.finfo(v.dtype).tiny)) for v in eigenvalues]
    total_log = logs[0]
    for lg in logs[1:]:
        total_log = (total_log[:, None] + lg).reshape(-1)
    order = torch.sort(total_log, descending=True, stable=True).indices[:num_components]
    index = torch.stack(torch.unravel_index(order, sizes), dim=-1)
    values = torch.ones(num_components, dtype=eigenvalues[0].dtype, device=eigenvalues[0].device)
    for d, v in enumerate(eigenvalues):
        values = values * v[index[:, d]]
    return values, index


class KroneckerKL:
    """Truncated KL expansion of the SE-kernel GP on the ``mu``-grid x context-grid (App. B.6).

    Args:
        num_actions: ``K`` (mu-grid dimensions).
        num_components: ``M`` retained eigenpairs.
        lengthscale: SE lengthscale (same in every dimension; App. C.5: 0.7).
        variance: kernel amplitude ``sigma_f^2`` (the paper's zero-mean GP with unit amplitude).
        mu_grid_size: ``G`` points per arm mean.
        mu_range: ``(lo, hi)`` of the arm-mean grid.
        context_grid_size: ``C`` points of the scalar observed context.
        context_range: ``(lo, hi)`` of the context grid.
        device, dtype: of every tensor.

    Attributes:
        mu_grid ``(G,)``, context_grid ``(C,)``, eigenvalues ``(M,)`` (decreasing), index ``(M, K+1)``
        (1-D eigenvector index per dimension; the last column is the context dimension),
        mu_vectors ``(G, G)`` and context_vectors ``(C, C)`` (1-D eigenvectors, columns sorted by
        decreasing eigenvalue), grid ``(G^K, K)`` (the mu-grid points, C-order, arm 0 slowest).
    """

    def __init__(
        self,
        num_actions: int = 3,
        num_components: int = 80,
        lengthscale: float = 0.7,
        variance: float = 1.0,
        mu_grid_size: int = 20,
        mu_range: tuple[float, float] = (-2.0, 2.0),
        context_grid_size: int = 10,
        context_range: tuple[float, float] = (-1.0, 1.0),
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        for name, value in (("num_actions", num_actions), ("mu_grid_size", mu_grid_size),
                            ("context_grid_size", context_grid_size)):
            least = 1 if name == "num_actions" else 2
            if int(value) != value or value < least:
                raise ValueError(f"{name}={value!r} must be an integer >= {least}")
        if not lengthscale > 0:
            raise ValueError(f"lengthscale={lengthscale!r} must be > 0")
        if not variance > 0:
            raise ValueError(f"variance={variance!r} must be > 0")
        for name, rng in (("mu_range", mu_range), ("context_range", context_range)):
            if not rng[0] < rng[1]:
                raise ValueError(f"{name}={rng!r} must be (lo, hi) with lo < hi")
        self.num_actions = int(num_actions)
        self.lengthscale = float(lengthscale)
        self.variance = float(variance)
        kw = {"device": device, "dtype": dtype}
        self.mu_grid = torch.linspace(mu_range[0], mu_range[1], int(mu_grid_size), **kw)
        self.context_grid = torch.linspace(context_range[0], context_range[1], int(context_grid_size), **kw)
        lam_mu, u_mu = self._eigh(se_kernel_1d(self.mu_grid, lengthscale))
        lam_x, u_x = self._eigh(se_kernel_1d(self.context_grid, lengthscale))
        self.mu_vectors, self.context_vectors = u_mu, u_x
        values, index = top_kronecker_eigenpairs([lam_mu] * self.num_actions + [lam_x], num_components)
        self.eigenvalues = self.variance * values
        self.index = index
        self.num_components = int(num_components)
        self.rank_mu = int(index[:, :-1].max()) + 1
        self.rank_x = int(index[:, -1].max()) + 1
        # flat position of each component in the core tensor with axes (i_x, i_K, i_1, ..., i_{K-1})
        # (this order makes the mode-by-mode product of log_density come out as (g_1, ..., g_K))
        axes = [self.num_actions, self.num_actions - 1] + list(range(self.num_actions - 1))
        sizes = [self.rank_x] + [self.rank_mu] * self.num_actions
        flat = torch.zeros(num_components, dtype=torch.long, device=self.mu_grid.device)
        for d, size in zip(axes, sizes, strict=True):
            flat = flat * size + index[:, d]
        self._core_size = self.rank_x * self.rank_mu**self.num_actions
        self._core_flat = flat
        self._sqrt_lam = self.eigenvalues.sqrt()
        G = self.mu_grid.numel()
        self.grid = torch.stack(
            torch.meshgrid(*([self.mu_grid] * self.num_actions), indexing="ij"), dim=-1
        ).reshape(G**self.num_actions, self.num_actions)

    @staticmethod
    def _eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vals, vecs = torch.linalg.eigh(matrix)
        order = torch.argsort(vals, descending=True)
        return vals[order].clamp_min(0.0), vecs[:, order]

    @property
    def mu_grid_size(self) -> int:
        return int(self.mu_grid.numel())

    @property
    def num_grid(self) -> int:
        """``G^K``, the number of mu-grid points."""
        return self.mu_grid_size**self.num_actions

    @property
    def num_slices(self) -> int:
        return int(self.context_grid.numel())

    # ------------------------------------------------------------------ evaluation

    def log_density(self, theta: torch.Tensor) -> torch.Tensor:
        """``f`` on the whole grid, factored (Tucker) evaluation.

        Args:
            theta: ``(..., M)`` standard-normal KL coefficients.

        Returns:
            ``(..., C, G^K)``: ``f(mu_g, x_c)``, mu-grid flattened in :attr:`grid` order.
        """
        if theta.shape[-1] != self.num_components:
            raise ValueError(f"theta has {theta.shape[-1]} coefficients, expected M={self.num_components}")
        batch = theta.shape[:-1]
        P = 1
        for b in batch:
            P *= int(b)
        core = theta.new_zeros((P, self._core_size))
        core = core.index_add(1, self._core_flat, (theta * self._sqrt_lam).reshape(P, -1))
        # core axes (i_x, i_K, i_1, ..., i_{K-1}); contract the context axis first
        r, K, G = self.rank_mu, self.num_actions, self.mu_grid_size
        core = core.reshape(P, self.rank_x, r**K)
        out = (self.context_vectors[:, : self.rank_x] @ core).reshape(P * self.num_slices, r**K)
        u = self.mu_vectors[:, :r].T.contiguous()  # (r, G)
        done = 1  # number of mu axes already contracted (they sit in front, the grid part)
        for step in range(K):
            rest = r ** (K - 1 - step)
            out = out.reshape(-1, r) @ u  # contract the last core axis -> (P C, G^done, rest, G)
            if step < K - 1:  # move the new grid axis to the front of the grid part
                out = out.reshape(P * self.num_slices, done, rest, G).transpose(-1, -2)
                out = out.transpose(1, 2).reshape(P * self.num_slices, G * done * rest)
                done *= G
        return out.reshape(batch + (self.num_slices, self.num_grid))

    def slice_log_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``log pi_c(mu_g)`` ``(..., C, G^K)``: log-softmax of ``f`` over the mu-grid per slice."""
        return torch.log_softmax(self.log_density(theta), dim=-1)

    def context_cells(self, x_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lo, t)`` ``(...)``: ``x_obs`` lies between slices ``lo`` and ``lo + 1`` at fraction ``t``
        (``x_obs`` clamped to the context range)."""
        grid = self.context_grid
        x = x_obs.to(grid.dtype).clamp(grid[0], grid[-1])
        pos = (x - grid[0]) / (grid[1] - grid[0])
        lo = pos.floor().long().clamp(0, grid.numel() - 2)
        return lo, (pos - lo.to(pos.dtype)).clamp(0.0, 1.0)

    def context_weights(self, x_obs: torch.Tensor) -> torch.Tensor:
        """Linear-interpolation weights ``(..., C)`` of contexts ``x_obs`` ``(...)`` over the slices
        (two non-zero entries summing to one; ``x_obs`` clamped to the context range)."""
        grid = self.context_grid
        lo, t = self.context_cells(x_obs)
        x = x_obs
        w = torch.zeros(x.shape + (grid.numel(),), dtype=grid.dtype, device=grid.device)
        w.scatter_(-1, lo[..., None], (1 - t)[..., None])
        w.scatter_add_(-1, (lo + 1)[..., None], t[..., None])
        return w

    def conditional_probs(self, theta: torch.Tensor, x_obs: torch.Tensor) -> torch.Tensor:
        """``pi(mu_g | x_obs)`` ``(..., G^K)`` for ``theta`` ``(..., M)`` and ``x_obs`` ``(...)``."""
        probs = self.slice_log_probs(theta).exp()
        return (self.context_weights(x_obs)[..., None] * probs).sum(-2)

    # ------------------------------------------------------------------ references (tests)

    def dense_basis(self) -> torch.Tensor:
        """``(M, G^K * C)`` eigenvectors ``phi_l`` on the full grid (grid order mu_0..mu_{K-1}, x);
        small grids only (tests)."""
        cols = []
        for l_idx in range(self.num_components):
            vec = self.mu_vectors[:, self.index[l_idx, 0]]
            for d in range(1, self.num_actions):
                vec = torch.kron(vec, self.mu_vectors[:, self.index[l_idx, d]])
            cols.append(torch.kron(vec, self.context_vectors[:, self.index[l_idx, -1]]))
        return torch.stack(cols)

    def dense_kernel(self) -> torch.Tensor:
        """The full grid kernel matrix (small grids only; tests)."""
        mats = [se_kernel_1d(self.mu_grid, self.lengthscale)] * self.num_actions
        mats.append(se_kernel_1d(self.context_grid, self.lengthscale))
        out = mats[0]
        for m in mats[1:]:
            out = torch.kron(out, m)
        return self.variance * out
