"""Where dataset files come from: the checksum table, the lookup order, downloads and the cache.

Lookup order for one data file (:func:`locate`), each step recorded in the error if all fail:

1. **An explicit directory**: the ``data_dir=`` argument, else the ``HBGYM_DATA_DIR`` environment
   variable. The file may be there as the original archive (``ml-1m.zip``, verified against the
   checksum table) or already extracted (``ml-1m/ratings.dat``: used as is, its sha256 recorded). An
   explicit ``data_dir=`` is authoritative: if the file is not there the lookup stops with an error
   (no silent substitution); a directory from ``HBGYM_DATA_DIR`` without the file is skipped.
2. **The cache** ``$HBGYM_CACHE_DIR/downloads`` (default ``~/.cache/hbgym/downloads``). A cached
   file whose size or checksum does not match the table (partial or corrupted) is deleted and
   fetched again; it is never used.
3. **Download** from the table's URL (unless ``download=False`` or ``HBGYM_OFFLINE=1``): streamed to
   a temporary file next to its destination, verified, then renamed into place
   (:func:`hbgym.fileio.atomic_write_stream`), so a killed download never leaves a file that looks
   complete. A URL that failed is not retried within the same process.
4. **An offline copy inside an installed package** (e.g. the MovieLens-100K ratings shipped in the
   ``recbole`` 1.2.1 wheel), found through ``importlib.metadata`` without importing the package, and
   verified against its own checksum.

When every step fails, :class:`DataNotFoundError` lists every way to provide the file and why each
step failed. Derived arrays (parsed ratings, fitted factorisations) are cached as ``.npz`` files by
:func:`cached_arrays`, keyed by a hash of (source checksum, parameters), also written atomically.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
import json
import os
import shutil
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hbgym.fileio import atomic_write_stream

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_DATA_DIR",
    "ENV_OFFLINE",
    "ChecksumError",
    "DataFile",
    "DataNotFoundError",
    "Located",
    "OfflineCopy",
    "cache_dir",
    "cached_arrays",
    "download_file",
    "file_digest",
    "locate",
    "verify_file",
]

ENV_DATA_DIR = "HBGYM_DATA_DIR"
ENV_CACHE_DIR = "HBGYM_CACHE_DIR"
ENV_OFFLINE = "HBGYM_OFFLINE"

DOWNLOAD_TIMEOUT_S = 60.0
_BLOCK = 1 << 20


class DataNotFoundError(FileNotFoundError):
    """No lookup step produced the file; the message lists every way to provide it."""


class ChecksumError(ValueError):
    """A file's size or checksum does not match the checksum table."""


@dataclass(frozen=True)
class OfflineCopy:
    """A verified copy of a data file shipped inside an installed distribution (wheel).

    Attributes:
        distribution: the distribution name (``importlib.metadata.distribution``), e.g. ``"recbole"``.
        path: the file's path relative to the distribution's install root.
        sha256: expected sha256 of that file.
        fmt: how to parse it (a format key of the loader).
        install: the command that installs the distribution.
    """

    distribution: str
    path: str
    sha256: str
    fmt: str
    install: str


@dataclass(frozen=True)
class DataFile:
    """One row of the checksum table.

    Attributes:
        key: short name (``"ml-1m"``).
        filename: the file's name on disk, in a data directory and in the cache (``"ml-1m.zip"``).
        url: where to download it, or None when it cannot be downloaded.
        sha256, md5: expected checksum (sha256 preferred; md5 where only that is published).
        size: expected size in bytes, or None.
        fmt: how to parse the file (a format key of the loader).
        member: for archives, the member holding the data (``"ml-1m/ratings.dat"``).
        extracted: relative paths under which an already extracted copy is accepted in a data
            directory (unverified: its own sha256 is recorded instead), with their format key.
        offline: a verified copy inside an installed package, if any.
        description: one line for error messages and provenance.
    """

    key: str
    filename: str
    url: str | None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    fmt: str = ""
    member: str | None = None
    extracted: tuple[tuple[str, str], ...] = ()
    offline: OfflineCopy | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"DataFile {self.key!r} needs a sha256 or md5 checksum")


