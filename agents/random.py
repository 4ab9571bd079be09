"""Per-replicate counter-based random streams for batched agents.

A batched agent runs ``B`` replicates in lockstep; replicate ``b`` of an agent seeded ``s`` plays the
env seeded ``s + b`` (the vector-env convention). Every random draw of replicate ``b`` is a pure
function of ``(s + b, that replicate's draw counter)``: a SplitMix64 hash (the same function as
:mod:`hbgym.rng`: on CPU its NumPy code itself, on CUDA the same steps on int64 torch tensors with
logical shifts) turned into a uniform, a normal, an integer or a categorical draw. Element ``i`` of a
replicate's draw never depends on ``B`` or on the other replicates, so a seed's results are the same
whether it runs alone or inside any chunk of seeds.

Each call to a draw method advances the counter of every participating replicate by the number of
elements drawn per replicate; ``rows`` restricts a draw to some replicates (the others' counters do
not move).

Speed: hashing one draw takes ~20 elementwise torch ops and a normal ~40 more, which dominates a
single-replicate agent's round. A draw over all replicates is therefore served as a slice of a
precomputed *block*: the uniforms / Box-Muller normals of each replicate's next ``L`` counters,
``(B, L)`` per kind of value drawn from it. The values are the same elementwise functions of ``(key,
counter)`` as the direct path, so a draw's bits never depend on whether it came from a block. ``B * L``
is capped (:data:`BLOCK_ELEMENTS`); draws that do not fit, and ``rows`` draws, take the direct path and
drop the block (after a ``rows`` draw its columns no longer line up across replicates). When a draw
does not fit in what is left of the block, the block is extended: its unused columns are copied into a
new block whose new columns are computed in place (only they are hashed; the hashes are not kept: a
kind first drawn from a live block hashes its columns again). ``L`` doubles each time and halves when a
block is dropped, so agents that interleave ``rows`` draws do not hash much they never use. On CPU the
normals' NumPy temporaries live in buffers reused by the stream (:class:`_Workspace`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from hbgym.rng import hash_counter_runs, hash_words, normal_uniforms, to_uniform

__all__ = ["BLOCK_ELEMENTS", "STREAM_AGENT", "ReplicateStreams"]

#: stream word of agent randomness (the env's streams use 1..5 and family streams above 100)
STREAM_AGENT = 77

#: most elements ``B * L`` of a precomputed block (512 KiB per int64 or float64 copy: blocks stay in
#: L2 cache; larger draws gain nothing from a block and take the direct path). 2^16 rather than 2^14:
#: meTS at B=50 draws 206 normals per replicate per round, and a block of 1310 of them refills every
#: sixth round instead of every round (-30% stream time there; benchmarks/results/agent_scaling.md)
BLOCK_ELEMENTS = 1 << 16
#: block length bounds (counters per replicate)
_BLOCK_MIN, _BLOCK_MAX = 64, 4096


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's ``>>`` is arithmetic)."""
    return (z >> k).bitwise_and_((1 << (64 - k)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser on int64 bit patterns (wrapping multiplication); a new tensor (the
    in-place steps work on a fresh copy, which saves temporaries, not bits)."""
    z = (z ^ _shr(z, 30)).mul_(_MUL1)
    z.bitwise_xor_(_shr(z, 27)).mul_(_MUL2)
    return z.bitwise_xor_(_shr(z, 31))


def _to_uniform(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Hashes -> floats strictly inside (0, 1): 53 bits for float64, 24 bits for float32 (exact)."""
    if dtype == torch.float64:
        return _shr(h, 11).to(torch.float64).add_(0.5).mul_(2.0**-53)
    return _shr(h, 40).to(torch.float32).add_(0.5).mul_(2.0**-24)


def _hash(keys: torch.Tensor, counters: torch.Tensor, n: int) -> torch.Tensor:
    """int64 hashes ``(R, n)`` of counters ``counters[r] .. counters[r] + n - 1`` under ``keys[r]``."""
    if keys.device.type == "cpu":  # hbgym.rng itself: NumPy's uint64 shifts are logical (fewer passes)
        starts = counters.numpy().view(np.uint64)  # counters are >= 0
        return torch.from_numpy(hash_counter_runs(keys.numpy().view(np.uint64), starts, n).view(np.int64))
    index = counters[:, None] + torch.arange(1, n + 1, device=counters.device)  # (R, n): counter + 1
    return _mix(index.mul_(_GOLDEN).add_(keys[:, None]))


#: dtype of each kind of value
_DTYPES = {"u64": torch.float64, "u32": torch.float32, "normal": torch.float64}


class _Workspace:
    """Flat NumPy buffers reused by every draw of one stream for the normals' stacked sub-hashes and
    uniforms (:func:`hbgym.rng.normal_uniforms`): temporaries of a few hundred KiB allocated and freed
    per block can cost page faults, as much again as the arithmetic (~12 ns per normal at a (50, 1236)
    block). Up to ``2 * BLOCK_ELEMENTS`` elements are kept; larger requests get new arrays."""

    def __init__(self) -> None:
        self._ints = np.empty(0, dtype=np.uint64)
        self._floats = np.empty(0, dtype=np.float64)

    def arrays(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """uint64 and float64 arrays of ``shape`` (views of the buffers, grown when too small)."""
        n = math.prod(shape)
        if n > 2 * BLOCK_ELEMENTS:  # a big direct draw: not worth keeping
            return np.empty(shape, dtype=np.uint64), np.empty(shape, dtype=np.float64)
        if self._ints.size < n:
            self._ints, self._floats = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.float64)
        return self._ints[:n].reshape(shape), self._floats[:n].reshape(shape)


def _values(
    h: torch.Tensor, kind: str, out: torch.Tensor | None = None, work: _Workspace | None = None
) -> torch.Tensor:
    """Hashes -> ``"u64"``/``"u32"`` uniforms (float64/float32) or ``"normal"`` (float64 Box-Muller on
    two sub-hashes); elementwise, same shape as ``h``. Written into ``out`` when given (else a new
    tensor); ``work`` holds the CPU normals' temporaries (else they are allocated)."""
    cpu = h.device.type == "cpu"  # the integer steps in hbgym.rng's NumPy code (the same bits, faster)
    if kind == "u64" and cpu:
        values = torch.from_numpy(to_uniform(h.numpy().view(np.uint64)))
    elif kind == "u64":
        values = _to_uniform(h, torch.float64)
    elif kind == "u32":
        values = _to_uniform(h, torch.float32)
    else:
        if cpu:
            ints, floats = work.arrays((2, *h.shape)) if work is not None else (None, None)
            u1, u2 = normal_uniforms(h.numpy().view(np.uint64), floats, ints)
            u1, u2 = torch.from_numpy(u1), torch.from_numpy(u2)
        else:
            u1 = _to_uniform(_mix(h ^ _MUL1), torch.float64)
            u2 = _to_uniform(_mix(h ^ _MUL2), torch.float64)
        radius = u1.log_().mul_(-2.0).sqrt_()  # sqrt(-2 ln u1) cos(2 pi u2)
        return torch.mul(radius, u2.mul_(2.0 * math.pi).cos_(), out=out)
    return values if out is None else out.copy_(values)


class ReplicateStreams:
    """``B`` independent random streams, one per replicate, on one device.

    Args:
        num_envs: ``B``.
        device: where the draws are made (the agent's device).
    """

    def __init__(self, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        # most counters per replicate a block may hold (0: every draw takes the direct path)
        self._cap = min(_BLOCK_MAX, BLOCK_ELEMENTS // max(self.num_envs, 1))
        self.seed(None)

    def seed(self, seed: int | None) -> None:
        """Replicate ``b`` gets the stream of seed ``seed + b``; ``None`` draws a fresh OS seed."""
        if seed is None:
            seed = int.from_bytes(os.urandom(7), "little")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        seeds = np.arange(self.num_envs, dtype=np.uint64) + np.uint64(seed)
        keys = hash_words(seeds, STREAM_AGENT).view(np.int64)
        self.keys = torch.as_tensor(keys.copy(), device=self.device)
        # counter of replicate b = self._base[b] + self._offset (a Python int: no tensor op per draw)
        self._base = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._offset = 0
        self._length = 0  # L: the block holds counters _base .. _base + L - 1 (0: no block)
        self._derived: dict[str, torch.Tensor] = {}  # kind -> (B, L) values of the block
        self._block_len = _BLOCK_MIN
        self._work = _Workspace()

    @property
    def counters(self) -> torch.Tensor:
        """``(B,)`` int64: how many elements each replicate has drawn since :meth:`seed`."""
        return self._base + self._offset

    # ------------------------------------------------------------------ raw draws

    def _draw(self, shape: Sequence[int], rows: torch.Tensor | None, kind: str) -> torch.Tensor:
        """``_values`` of kind ``kind`` ``(R, *shape)`` for the next ``prod(shape)`` counters of each of
        ``R`` rows (all ``B`` replicates when ``rows`` is None), from the block when they fit in it."""
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        if rows is None and n <= self._cap:
            if self._offset + n > self._length:
                self._refill(n, kind)
            elif kind not in self._derived:  # a new kind for a live block: hash it again
                hashes = _hash(self.keys, self._base, self._length)
                self._derived[kind] = _values(hashes, kind, work=self._work)
            # a view: each column is served once, so writing into a draw cannot change another draw
            values = self._derived[kind][:, self._offset:self._offset + n]
            self._offset += n
            return values.reshape(self.num_envs, *shape)
        counters = self.counters
        if rows is None:
            values = _values(_hash(self.keys, counters, n), kind, work=self._work)
            counters = counters + n
        else:
            values = _values(_hash(self.keys[rows], counters[rows], n), kind, work=self._work)
            counters = counters.index_add(0, rows, torch.full_like(rows, n))
        self._drop()
        self._base = counters
        return values.reshape(len(values), *shape)

    def _refill(self, n: int, kind: str) -> None:
        """Extend the block past its end so that it holds at least ``n`` unused counters per replicate,
        with the values of ``kind`` and of every kind drawn from it so far. Its used columns are
        discarded; the unused ones are kept (copied into the new block, whose new columns are computed
        in place), so nothing is hashed twice."""
        if self._length:  # the previous block ran out: blocks are worth making longer
            self._block_len = min(2 * self._block_len, self._cap)
        kept = self._length - self._offset
        target = max(min(self._block_len, self._cap), n)  # n <= _cap: never more than BLOCK_ELEMENTS
        extra = _hash(self.keys, self._base + self._length, target - kept)
        derived = {}
        for k in dict.fromkeys([*self._derived, kind]):
            block = torch.empty(self.num_envs, target, dtype=_DTYPES[k], device=self.device)
            if k in self._derived:
                block[:, :kept] = self._derived[k][:, self._offset:]
            elif kept:  # a new kind: the kept columns hashed again
                _values(_hash(self.keys, self._base + self._offset, kept), k, block[:, :kept], self._work)
            _values(extra, k, block[:, kept:], self._work)
            derived[k] = block
        self._derived = derived
        self._base = self._base + self._offset
        self._offset = 0
        self._length = target

    def _drop(self) -> None:
        """Forget the block (its unused columns are wasted, so the next one is shorter)."""
        if self._length:
            self._block_len = max(self._block_len // 2, _BLOCK_MIN)
        self._derived = {}
        self._base = self.counters
        self._offset = 0
        self._length = 0

    @staticmethod
    def _rows(rows: torch.Tensor | None) -> torch.Tensor | None:
        if rows is None:
            return None
        rows = torch.as_tensor(rows)
        if rows.dtype == torch.bool:
            rows = rows.nonzero()[:, 0]
        return rows.long()

    # ------------------------------------------------------------------ distributions

    def uniform(
        self, shape: Sequence[int], dtype: torch.dtype = torch.float64, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Uniform(0, 1) draws ``(R, *shape)`` (``R = B``, or the selected ``rows``); float64 when
        ``dtype`` is float64, float32 otherwise."""
        return self._draw(shape, self._rows(rows), "u64" if dtype == torch.float64 else "u32")

    def normal(
        self, shape: Sequence[int], dtype: torch.dtype = torch.float64, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Standard normal draws ``(R, *shape)`` (Box-Muller on two sub-hashes, computed in float64)."""
        values = self._draw(shape, self._rows(rows), "normal")
        return values if dtype == torch.float64 else values.to(dtype)

    def normal_like(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normals of ``like``'s shape, dtype and device; ``like`` is ``(B, ...)`` or
        ``(B * K, ...)`` with the replicate index outermost (a reshape of ``(B, K, ...)``)."""
        shape = tuple(like.shape)
        if not shape or shape[0] % self.num_envs:
            raise ValueError(f"shape {shape} has no leading replicate dim of {self.num_envs}")
        if shape[0] == self.num_envs:  # (B, ...): drawn in that shape (one reshape)
            return self.normal(shape[1:], like.dtype)
        return self.normal((math.prod(shape) // self.num_envs,), like.dtype).reshape(shape)

    def randint(self, high: int, shape: Sequence[int], rows: torch.Tensor | None = None) -> torch.Tensor:
        """Integers uniform on ``0 .. high - 1``, ``(R, *shape)`` int64."""
        if high < 1:
            raise ValueError(f"high must be >= 1, got {high}")
        u = self.uniform(shape, torch.float64, rows)
        return (u * high).long().clamp_(max=high - 1)

    def categorical(
        self, probs: torch.Tensor, num_samples: int | None = None, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Inverse-CDF draws from unnormalised non-negative ``probs`` ``(R, *S, K)``.

        Returns ``(R, *S)`` int64, or ``(R, *S, num_samples)`` when ``num_samples`` is given.
        """
        lead = probs.shape[:-1]
        per_row = tuple(lead[1:]) + ((num_samples,) if num_samples is not None else ())
        u = self.uniform(per_row, probs.dtype, self._rows(rows))
        cdf = torch.cumsum(probs, dim=-1)
        total = cdf[..., -1:]
        if not bool(((total > 0) & torch.isfinite(total)).all()) or bool((probs < 0).any()):
            raise ValueError("categorical probs must be finite, non-negative and not all zero in a row; "
                             f"got row sums in [{float(total.min())}, {float(total.max())}]")
        target = u.reshape(*lead, -1) * total
        out = torch.searchsorted(cdf.contiguous(), target.contiguous(), right=True)
        out = out.clamp_(max=probs.shape[-1] - 1)
        return out if num_samples is not None else out[..., 0]
