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
precomputed *block*: the hashes of each replicate's next ``L`` counters, ``(B, L)``, and, computed
once per block when first asked for, their uniforms / Box-Muller normals. The values are the same
elementwise functions of ``(key, counter)`` as the direct path, so a draw's bits never depend on
whether it came from a block. ``B * L`` is capped (:data:`BLOCK_ELEMENTS`); draws that do not fit,
and ``rows`` draws, take the direct path and drop the block (after a ``rows`` draw its columns no
longer line up across replicates). When a draw does not fit in what is left of the block, the block is
extended (its unused columns are kept); ``L`` doubles each time and halves when a block is dropped,
so agents that interleave ``rows`` draws do not hash much they never use.
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


def _values(h: torch.Tensor, kind: str) -> torch.Tensor:
    """Hashes -> ``"u64"``/``"u32"`` uniforms (float64/float32) or ``"normal"`` (float64 Box-Muller on
    two sub-hashes); elementwise, same shape as ``h``."""
    cpu = h.device.type == "cpu"  # the integer steps in hbgym.rng's NumPy code (the same bits, faster)
    if kind == "u64":
        if cpu:
            return torch.from_numpy(to_uniform(h.numpy().view(np.uint64)))
        return _to_uniform(h, torch.float64)
    if kind == "u32":
        return _to_uniform(h, torch.float32)
    if cpu:
        u1, u2 = (torch.from_numpy(u) for u in normal_uniforms(h.numpy().view(np.uint64)))
    else:
        u1 = _to_uniform(_mix(h ^ _MUL1), torch.float64)
        u2 = _to_uniform(_mix(h ^ _MUL2), torch.float64)
    return u1.log_().mul_(-2.0).sqrt_().mul_(u2.mul_(2.0 * math.pi).cos_())  # sqrt(-2 ln u1) cos(2 pi u2)


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
        self._block: torch.Tensor | None = None  # (B, L) hashes of counters _base .. _base + L - 1
        self._derived: dict[str, torch.Tensor] = {}  # kind -> _values(self._block, kind)
        self._block_len = _BLOCK_MIN

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
            if self._block is None or self._offset + n > self._block.shape[1]:
                self._refill(n)
            if kind not in self._derived:
                self._derived[kind] = _values(self._block, kind)
            # a view: each column is served once, so writing into a draw cannot change another draw
            values = self._derived[kind][:, self._offset:self._offset + n]
            self._offset += n
            return values.reshape(self.num_envs, *shape)
        counters = self.counters
        if rows is None:
            values = _values(_hash(self.keys, counters, n), kind)
            counters = counters + n
        else:
            values = _values(_hash(self.keys[rows], counters[rows], n), kind)
            counters = counters.index_add(0, rows, torch.full_like(rows, n))
        self._drop()
        self._base = counters
        return values.reshape(len(values), *shape)

    def _refill(self, n: int) -> None:
        """Extend the block past its end so that it holds at least ``n`` unused counters per replicate;
        its used columns are discarded and the unused ones kept (with their uniforms / normals), so
        nothing is hashed twice. Every kind of value drawn from this block is extended too."""
        if self._block is None:  # (then _offset is 0: _drop and seed reset it)
            self._block = torch.empty(self.num_envs, 0, dtype=torch.long, device=self.device)
        else:  # the previous block ran out: blocks are worth making longer
            self._block_len = min(2 * self._block_len, self._cap)
        length = self._block.shape[1]
        target = max(min(self._block_len, self._cap), n)  # n <= _cap: never more than BLOCK_ELEMENTS
        extra = _hash(self.keys, self._base + length, target - (length - self._offset))
        self._block = torch.cat([self._block[:, self._offset:], extra], dim=1)
        self._derived = {kind: torch.cat([values[:, self._offset:], _values(extra, kind)], dim=1)
                         for kind, values in self._derived.items()}
        self._base = self._base + self._offset
        self._offset = 0

    def _drop(self) -> None:
        """Forget the block (its unused columns are wasted, so the next one is shorter)."""
        if self._block is not None:
            self._block_len = max(self._block_len // 2, _BLOCK_MIN)
        self._block = None
        self._derived = {}
        self._base = self.counters
        self._offset = 0

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
        if like.numel() % self.num_envs or like.shape[0] % self.num_envs:
            raise ValueError(f"shape {tuple(like.shape)} has no leading replicate dim of {self.num_envs}")
        z = self.normal((like.numel() // self.num_envs,), like.dtype)
        return z.reshape(like.shape)

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
