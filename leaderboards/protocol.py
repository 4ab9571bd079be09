"""The framed pipe protocol between the trusted runner and a sandboxed agent process.

Parent -> child messages are pickles (the child trusts its parent). Child -> parent messages are
frames the parent decodes without ever unpickling: a fixed 32-byte header followed by raw bytes::

    magic  b"HBGF"   4 bytes
    kind   uint8     READY | ACTIONS | ERROR
    dtype  uint8     an index into DTYPES (ACTIONS only; 0 otherwise)
    ndim   uint8     0 .. 4 (ACTIONS only)
    pad    1 byte
    shape  4 x uint32   (unused dims 0)
    nbytes uint64    length of the payload

The parent checks the magic, the kind, the dtype code, ``ndim``, that ``nbytes`` equals
``prod(shape) * itemsize`` (ERROR: UTF-8 text) and that it is at most ``max_bytes``; any violation is
:class:`ProtocolError` and fails the cell. Reads and writes honour a deadline (``select``), so a
child that stops talking fails the cell at its wall-time limit instead of hanging the parent.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import time
from typing import Any

import numpy as np

__all__ = ["ProtocolError", "AgentTimeout", "READY", "ACTIONS", "ERROR", "DTYPES", "encode_frame",
           "read_frame", "write_message", "read_message", "MAX_ERROR_BYTES"]

MAGIC = b"HBGF"
HEADER = struct.Struct("<4sBBBx4IQ")
READY, ACTIONS, ERROR = 1, 2, 3
KINDS = {READY: "ready", ACTIONS: "actions", ERROR: "error"}
#: dtypes an agent may answer with; the env's own check then decides (it accepts integers only)
DTYPES = tuple(np.dtype(t) for t in ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16",
                                      "uint8", "float64", "float32", "bool"))
MAX_ERROR_BYTES = 8192


class ProtocolError(RuntimeError):
    """A malformed frame or a broken pipe from the agent process (the message says which)."""


class AgentTimeout(ProtocolError):
    """The agent process did not answer before the cell's wall-time limit."""


def encode_frame(kind: int, array: np.ndarray | None = None, text: str = "") -> bytes:
    """One frame: ``array`` for ACTIONS (C order), ``text`` (truncated to MAX_ERROR_BYTES) for ERROR."""
    if kind == ACTIONS:
        arr = np.ascontiguousarray(array)
        if arr.dtype not in DTYPES:
            allowed = [str(d) for d in DTYPES]
            raise TypeError(f"actions of dtype {arr.dtype} cannot be sent; use one of {allowed}")
        if arr.ndim > 4:
            raise TypeError(f"actions with {arr.ndim} dimensions cannot be sent (at most 4)")
        shape = [*arr.shape, *([0] * (4 - arr.ndim))]
        payload = arr.tobytes()
        return HEADER.pack(MAGIC, kind, DTYPES.index(arr.dtype), arr.ndim, *shape, len(payload)) + payload
    payload = text.encode("utf-8", errors="replace")[:MAX_ERROR_BYTES]
    return HEADER.pack(MAGIC, kind, 0, 0, 0, 0, 0, 0, len(payload)) + payload


def _wait(fd: int, deadline: float, write: bool) -> None:
    left = None if deadline == float("inf") else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise AgentTimeout("the agent did not answer within the wall-time limit")
    ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
    if not any(ready):
        raise AgentTimeout("the agent did not answer within the wall-time limit")


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        _wait(fd, deadline, write=False)
        try:
            chunk = os.read(fd, min(n - got, 1 << 20))
        except OSError as err:
            raise ProtocolError(f"reading from the agent failed: {err}") from err
        if not chunk:
            raise ProtocolError(f"the agent closed the pipe (early exit?) after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float, max_bytes: int) -> tuple[str, np.ndarray | str | None]:
    """Read and check one frame; returns ``("ready", None)``, ``("actions", array)`` or ``("error", text)``.

    Raises:
        ProtocolError: bad magic, kind, dtype code, ndim, size or a closed pipe.
        AgentTimeout: nothing (complete) arrived before ``deadline``.
    """
    head = _read_exact(fd, HEADER.size, deadline)
    magic, kind, code, ndim, d0, d1, d2, d3, nbytes = HEADER.unpack(head)
    if magic != MAGIC:
        raise ProtocolError(f"malformed frame: bad magic {magic!r} (expected {MAGIC!r})")
    if kind not in KINDS:
        raise ProtocolError(f"malformed frame: unknown kind {kind} (expected one of {sorted(KINDS)})")
    limit = MAX_ERROR_BYTES if kind == ERROR else max_bytes
    if nbytes > limit:
        raise ProtocolError(f"frame of {nbytes} bytes exceeds the limit of {limit} bytes")
    if kind == READY:
        if nbytes:
            raise ProtocolError(f"malformed ready frame: {nbytes} payload bytes (expected 0)")
        return "ready", None
    if kind == ERROR:
        return "error", _read_exact(fd, nbytes, deadline).decode("utf-8", errors="replace")
    if code >= len(DTYPES):
        raise ProtocolError(f"malformed frame: dtype code {code} (expected 0 .. {len(DTYPES) - 1})")
    if ndim > 4:
        raise ProtocolError(f"malformed frame: ndim {ndim} (expected 0 .. 4)")
    shape = (d0, d1, d2, d3)[:ndim]
    dtype = DTYPES[code]
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
        raise ProtocolError(f"malformed frame: {nbytes} bytes do not hold a {dtype} array of shape {shape}")
    payload = _read_exact(fd, nbytes, deadline)
    return "actions", np.frombuffer(payload, dtype=dtype).reshape(shape).copy()


def write_message(fd: int, obj: Any, deadline: float | None = None) -> None:
    """Send one length-prefixed pickle (parent -> child); honours ``deadline`` if given."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = struct.pack("<Q", len(data)) + data
    view = memoryview(data)
    while view:
        if deadline is not None:
            _wait(fd, deadline, write=True)
        try:
            n = os.write(fd, view[:1 << 16])
        except (BrokenPipeError, OSError) as err:
            raise ProtocolError(f"the agent closed the pipe (early exit?): {err}") from err
        view = view[n:]


def read_message(fd: int) -> Any:
    """Receive one message written by :func:`write_message` (child side: blocks; the parent is trusted)."""
    (size,) = struct.unpack("<Q", _read_exact(fd, 8, float("inf")))
    return pickle.loads(_read_exact(fd, size, float("inf")))
