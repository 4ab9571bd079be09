"""MovieLens ratings: checksum table, loaders, and the cached factor models of the MovieLens envs.

Data provenance and license
---------------------------
The MovieLens datasets are published by GroupLens Research (University of Minnesota) at
https://grouplens.org/datasets/movielens/ under their usage license: use for research only, no
commercial use and **no redistribution** without separate permission, and cite

    F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.
    ACM Transactions on Interactive Intelligent Systems 5(4): 19:1-19:19.

hbgym therefore ships no MovieLens data and nothing fitted on it: files are found on the user's
machine or downloaded from GroupLens (lookup order in :mod:`hbgym.datasets.store`), and fits are
written to the user's cache only. The offline fallback is the MovieLens-100K ratings file that the
``recbole`` 1.2.1 wheel on PyPI contains (``pip install --no-deps recbole==1.2.1``); it is located
with ``importlib.metadata`` and never imported.

``dataset=`` accepted by :func:`load_ratings` and the MovieLens envs:

* ``"auto"`` (default): MovieLens 1M (what the papers use) if it is in a data directory, the cache
  or can be downloaded; else MovieLens 100K (data directory, cache, download, then the offline
  copy in recbole).
* ``"ml-100k"``, ``"ml-1m"``, ``"ml-latest-small"``, ``"ml-10m"``: that dataset only.
* ``"synthetic"``: a small planted low-rank ratings table generated in memory
  (:func:`synthetic_ratings`), for tests.
* a path to a ratings file: one ``user item rating [...]`` row per line, separated by tabs,
  whitespace, commas or ``::``, with an optional header line.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hbgym.datasets.factorization import Mixture, als, gaussian_mixture
from hbgym.datasets.store import (
    DataFile,
    DataNotFoundError,
    Located,
    OfflineCopy,
    cache_key,
    cached_arrays,
    locate,
    offline_mode,
)
from hbgym.datasets.synthetic import planted_ratings

__all__ = [
    "CITATION",
    "LICENSE",
    "MOVIELENS",
    "Factorization",
    "Ratings",
    "fit_factorization",
    "load_ratings",
    "parse_table",
]

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
LICENSE = (
    "GroupLens MovieLens usage license: research use only, no commercial use, no redistribution "
    "without permission (https://grouplens.org/datasets/movielens/)"
)
CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems 5(4): 19:1-19:19."
)

RECBOLE_ML100K = OfflineCopy(
    distribution="recbole",
    path="recbole/dataset_example/ml-100k/ml-100k.inter",
    sha256="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    fmt="table",
    install="pip install --no-deps recbole==1.2.1",
)

#: the checksum table (sha256 from TensorFlow Datasets' checksum list; md5 from GroupLens sidecars)
MOVIELENS: dict[str, DataFile] = {
    "ml-100k": DataFile(
        key="ml-100k",
        filename="ml-100k.zip",
        url=BASE_URL + "ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        size=4924029,
        fmt="table",
        member="ml-100k/u.data",
        extracted=(("ml-100k/u.data", "table"),),
        offline=RECBOLE_ML100K,
        description="MovieLens 100K: 100,000 ratings from 943 users on 1,682 movies",
    ),
    "ml-1m": DataFile(
        key="ml-1m",
        filename="ml-1m.zip",
        url=BASE_URL + "ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        size=5917549,
        fmt="table",
        member="ml-1m/ratings.dat",
        extracted=(("ml-1m/ratings.dat", "table"),),
        description="MovieLens 1M: 1,000,209 ratings from 6,040 users on 3,706 movies",
    ),
    "ml-latest-small": DataFile(
        key="ml-latest-small",
        filename="ml-latest-small.zip",
        url=BASE_URL + "ml-latest-small.zip",
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        size=978202,
        fmt="table",
        member="ml-latest-small/ratings.csv",
        extracted=(("ml-latest-small/ratings.csv", "table"),),
        description="MovieLens latest-small: about 100,000 ratings from 610 users on 9,742 movies",
    ),
    "ml-10m": DataFile(
        key="ml-10m",
        filename="ml-10m.zip",
        url=BASE_URL + "ml-10m.zip",
        md5="ce571fd55effeba0271552578f2648bd",
        fmt="table",
        member="ml-10M100K/ratings.dat",
        extracted=(("ml-10M100K/ratings.dat", "table"),),
        description="MovieLens 10M: 10,000,054 ratings from 69,878 users on 10,677 movies",
    ),
}
DATASETS = ("auto", *MOVIELENS, "synthetic")


# --------------------------------------------------------------------------- parsing


def parse_table(raw: bytes, what: str = "ratings file") -> np.ndarray:
    """Parse a numeric table (``user item rating [timestamp]`` rows) into an ``(n, c)`` float array.

    Separators ``::`` (MovieLens 1M/10M), tab (100K, recbole), comma (latest) or whitespace are
    detected from the first data line; a first line containing letters is a header and skipped.
    """
    text = raw.decode("latin-1")
    head, _, body = text.partition("\n")
    if any(ch.isalpha() for ch in head):
        first = body.partition("\n")[0]
    else:
        first, body = head, text
    if "::" in first:
        body, first = body.replace("::", " "), first.replace("::", " ")
    elif "," in first:
        body, first = body.replace(",", " "), first.replace(",", " ")
    ncols = len(first.split())
    if ncols < 3:
        raise ValueError(f"{what}: expected at least 3 columns (user, item, rating), got {first!r}")
    try:
        flat = np.array(body.split(), dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{what}: non-numeric entry ({err})") from None
    if flat.size % ncols:
        raise ValueError(f"{what}: {flat.size} numbers do not form rows of {ncols} columns")
    return flat.reshape(-1, ncols)


def _read_located(found: Located) -> bytes:
    if found.member is not None:
        with zipfile.ZipFile(found.path) as archive:
            return archive.read(found.member)
    return found.path.read_bytes()


# --------------------------------------------------------------------------- ratings


_PARSED: dict[str, dict[str, np.ndarray]] = {}


class Ratings:
    """A table of ratings with its provenance; columns are parsed on first access.

    Attributes:
        name: dataset name (``"ml-1m"``, ``"ml-100k"``, ``"synthetic"``, or the file name).
        sha256: checksum of the file the ratings come from (of the generated table for synthetic
            data): the identity of everything fitted on it.
        provenance: JSON-serialisable record (dataset, file, origin, checksum, license).
        users, items: ``(n,)`` int64 dense indices; ``values`` ``(n,)`` float64 ratings;
        user_ids, item_ids: the original ids of the dense indices.
    """

    def __init__(
        self, name: str, sha256: str, provenance: dict[str, Any], read: Callable[[], np.ndarray]
    ) -> None:
        self.name = name
        self.sha256 = sha256
        self.provenance = provenance
        self._read = read

    def __repr__(self) -> str:
        origin = self.provenance.get("origin")
        return f"Ratings({self.name!r}, sha256={self.sha256[:12]}..., origin={origin!r})"

    @classmethod
    def from_arrays(
        cls, name: str, users: Any, items: Any, values: Any, provenance: dict[str, Any] | None = None
    ) -> Ratings:
        """Ratings from raw id / value arrays (the checksum is that of the canonical table)."""
        cols = [np.asarray(v, dtype=np.float64) for v in (users, items, values)]
        if any(c.ndim != 1 or len(c) != len(cols[0]) or not np.all(np.isfinite(c)) for c in cols):
            raise ValueError("users, items and values must be finite 1-d arrays of equal length")
        table = np.column_stack(cols)
        sha256 = hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest()
        prov = {"dataset": name, "sha256": sha256, "origin": "arrays", **(provenance or {})}
        return cls(name, sha256, prov, lambda: table)

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        if self.sha256 not in _PARSED:
            table = self._read()
            if len(table) == 0:
                raise ValueError(f"{self.name}: the ratings table is empty")
            user_ids, users = np.unique(table[:, 0], return_inverse=True)
            item_ids, items = np.unique(table[:, 1], return_inverse=True)
            _PARSED[self.sha256] = {
                "users": users.astype(np.int64),
                "items": items.astype(np.int64),
                "values": table[:, 2].astype(np.float64),
                "user_ids": user_ids,
                "item_ids": item_ids,
            }
        return _PARSED[self.sha256]

    users = property(lambda self: self._columns["users"])
    items = property(lambda self: self._columns["items"])
    values = property(lambda self: self._columns["values"])
    user_ids = property(lambda self: self._columns["user_ids"])
    item_ids = property(lambda self: self._columns["item_ids"])

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_ratings(self) -> int:
        return len(self.values)


def _from_located(found: Located) -> Ratings:
    prov = found.provenance()
    prov.update({"license": LICENSE, "citation": CITATION})
    what = f"{found.path}" + (f"!{found.member}" if found.member else "")
    return Ratings(found.datafile.key, found.sha256, prov, lambda: parse_table(_read_located(found), what))


def _from_path(path: Path) -> Ratings:
    if not path.is_file():
        raise FileNotFoundError(f"dataset={str(path)!r} is not a file")
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    prov = {"dataset": path.name, "file": str(path), "sha256": sha256, "verified": False, "origin": "path"}
    return Ratings(path.name, sha256, prov, lambda: parse_table(raw, str(path)))


def _looks_like_path(dataset: Any) -> bool:
    if isinstance(dataset, os.PathLike):
        return True
    return isinstance(dataset, str) and (os.sep in dataset or "/" in dataset or Path(dataset).is_file())


def synthetic_ratings(**kwargs: object) -> Ratings:
    """A :class:`Ratings` table from :func:`~hbgym.datasets.synthetic.planted_ratings`
    (``dataset="synthetic"``)."""
    users, items, ratings, _, _ = planted_ratings(**kwargs)  # type: ignore[arg-type]
    params = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    return Ratings.from_arrays(
        "synthetic", users, items, ratings,
        {"origin": f"hbgym.datasets.synthetic.planted_ratings({params})", "license": "generated"},
    )


def load_ratings(
    dataset: str | os.PathLike = "auto",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
) -> Ratings:
    """Find and return a MovieLens ratings table (see the module docstring for ``dataset``).

    Args:
        dataset: ``"auto"``, a key of :data:`MOVIELENS`, ``"synthetic"`` or a path.
        data_dir: explicit directory holding the archive or its extracted ratings file.
        download: allow downloading (default: yes unless ``HBGYM_OFFLINE`` is set).

    Raises:
        DataNotFoundError: nothing worked; the message lists every way to provide the data.
        ChecksumError: a file in an explicit directory does not match the checksum table.
        ValueError: unknown ``dataset``.
    """
    if _looks_like_path(dataset):
        return _from_path(Path(dataset).expanduser())
    if dataset == "synthetic":
        return synthetic_ratings()
    if dataset in MOVIELENS:
        return _from_located(locate(MOVIELENS[dataset], data_dir=data_dir, download=download))
    if dataset != "auto":
        raise ValueError(
            f"dataset={dataset!r} is unknown; allowed: {', '.join(map(repr, DATASETS))} or a path to a "
            "ratings file"
        )
    try:
        return _from_located(locate(MOVIELENS["ml-1m"], data_dir=data_dir, download=download))
    except DataNotFoundError as first:
        try:
            found = locate(MOVIELENS["ml-100k"], data_dir=data_dir, download=download)
        except DataNotFoundError as second:
            raise DataNotFoundError(
                "dataset='auto' found neither MovieLens 1M nor MovieLens 100K.\n\n"
                f"{first}\n\n{second}"
            ) from None
        if download is not False and not offline_mode() and data_dir is None:
            warnings.warn(
                "hbgym: MovieLens 1M (the papers' dataset) is unavailable, so MovieLens 100K "
                f"({found.origin}) is used; the env's model.source records this. Details:\n{first}",
                stacklevel=2,
            )
        return _from_located(found)


# --------------------------------------------------------------------------- factor models

FIT_VERSION = 2


@dataclass(frozen=True, eq=False)
class Factorization:
    """A rank-r factor model of a ratings table, ``rating_ij ~ offset + U_i^T V_j + noise``.

    Attributes:
        user_factors: ``(num_users, r)`` U.
        item_factors: ``(num_items, r)`` V.
        user_ids, item_ids: ``(num_users,)``, ``(num_items,)`` original ids of the rows.
        user_counts, item_counts: ``(num_users,)``, ``(num_items,)`` ratings per user / item.
        offset: the global mean subtracted before fitting (0 when ``center=False``).
        sigma: residual standard deviation ``sqrt(mean (r - offset - U_i^T V_j)^2)``.
        params: the fit parameters.
        key: cache key of the fit (hash of source checksum and parameters).
        source: provenance of the data plus the fit parameters and statistics.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_counts: np.ndarray
    item_counts: np.ndarray
    offset: float
    sigma: float
    params: dict[str, Any]
    key: str
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return self.user_factors.shape[1]

    def mixture(self, side: str, num_components: int, *, seed: int = 0, min_ratings: int = 1) -> tuple[
        Mixture, np.ndarray
    ]:
        """Gaussian mixture over the user (``side="users"``) or item factors with at least
        ``min_ratings`` ratings; cached like the factorisation. Returns the mixture and the indices
        ``(n,)`` of the rows it was fitted on."""
        if side not in ("users", "items"):
            raise ValueError(f"side must be 'users' or 'items', got {side!r}")
        factors = self.user_factors if side == "users" else self.item_factors
        counts = self.user_counts if side == "users" else self.item_counts
        rows = np.flatnonzero(counts >= min_ratings)
        if len(rows) < num_components:
            raise ValueError(
                f"only {len(rows)} {side} have at least min_ratings={min_ratings} ratings, fewer than "
                f"num_components={num_components}"
            )
        params = {"fit": self.key, "side": side, "k": int(num_components), "seed": int(seed),
                  "min_ratings": int(min_ratings), "version": FIT_VERSION}
        arrays = cached_arrays(
            "gmm", params, lambda: gaussian_mixture(factors[rows], num_components, seed=seed).as_arrays()
        )
        return Mixture(**arrays), rows


