"""Low-rank matrix factorisation by regularised alternating least squares, and Gaussian mixtures.

These build the real-data environments (HierOPO, Hong et al. 2023, Sec. 7.2: "we complete the sparse
rating matrix M using alternating least squares with rank d = 10 ... we learn a Gaussian mixture
model for k = 7 from rows of U"; meTS poster: "fit GMM with L clusters" on movie embeddings).

NumPy/SciPy only (scikit-learn for the mixture, imported lazily). Everything is deterministic
under ``seed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["ALSResult", "Mixture", "als", "gaussian_mixture", "single_threaded_blas"]


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS/LAPACK single-threaded (``threadpoolctl``, a scikit-learn dependency, if present).

    The fits here do many tiny solves, where BLAS threads only add synchronisation (on a busy
    2-core machine a GMM fit went from 2.5 s to 0.01 s of solves), and one thread makes the
    floating-point results independent of the machine's thread count.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1):
        yield


@dataclass(frozen=True, eq=False)
class ALSResult:
    """Factors of ``M ~ offset + U V^T`` fitted on the observed entries.

    Attributes:
        user_factors: ``(num_users, rank)`` U.
        item_factors: ``(num_items, rank)`` V.
        rmse: root mean squared training residual after the last sweep.
        num_iters: sweeps done.
        objective: ``(num_iters,)`` regularised objective after each sweep (non-increasing).
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    rmse: float
    num_iters: int
    objective: np.ndarray


def _solve_side(
    observed: object, indicator: object, other: np.ndarray, counts: np.ndarray, reg: float
) -> np.ndarray:
    """Ridge solutions for every row of ``observed`` (sparse ``(n, n_other)``) given ``other`` factors.

    Row ``i`` solves ``(sum_j x_j x_j^T + reg * n_i I) u_i = sum_j r_ij x_j`` over its observed
    ``j``: the per-row Gram matrices come from one sparse product with the flattened outer products
    ``x_j x_j^T`` (``n_other x r^2``), so there is no Python loop over rows.
    """
    rank = other.shape[1]
    outer = (other[:, :, None] * other[:, None, :]).reshape(len(other), rank * rank)
    gram = np.asarray(indicator @ outer).reshape(-1, rank, rank)
    gram += (reg * np.maximum(counts, 1))[:, None, None] * np.eye(rank)
    rhs = np.asarray(observed @ other)
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


def als(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    num_users: int,
    num_items: int,
    *,
    rank: int = 10,
    reg: float = 0.1,
    num_iters: int = 50,
    tol: float = 1e-5,
    seed: int = 0,
) -> ALSResult:
    """Regularised alternating least squares for a partially observed matrix.

    Minimises ``sum_{(i,j) observed} (r_ij - u_i^T v_j)^2 + reg * (sum_i n_i |u_i|^2 + sum_j n_j
    |v_j|^2)`` (weighted-lambda regularisation, Zhou et al. 2008; the maximum a-posteriori estimate
    of probabilistic matrix factorisation, Salakhutdinov & Mnih 2007, with count-scaled priors).
    Each sweep solves every user exactly given the items, then every item given the users, so the
    objective never increases. Stops after ``num_iters`` sweeps or when the relative decrease of
    the objective falls below ``tol``.

    Args:
        users, items: ``(n,)`` int row / column indices of the observed entries.
        values: ``(n,)`` float observed values.
        num_users, num_items: matrix shape.
        rank: r, the number of latent factors.
        reg: lambda > 0.
        num_iters: maximum number of sweeps.
        tol: relative-decrease stopping tolerance.
        seed: seeds the initial item factors ``V_0 ~ N(0, 0.1^2)``.

    Returns:
        :class:`ALSResult` with ``U`` ``(num_users, r)`` and ``V`` ``(num_items, r)``.
    """
    from scipy import sparse

    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if not (users.shape == items.shape == values.shape) or users.ndim != 1:
        raise ValueError(
            f"users, items and values must be 1-d arrays of equal length, got shapes "
            f"{users.shape}, {items.shape}, {values.shape}"
        )
    if len(users) == 0:
        raise ValueError("als needs at least one observed entry")
    if users.min() < 0 or users.max() >= num_users or items.min() < 0 or items.max() >= num_items:
        raise ValueError(f"indices must lie in [0, {num_users}) x [0, {num_items})")
    if not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    if not isinstance(num_iters, (int, np.integer)) or num_iters < 1:
        raise ValueError(f"num_iters must be a positive integer, got {num_iters!r}")
    if not np.isfinite(reg) or reg <= 0:
        raise ValueError(f"reg must be a finite number > 0, got {reg!r}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite")

    shape = (num_users, num_items)
    observed = sparse.csr_matrix((values, (users, items)), shape=shape)
    indicator = sparse.csr_matrix((np.ones_like(values), (users, items)), shape=shape)
    observed_t, indicator_t = observed.T.tocsr(), indicator.T.tocsr()
    user_counts = np.bincount(users, minlength=num_users).astype(np.float64)
    item_counts = np.bincount(items, minlength=num_items).astype(np.float64)

    rng = np.random.default_rng(seed)
    item_factors = 0.1 * rng.standard_normal((num_items, rank))
    user_factors = np.zeros((num_users, rank))
    history: list[float] = []
    with single_threaded_blas():
        for _ in range(num_iters):
            user_factors = _solve_side(observed, indicator, item_factors, user_counts, reg)
            item_factors = _solve_side(observed_t, indicator_t, user_factors, item_counts, reg)
            resid = values - np.einsum("nr,nr->n", user_factors[users], item_factors[items])
            penalty = reg * (user_counts @ (user_factors**2).sum(1) + item_counts @ (item_factors**2).sum(1))
            history.append(float(resid @ resid + penalty))
            if len(history) > 1 and history[-2] - history[-1] <= tol * abs(history[-2]):
                break
    rmse = float(np.sqrt(np.mean(resid**2)))
    return ALSResult(user_factors, item_factors, rmse, len(history), np.array(history))


