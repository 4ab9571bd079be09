"""Small deterministic stand-ins for the real datasets (tests, CI variants, examples).

``synthetic_ratings`` plants a clustered low-rank structure (users drawn around a few cluster
centres, ratings = rounded ``3.5 + U_i^T V_j + noise`` clipped to 1..5), so the MovieLens pipeline
(ALS, Gaussian mixture, env construction) runs end to end in well under a second.
``synthetic_images`` draws 10 classes of blob images. Both are pure functions of their arguments.

This module returns raw arrays only (it imports nothing of hbgym): the loaders wrap them,
:func:`hbgym.datasets.movielens.synthetic_ratings` as ``Ratings`` and
:func:`hbgym.datasets.images.synthetic_digits` as ``Images`` (``dataset="synthetic"``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = [
    "planted_ratings",
    "synthetic_images",
    "write_synthetic_images",
    "write_synthetic_ratings",
]


def planted_ratings(
    num_users: int = 240,
    num_items: int = 150,
    rank: int = 4,
    num_clusters: int = 3,
    density: float = 0.3,
    noise_std: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw arrays of a planted ratings table.

    Returns:
        ``users (n,)``, ``items (n,)``, ``ratings (n,)`` in {1..5}, the planted user factors
        ``(num_users, rank)`` and item factors ``(num_items, rank)``. Every user and item has at
        least two ratings.
    """
    rng = np.random.default_rng(seed)
    centres = 1.2 * rng.standard_normal((num_clusters, rank))
    cluster = np.arange(num_users) % num_clusters
    cluster[: num_users // 2] = 0  # one clearly largest cluster
    user_f = centres[cluster] + 0.35 * rng.standard_normal((num_users, rank))
    item_f = rng.standard_normal((num_items, rank)) / np.sqrt(rank)
    mask = rng.random((num_users, num_items)) < density
    rows = np.arange(num_users)
    mask[rows, rows % num_items] = True
    mask[rows, (rows * 7 + 3) % num_items] = True
    cols = np.arange(num_items)
    mask[cols % num_users, cols] = True
    mask[(cols * 5 + 1) % num_users, cols] = True
    users, items = np.nonzero(mask)
    mean = 3.5 + np.einsum("nr,nr->n", user_f[users], item_f[items])
    ratings = np.clip(np.rint(mean + noise_std * rng.standard_normal(len(users))), 1, 5)
    return users + 1, items + 1, ratings, user_f, item_f


def write_synthetic_ratings(path: str | Path, **kwargs: object) -> Path:
    """Write :func:`planted_ratings` as a tab-separated file with a header; return its path."""
    users, items, ratings, _, _ = planted_ratings(**kwargs)  # type: ignore[arg-type]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = zip(users, items, ratings, strict=True)
    lines = ["user_id\titem_id\trating"] + [f"{u}\t{i}\t{int(r)}" for u, i, r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def synthetic_images(
    num_per_class: int = 40, side: int = 14, num_classes: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Blob images ``(N, side, side)`` in [0, 1] and labels ``(N,)``: each class is a fixed set of
    three Gaussian blobs; each image jitters them and adds pixel noise."""
    rng = np.random.default_rng(seed)
    grid = np.arange(side) + 0.5
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    centres = rng.uniform(0.2 * side, 0.8 * side, size=(num_classes, 3, 2))
    images, labels = [], []
    for label in range(num_classes):
        for _ in range(num_per_class):
            img = np.zeros((side, side))
            for cy, cx in centres[label] + rng.normal(0, 0.06 * side, size=(3, 2)):
                img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.12 * side) ** 2))
            img = img + 0.1 * rng.standard_normal(img.shape)
            images.append(np.clip(img, 0.0, 1.0))
            labels.append(label)
    return np.array(images), np.array(labels, dtype=np.int64)


def write_synthetic_images(path: str | Path, **kwargs: object) -> Path:
    """Write :func:`synthetic_images` as a gzipped csv (pixels 0..255 then the label, per row)."""
    images, labels = synthetic_images(**kwargs)  # type: ignore[arg-type]
    pixels = np.rint(images.reshape(len(images), -1) * 255).astype(int)
    rows = [",".join(map(str, p)) + f",{y}" for p, y in zip(pixels, labels, strict=True)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode(), mtime=0))
    return path
