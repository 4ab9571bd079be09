"""Counter-based random numbers for batched, paired simulation.

Every draw is a pure function of ``(key, stream, counter words...)``: a SplitMix64-style hash of the
words, turned into a uniform or a standard normal. This gives hbgym three properties at once:

* **Common random numbers.** The reward noise of (round, slot, action) is ``normal(key, NOISE, t,
  slot, action)``: it does not depend on which actions were taken before, so two agents run on the
  same seed see the same noise for the same action, and only the noise of the chosen actions is ever
  computed.
* **Vector env == single env.** A native vector env computes the same function over a batch of keys,
  with array operations and no Python loop over the batch, and slot ``i`` reproduces the single env
  whose episode key is ``keys[i]``.
* **Independent streams.** Instance, schedule, contexts and noise use different ``stream`` words, so
  changing e.g. the number of rounds never changes the sampled instance.

Episode keys themselves come from ``env.np_random`` (see :func:`episode_key`), so Gymnasium's
seeding semantics (``reset(seed=...)``, continuing streams on ``reset()``) hold unchanged.

All functions broadcast their integer arguments with NumPy rules and return ``float64`` arrays of the
broadcast shape.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "STREAM_INSTANCE",
    "STREAM_SCHEDULE",
    "STREAM_CONTEXT",
    "STREAM_NOISE",
    "STREAM_ACTIONS",
    "episode_key",
    "hash_words",
    "hash_counter_runs",
    "to_uniform",
    "normal_uniforms",
    "uniform",
    "normal",
    "multivariate_normal",
    "categorical",
    "indexed",
]

# Stream identifiers: the first word after the key. Families may add their own above 100.
STREAM_INSTANCE = 1
STREAM_SCHEDULE = 2
STREAM_CONTEXT = 3
STREAM_NOISE = 4
STREAM_ACTIONS = 5

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_MINUS_53 = 2.0**-53


# shift counts as uint64 scalars built once (a ufunc call with a prebuilt scalar is ~0.4 us cheaper)
_S11, _S27, _S30, _S31 = (np.uint64(k) for k in (11, 27, 30, 31))


def _mix(z: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """SplitMix64 finaliser (a bijection of uint64 with good avalanche), computed in place: ``z`` is a
    uint64 array the caller owns (a temporary; its hash is returned in it); ``scratch``, a uint64 array
    of its shape, holds the shifted copies (a new one when None)."""
    shifted = np.right_shift(z, _S30, out=scratch)
    z ^= shifted
    z *= _MUL1
    np.right_shift(z, _S27, out=shifted)
    z ^= shifted
    z *= _MUL2
    np.right_shift(z, _S31, out=shifted)
    z ^= shifted
    return z


_MASK = 2**64 - 1
_GOLDEN_INT, _MUL1_INT, _MUL2_INT = int(_GOLDEN), int(_MUL1), int(_MUL2)


def _mix_int(z: int) -> int:
    """:func:`_mix` on one Python int in [0, 2**64) (same bits, without NumPy's per-call overhead)."""
    z = ((z ^ (z >> 30)) * _MUL1_INT) & _MASK
    z = ((z ^ (z >> 27)) * _MUL2_INT) & _MASK
    return z ^ (z >> 31)


_SMALL = 32  # up to this many draws of one episode, Python ints beat NumPy's per-call overhead


def _hash_small(key: np.ndarray | int, words: tuple) -> tuple[list[int], tuple[int, ...]] | None:
    """:func:`hash_words` element by element with Python ints (the same bits) when ``key`` is one
    episode and the draw is small (the single env's per-round draws); None otherwise.

    Returns the hashes as a flat list and the broadcast shape of ``(key, *words)``.
    """
    if isinstance(key, np.ndarray):
        if key.size != 1:
            return None
        value = int(key.reshape(-1)[0])
    elif isinstance(key, (int, np.integer)):
        value = int(key) & _MASK
    else:
        return None
    arrays: list[np.ndarray] = []
    for word in words:
        if isinstance(word, (int, np.integer)):
            if arrays:  # a scalar after an array word: hash it per element below
                arrays.append(np.asarray(word))
                continue
            value = _mix_int((value + ((int(word) + 1) & _MASK) * _GOLDEN_INT) & _MASK)
        else:
            arrays.append(np.asarray(word))
    shape = np.broadcast_shapes(np.shape(key), *(a.shape for a in arrays)) if arrays else np.shape(key)
    if math.prod(shape) > _SMALL:
        return None
    if not arrays:
        return [value], shape
    columns = [
        (a if a.shape == shape else np.broadcast_to(a, shape)).astype(np.uint64).ravel().tolist()
        for a in arrays
    ]
    out = []
    for row in zip(*columns):
        h = value
        for w in row:
            h = _mix_int((h + ((w + 1) & _MASK) * _GOLDEN_INT) & _MASK)
        out.append(h)
    return out, shape


def episode_key(rng: np.random.Generator) -> np.uint64:
    """Draw a fresh 64-bit episode key from a Gymnasium ``np_random`` generator."""
    return np.uint64(rng.integers(0, 2**63, dtype=np.int64))


def hash_words(key: np.ndarray | int, *words: np.ndarray | int) -> np.ndarray:
    """Hash ``key`` chained with ``words`` to uint64 (broadcast shape of all arguments)."""
    small = _hash_small(key, words)
    if small is not None:
        values, shape = small
        return np.array(values, dtype=np.uint64).reshape(shape or (1,))
    with np.errstate(over="ignore"):
        h = np.asarray(key, dtype=np.uint64)
        h = np.atleast_1d(h) if h.ndim == 0 else h
        for word in words:
            step = np.asarray(word).astype(np.uint64, copy=False) + np.uint64(1)
            step *= _GOLDEN
            h = _mix(h + step)
        return h


def hash_counter_runs(keys: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """``hash_words(keys[:, None], starts[:, None] + np.arange(n))`` (the same bits): the ``(R, n)``
    uint64 hashes of ``n`` consecutive counters from ``starts[r]`` under ``keys[r]`` (``(R,)`` uint64),
    in fewer passes: ``(start + j + 1) * GOLDEN + key`` is ``((start + 1) * GOLDEN + key) + j * GOLDEN``
    modulo 2**64, one broadcast addition before :func:`_mix`."""
    with np.errstate(over="ignore"):
        first = (starts + np.uint64(1)) * _GOLDEN + keys
        steps = np.arange(n, dtype=np.uint64)
        steps *= _GOLDEN
        return _mix(first[:, None] + steps)


def to_uniform(h: np.ndarray) -> np.ndarray:
    """Map uint64 hashes to floats strictly inside (0, 1) (53 random bits, offset by half an ulp)."""
    return _top_bits_to_uniform(h >> _S11)


def _top_bits_to_uniform(top: np.ndarray) -> np.ndarray:
    """:func:`to_uniform` of hashes already shifted right by 11 bits (their top 53 bits), as a new
    float64 array: the uint64 -> float64 conversion is exact below 2**53, ``+ 0.5`` rounds as IEEE
    addition and ``* 2**-53`` is exact."""
    u = np.add(top.view(np.int64), 0.5)  # as int64 (the same number): a faster conversion
    u *= _TWO_POW_MINUS_53
    return u


def normal_uniforms(
    h: np.ndarray, out: np.ndarray | None = None, work: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The uniforms ``(u1, u2)`` of the Box-Muller normal ``sqrt(-2 ln u1) cos(2 pi u2)`` of uint64
    hashes ``h`` (two sub-hashes of each).

    Both sub-hashes go through one stacked ``(2, *h.shape)`` array, one pass per step. ``out`` (float64)
    and ``work`` (uint64), both of that shape, are optional buffers to reuse (big temporaries allocated
    and freed at every call can cost page faults); ``u1, u2`` are the two rows of ``out``.
    """
    shape = (2, *np.shape(h))
    z = np.empty(shape, dtype=np.uint64) if work is None else work
    u = np.empty(shape) if out is None else out
    np.bitwise_xor(h, _MUL1, out=z[0])
    np.bitwise_xor(h, _MUL2, out=z[1])
    with np.errstate(over="ignore"):
        _mix(z, u.view(np.uint64))  # out's memory as the scratch: it is written last
    np.right_shift(z, _S11, out=z)
    np.add(z.view(np.int64), 0.5, out=u)  # as in _top_bits_to_uniform
    u *= _TWO_POW_MINUS_53
    return u[0], u[1]


def _uniform_int(h: int) -> float:
    """:func:`to_uniform` of one Python int (the same float: every step is exact or IEEE-rounded)."""
    return ((h >> 11) + 0.5) * _TWO_POW_MINUS_53


def _squeeze_like(out: np.ndarray, key: np.ndarray | int, words: tuple) -> np.ndarray:
    shape = np.broadcast_shapes(np.shape(key), *(np.shape(w) for w in words))
    return out.reshape(shape)


def uniform(key: np.ndarray | int, *words: np.ndarray | int) -> np.ndarray:
    """Uniform(0, 1) draws indexed by ``(key, *words)``; shape = broadcast shape of the arguments."""
    small = _hash_small(key, words)
    if small is not None:
        values, shape = small
        return np.array([_uniform_int(h) for h in values]).reshape(shape)
    return _squeeze_like(to_uniform(hash_words(key, *words)), key, words)


def normal(key: np.ndarray | int, *words: np.ndarray | int) -> np.ndarray:
    """Standard normal draws indexed by ``(key, *words)`` (Box-Muller on two sub-hashes)."""
    small = _hash_small(key, words)
    if small is not None:
        values, shape = small
        u1 = np.array([_uniform_int(_mix_int(h ^ _MUL1_INT)) for h in values])
        u2 = np.array([_uniform_int(_mix_int(h ^ _MUL2_INT)) for h in values])
        return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).reshape(shape)
    u1, u2 = normal_uniforms(hash_words(key, *words))
    out = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return _squeeze_like(out, key, words)


def indexed(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Open-mesh index arrays for ``shape`` (as ``np.ogrid``), to use as counter words."""
    return tuple(np.ogrid[tuple(slice(0, n) for n in shape)])


def multivariate_normal(
    keys: np.ndarray, words: tuple, mean: np.ndarray, chol: np.ndarray, shape: tuple[int, ...] = ()
) -> np.ndarray:
    """Draws of N(mean, chol chol^T), one per batch member and per index of ``shape``.

    Args:
        keys: ``(B,)`` uint64 episode keys.
        words: counter words naming the stream (scalars).
        mean: ``(d,)`` or broadcastable to ``(B, *shape, d)``.
        chol: ``(d, d)`` lower Cholesky factor of the covariance.
        shape: extra index shape between the batch and the vector dimension.

    Returns:
        ``(B, *shape, d)`` float64 array.
    """
    d = chol.shape[-1]
    index = indexed((*shape, d))
    key_b = np.asarray(keys, dtype=np.uint64).reshape((-1,) + (1,) * (len(shape) + 1))
    z = normal(key_b, *words, *index)  # (B, *shape, d)
    return mean + z @ chol.T


def categorical(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Inverse-CDF categorical draws: ``u`` uniform ``(...)``, ``probs`` ``(n,)`` -> ints ``(...)``."""
    cdf = np.cumsum(probs)
    cdf[-1] = 1.0
    return np.searchsorted(cdf, u, side="right").astype(np.int64)