@dataclass(frozen=True, eq=False)
class Mixture:
    """A fitted Gaussian mixture, components sorted by hard-assignment count (0 = largest).

    Attributes:
        weights: ``(k,)`` mixing proportions.
        means: ``(k, d)`` component centres.
        covariances: ``(k, d, d)`` full covariances.
        labels: ``(n,)`` hard assignment of each fitted point.
        probabilities: ``(n, k)`` posterior membership probabilities of each fitted point.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """``(k,)`` number of points hard-assigned to each component."""
        return np.bincount(self.labels, minlength=len(self.weights))

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def gaussian_mixture(
    points: np.ndarray,
    num_components: int = 7,
    *,
    seed: int = 0,
    reg_covar: float = 1e-6,
    n_init: int = 3,
) -> Mixture:
    """Fit a full-covariance Gaussian mixture (scikit-learn, EM from k-means initialisations).

    Args:
        points: ``(n, d)``.
        num_components: k.
        seed: ``random_state`` of the fit (deterministic).
        reg_covar: added to each covariance diagonal (scikit-learn's regulariser).
        n_init: EM restarts; the best likelihood is kept.

    Returns:
        :class:`Mixture` with components sorted by hard-assignment count, descending (ties by
        weight), so component 0 is the cluster with the most points.
    """
    from sklearn.mixture import GaussianMixture

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or not np.all(np.isfinite(points)):
        raise ValueError(f"points must be a finite (n, d) array, got shape {points.shape}")
    if not isinstance(num_components, (int, np.integer)) or not 1 <= num_components <= len(points):
        raise ValueError(
            f"num_components must be an integer in [1, {len(points)}] (number of points), "
            f"got {num_components!r}"
        )
    gmm = GaussianMixture(
        n_components=int(num_components),
        covariance_type="full",
        reg_covar=reg_covar,
        n_init=n_init,
        max_iter=500,
        random_state=seed,
    )
    with single_threaded_blas():
        gmm.fit(points)
        probs = gmm.predict_proba(points)
    labels = probs.argmax(axis=1)
    counts = np.bincount(labels, minlength=num_components)
    order = np.lexsort((-gmm.weights_, -counts))  # most points first, then largest weight
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return Mixture(
        weights=gmm.weights_[order],
        means=gmm.means_[order],
        covariances=gmm.covariances_[order],
        labels=rank[labels].astype(np.int64),
        probabilities=probs[:, order],
    )
