"""Per-replicate counter-based random streams for batched agents.

A batched agent runs ``B`` replicates in lockstep; replicate ``b`` of an agent seeded ``s`` plays the
env seeded ``s + b`` (the vector-env convention). Every random draw of replicate ``b`` is a pure
function of ``(s + b, that replicate's draw counter)``: a SplitMix64 hash (the same function as
:mod:`hbgym.rng`, here on int64 torch tensors with logical shifts, so it runs on CPU and CUDA) turned
into a uniform, a normal, an integer or a categorical draw. Element ``i`` of a replicate's draw never
depends on ``B`` or on the other replicates, so a seed's results are the same whether it runs alone
or inside any chunk of seeds.

Each call to a draw method advances the counter of every participating replicate by the number of
elements drawn per replicate; ``rows`` restricts a draw to some replicates (the others' counters do
not move).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from hbgym.rng import hash_words

__all__ = ["STREAM_AGENT", "ReplicateStreams"]

#: stream word of agent randomness (the env's streams use 1..5 and family streams above 100)
STREAM_AGENT = 77


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's ``>>`` is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser on int64 bit patterns (wrapping multiplication)."""
    z = (z ^ _shr(z, 30)) * _MUL1
    z = (z ^ _shr(z, 27)) * _MUL2
    return z ^ _shr(z, 31)


def _to_uniform(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Hashes -> floats strictly inside (0, 1): 53 bits for float64, 24 bits for float32 (exact)."""
    if dtype == torch.float64:
        return (_shr(h, 11).to(torch.float64) + 0.5) * 2.0**-53
    return (_shr(h, 40).to(torch.float32) + 0.5) * 2.0**-24


class ReplicateStreams:
    """``B`` independent random streams, one per replicate, on one device.

    Args:
        num_envs: ``B``.
        device: where the draws are made (the agent's device).
    """

    def __init__(self, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.keys = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.counters = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
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
        self.counters = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ raw bits

    def _bits(self, shape: Sequence[int], rows: torch.Tensor | None) -> torch.Tensor:
        """int64 hashes ``(R, *shape)`` for the next ``prod(shape)`` counters of each of ``R`` rows."""
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        keys, counters = self.keys, self.counters
        if rows is not None:
            keys, counters = keys[rows], counters[rows]
        index = counters[:, None] + torch.arange(n, device=self.device)  # (R, n)
        h = _mix(keys[:, None] + (index + 1) * _GOLDEN)
        if rows is None:
            self.counters = self.counters + n
        else:
            self.counters = self.counters.index_add(0, rows, torch.full_like(rows, n))
        return h.reshape(len(keys), *shape)

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
        """Uniform(0, 1) draws ``(R, *shape)`` (``R = B``, or the selected ``rows``)."""
        rows = self._rows(rows)
        return _to_uniform(self._bits(shape, rows), dtype)

    def normal(
        self, shape: Sequence[int], dtype: torch.dtype = torch.float64, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Standard normal draws ``(R, *shape)`` (Box-Muller on two sub-hashes, computed in float64)."""
        rows = self._rows(rows)
        h = self._bits(shape, rows)
        u1 = _to_uniform(_mix(h ^ _MUL1), torch.float64)
        u2 = _to_uniform(_mix(h ^ _MUL2), torch.float64)
        return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)).to(dtype)

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