def fit_factorization(
    ratings: Ratings,
    *,
    rank: int = 10,
    reg: float = 0.1,
    num_iters: int = 50,
    seed: int = 0,
    center: bool = False,
) -> Factorization:
    """Rank-``rank`` ALS factorisation of ``ratings`` (HierOPO Sec. 7.2), fitted once and cached.

    The cache key is (``ratings.sha256``, every parameter, a version number); the fit is stored in
    ``<cache>/fits`` (atomic write) and in memory, so a second call costs a file read.

    Args:
        ratings: the table.
        rank: r (10 in HierOPO).
        reg: ALS regulariser lambda (count-weighted; 0.1 minimises held-out RMSE on MovieLens
            100K among {0.02, 0.05, 0.1, 0.2}: 0.917).
        num_iters: maximum ALS sweeps (stops earlier at a 1e-5 relative objective decrease).
        seed: initialisation seed.
        center: subtract the global mean rating first (then ``U_i^T V_j`` is a centred rating).
    """
    params = {"data": ratings.sha256, "rank": int(rank), "reg": float(reg), "num_iters": int(num_iters),
              "seed": int(seed), "center": bool(center), "version": FIT_VERSION}

    def compute() -> dict[str, np.ndarray]:
        values = ratings.values
        offset = float(values.mean()) if center else 0.0
        result = als(ratings.users, ratings.items, values - offset, ratings.num_users, ratings.num_items,
                     rank=rank, reg=reg, num_iters=num_iters, seed=seed)
        return {
            "user_factors": result.user_factors,
            "item_factors": result.item_factors,
            "user_ids": ratings.user_ids,
            "item_ids": ratings.item_ids,
            "user_counts": np.bincount(ratings.users, minlength=ratings.num_users),
            "item_counts": np.bincount(ratings.items, minlength=ratings.num_items),
            "offset": np.float64(offset),
            "sigma": np.float64(result.rmse),
            "sweeps": np.int64(result.num_iters),
        }

    arrays = cached_arrays("als", params, compute)
    key = cache_key({"kind": "als", **params})
    source = dict(ratings.provenance)
    source["fit"] = {"method": "ALS (weighted-lambda)", **{k: v for k, v in params.items() if k != "data"},
                     "sweeps": int(arrays["sweeps"]), "sigma": float(arrays["sigma"]),
                     "num_users": int(len(arrays["user_factors"])),
                     "num_items": int(len(arrays["item_factors"])),
                     "num_ratings": int(arrays["user_counts"].sum())}
    return Factorization(
        user_factors=arrays["user_factors"],
        item_factors=arrays["item_factors"],
        user_ids=arrays["user_ids"],
        item_ids=arrays["item_ids"],
        user_counts=arrays["user_counts"],
        item_counts=arrays["item_counts"],
        offset=float(arrays["offset"]),
        sigma=float(arrays["sigma"]),
        params=params,
        key=key,
        source=source,
    )
