"""The one atomic file writer of hbgym (datasets cache, offline ``.npz`` saves, the results store).

A write goes to a temporary file in the destination's directory (``.<name>.<random>.part``), is
flushed and ``fsync``-ed, optionally checked, given an ordinary file mode (``0o644`` by default:
``mkstemp`` creates ``0o600``) and renamed over the destination with ``os.replace``. Readers see the
old file or the complete new one, never a partial one; on any error (including ``KeyboardInterrupt``)
the temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["TEMP_SUFFIX", "atomic_write", "atomic_write_stream"]

#: suffix of the temporary files (a leftover one is a write that was killed mid-way)
TEMP_SUFFIX = ".part"


def _check_mode(mode: Any) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise ValueError(f"mode must be a permission integer in [0, 0o7777] such as 0o644, got {mode!r}")
    return mode


def atomic_write_stream(
    path: str | os.PathLike[str],
    write: Callable[[IO[bytes]], Any],
    check: Callable[[Path], Any] | None = None,
    mode: int = 0o644,
    fsync: bool = True,
) -> Path:
    """Write a file atomically by streaming into it.

    Args:
        path: the destination; its parent directories are created.
        write: ``write(stream)`` fills the temporary file (a binary stream).
        check: ``check(tmp_path)`` runs on the complete, synced temporary file before the rename;
            it may raise to reject the content (``path`` then keeps its old content).
        mode: permission bits of the written file.
        fsync: force the data to the disk before the rename; ``False`` (the results store's cell files,
            whose index line is checksummed) survives a killed process but not a power loss.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    mode = _check_mode(mode)
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            if fsync:
                os.fsync(stream.fileno())
        if check is not None:
            check(Path(tmp))
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring and :func:`atomic_write_stream`);
    return ``path`` as a Path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return atomic_write_stream(path, lambda stream: stream.write(data), mode=mode, fsync=fsync)