@dataclass(frozen=True)
class Located:
    """A file found by :func:`locate`.

    Attributes:
        path: where it is.
        fmt: its format key (archive format, extracted-file format or offline-copy format).
        member: archive member to read (archives only).
        origin: which lookup step found it (``"data_dir"``, ``"HBGYM_DATA_DIR"``, ``"cache"``,
            ``"download"``, ``"offline copy in recbole 1.2.1"``).
        sha256: sha256 of the file actually used.
        verified: True when it matched a checksum from the table.
        datafile: the table row.
        notes: what happened on the way (e.g. a corrupt cache file was replaced).
    """

    path: Path
    fmt: str
    member: str | None
    origin: str
    sha256: str
    verified: bool
    datafile: DataFile
    notes: tuple[str, ...] = field(default=())

    def provenance(self) -> dict[str, Any]:
        """A JSON-serialisable record of where the data came from."""
        out: dict[str, Any] = {
            "dataset": self.datafile.key,
            "file": self.path.name,
            "sha256": self.sha256,
            "verified": self.verified,
            "origin": self.origin,
        }
        if self.member:
            out["member"] = self.member
        if self.notes:
            out["notes"] = list(self.notes)
        return out


# --------------------------------------------------------------------------- paths and checksums


def cache_dir() -> Path:
    """The hbgym cache root: ``$HBGYM_CACHE_DIR``, else ``$XDG_CACHE_HOME/hbgym``, else ``~/.cache/hbgym``."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hbgym"


def offline_mode() -> bool:
    """True when ``HBGYM_OFFLINE`` is set to a true value (no download is attempted)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _sha256_memo(path: Path) -> str:
    """sha256 of ``path``, memoised in-process on (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]


def verify_file(path: Path | str, datafile: DataFile) -> str:
    """Check ``path`` against the table row (size, then sha256 or md5); return its sha256.

    Raises:
        ChecksumError: naming the file, the expected and the actual value.
    """
    path = Path(path)
    size = path.stat().st_size
    if datafile.size is not None and size != datafile.size:
        raise ChecksumError(
            f"{path} has {size} bytes but {datafile.filename} has {datafile.size} bytes "
            "(partial or different file)"
        )
    sha256 = _sha256_memo(path)
    if datafile.sha256 is not None and sha256 != datafile.sha256:
        raise ChecksumError(f"{path}: sha256 {sha256} does not match the expected {datafile.sha256}")
    if datafile.sha256 is None and datafile.md5 is not None:
        md5 = file_digest(path, "md5")
        if md5 != datafile.md5:
            raise ChecksumError(f"{path}: md5 {md5} does not match the expected {datafile.md5}")
    return sha256


_FAILED_URLS: dict[str, str] = {}


def download_file(datafile: DataFile, dest: Path | str, timeout: float = DOWNLOAD_TIMEOUT_S) -> str:
    """Download ``datafile.url`` to ``dest`` atomically, verifying it first; return its sha256.

    ``http(s)://`` and ``file://`` URLs are supported (``urllib``). Raises ``OSError`` (``URLError``
    is one) or ``http.client.HTTPException`` (e.g. ``IncompleteRead``) on transfer failure, and
    :class:`ChecksumError` when the bytes do not match the table; in every case ``dest`` is left
    untouched.
    """
    if datafile.url is None:
        raise ValueError(f"{datafile.key} has no download URL")
    dest = Path(dest)
    result: dict[str, str] = {}

    def write(stream: Any) -> None:
        with urllib.request.urlopen(datafile.url, timeout=timeout) as response:  # noqa: S310
            shutil.copyfileobj(response, stream, _BLOCK)

    def check(tmp: Path) -> None:
        result["sha256"] = verify_file(tmp, datafile)

    atomic_write_stream(dest, write, check)
    return result["sha256"]


# --------------------------------------------------------------------------- lookup


def _offline_path(copy: OfflineCopy) -> tuple[Path | None, str]:
    """Path of an offline copy (None if its distribution or file is absent) and a description."""
    try:
        dist = importlib.metadata.distribution(copy.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None, f"{copy.distribution} is not installed"
    path = Path(str(dist.locate_file(copy.path)))
    label = f"offline copy in {copy.distribution} {dist.version}"
    if not path.is_file():
        return None, f"{copy.distribution} {dist.version} is installed but has no {copy.path}"
    return path, label


def _check_dir(directory: Path, datafile: DataFile, label: str) -> Located | None:
    """Look for the archive or an extracted copy of ``datafile`` in ``directory``."""
    archive = directory / datafile.filename
    if archive.is_file():
        try:
            sha256 = verify_file(archive, datafile)
        except ChecksumError as err:
            raise ChecksumError(
                f"{err}. The file was given through {label}; replace it with an intact copy of "
                f"{datafile.filename}" + (f" ({datafile.url})" if datafile.url else "")
            ) from None
        return Located(archive, datafile.fmt, datafile.member, label, sha256, True, datafile)
    if datafile.offline is not None:
        copy = directory / Path(datafile.offline.path).name
        if copy.is_file():
            sha256 = _sha256_memo(copy)
            if sha256 != datafile.offline.sha256:
                raise ChecksumError(
                    f"{copy}: sha256 {sha256} does not match the expected {datafile.offline.sha256} "
                    f"(given through {label})"
                )
            return Located(copy, datafile.offline.fmt, None, label, sha256, True, datafile)
    for rel, fmt in datafile.extracted:
        candidate = directory / rel
        if candidate.is_file():
            return Located(candidate, fmt, None, label, _sha256_memo(candidate), False, datafile)
    return None


def _ways(datafile: DataFile, data_dir: Path | None) -> list[str]:
    names = [datafile.filename] + [rel for rel, _ in datafile.extracted]
    ways = [
        f"pass data_dir=DIR where DIR contains {' or '.join(names)}",
        f"set {ENV_DATA_DIR}=DIR (same layout)",
        f"put {datafile.filename} in the cache: {cache_dir() / 'downloads' / datafile.filename}",
    ]
    if datafile.url:
        ways.append(f"allow the download of {datafile.url} (download=True, {ENV_OFFLINE} unset)")
    if datafile.offline is not None:
        ways.append(f"install the offline copy: {datafile.offline.install}")
    return ways


def _not_found(datafile: DataFile, tried: list[str], data_dir: Path | None) -> DataNotFoundError:
    lines = [f"could not find {datafile.key} ({datafile.description or datafile.filename}).", "Tried:"]
    lines += [f"  - {t}" for t in tried]
    lines.append("Ways to provide it:")
    lines += [f"  - {w}" for w in _ways(datafile, data_dir)]
    return DataNotFoundError("\n".join(lines))


def locate(
    datafile: DataFile,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    offline: bool = True,
) -> Located:
    """Find ``datafile`` following the lookup order of this module.

    Args:
        datafile: the table row.
        data_dir: an explicit directory; when given, only it is searched.
        download: allow the download step (default: yes unless ``HBGYM_OFFLINE`` is set).
        offline: allow the offline-copy step.

    Raises:
        DataNotFoundError: nothing worked (the message lists every way to provide the file).
        ChecksumError: a file in an explicit directory does not match the table.
    """
    tried: list[str] = []
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        found = _check_dir(directory, datafile, "data_dir")
        if found is not None:
            return found
        tried.append(f"data_dir={str(directory)!r}: no {datafile.filename} there")
        raise _not_found(datafile, tried, directory)
    env_dir = os.environ.get(ENV_DATA_DIR)
    if env_dir:
        found = _check_dir(Path(env_dir).expanduser(), datafile, ENV_DATA_DIR)
        if found is not None:
            return found
        tried.append(f"{ENV_DATA_DIR}={env_dir!r}: no {datafile.filename} there")
    else:
        tried.append(f"{ENV_DATA_DIR}: not set")

    notes: list[str] = []
    cached = cache_dir() / "downloads" / datafile.filename
    if cached.is_file():
        try:
            sha256 = verify_file(cached, datafile)
            return Located(cached, datafile.fmt, datafile.member, "cache", sha256, True, datafile)
        except ChecksumError as err:
            notes.append(f"removed a corrupt cache file ({err})")
            warnings.warn(f"hbgym: {err}; removing the cached file and fetching it again", stacklevel=3)
            cached.unlink(missing_ok=True)
            tried.append(f"cache {cached}: corrupt, removed")
    else:
        tried.append(f"cache {cached}: absent")

    allow = (not offline_mode()) if download is None else bool(download)
    if datafile.url is None:
        tried.append("download: no URL in the checksum table")
    elif not allow:
        why = "download=False" if download is False else f"{ENV_OFFLINE} is set"
        tried.append(f"download of {datafile.url}: skipped ({why})")
    elif datafile.url in _FAILED_URLS:
        tried.append(f"download of {datafile.url}: failed earlier in this process "
                     f"({_FAILED_URLS[datafile.url]})")
    else:
        try:
            sha256 = download_file(datafile, cached)
            return Located(cached, datafile.fmt, datafile.member, "download", sha256, True, datafile,
                           tuple(notes))
        except (OSError, http.client.HTTPException, ChecksumError, ValueError) as err:
            reason = f"{type(err).__name__}: {err}"
            _FAILED_URLS[datafile.url] = reason
            tried.append(f"download of {datafile.url}: {reason}")

    if datafile.offline is not None and offline:
        path, label = _offline_path(datafile.offline)
        if path is None:
            tried.append(f"offline copy: {label}")
        else:
            sha256 = _sha256_memo(path)
            if sha256 == datafile.offline.sha256:
                return Located(path, datafile.offline.fmt, None, label, sha256, True, datafile, tuple(notes))
            tried.append(f"{label} at {path}: sha256 {sha256} does not match {datafile.offline.sha256}")
    elif datafile.offline is None:
        tried.append("offline copy: none known for this file")
    raise _not_found(datafile, tried, None)


def forget_failed_downloads() -> None:
    """Allow URLs that failed earlier in this process to be tried again."""
    _FAILED_URLS.clear()


# --------------------------------------------------------------------------- derived-array cache

_MEMO: dict[str, dict[str, np.ndarray]] = {}
_KEY_FIELD = "__hbgym_cache_key__"


def cache_key(params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``params`` (the identity of a derived result)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def cached_arrays(
    kind: str,
    params: Mapping[str, Any],
    compute: Callable[[], dict[str, np.ndarray]],
    *,
    use_disk: bool = True,
) -> dict[str, np.ndarray]:
    """Arrays computed by ``compute()``, cached in memory and in ``<cache>/fits/<kind>-<key>.npz``.

    ``params`` must identify the result completely (source checksum, every parameter, a version).
    A cache file that cannot be read or whose stored key differs is recomputed and replaced. Writes
    are atomic; when the cache directory is not writable the result is still returned (with a
    warning). Arrays are returned read-only.
    """
    key = cache_key({"kind": kind, **params})
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / "fits" / f"{kind}-{key[:20]}.npz"
    arrays: dict[str, np.ndarray] | None = None
    if use_disk and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data[_KEY_FIELD]) == key:
                    arrays = {name: data[name] for name in data.files if name != _KEY_FIELD}
        except Exception:  # noqa: BLE001 - any unreadable cache file is recomputed
            arrays = None
    if arrays is None:
        arrays = {name: np.asarray(value) for name, value in compute().items()}
        if use_disk:
            try:
                atomic_write_stream(path, lambda s: np.savez(s, **arrays, **{_KEY_FIELD: np.array(key)}))
            except OSError as err:
                warnings.warn(f"hbgym: could not write the cache file {path}: {err}", stacklevel=2)
    for value in arrays.values():
        value.setflags(write=False)
    _MEMO[key] = arrays
    return arrays


def clear_memory_cache() -> None:
    """Forget the in-process cache of derived arrays (the disk cache is kept)."""
    _MEMO.clear()
