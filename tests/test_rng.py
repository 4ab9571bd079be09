"""Counter-based random numbers: distribution, independence of counters, broadcasting."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from hbgym import rng


def test_uniform_and_normal_distributions():
    u = rng.uniform(np.uint64(7), rng.STREAM_NOISE, np.arange(200_000))
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    z = rng.normal(np.uint64(7), rng.STREAM_NOISE, np.arange(200_000))
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_neighbouring_counters_and_keys_are_uncorrelated():
    keys = np.arange(2000, dtype=np.uint64)[:, None]
    z = rng.normal(keys, rng.STREAM_NOISE, np.arange(500)[None, :])
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.01
    other_stream = rng.normal(keys, rng.STREAM_CONTEXT, np.arange(500)[None, :])
    assert abs(np.corrcoef(z.ravel(), other_stream.ravel())[0, 1]) < 0.01


@settings(max_examples=50, deadline=None)
@given(key=st.integers(0, 2**63 - 1), t=st.integers(0, 10**6), slot=st.integers(0, 50))
def test_draws_are_pure_functions_of_their_words(key, t, slot):
    batch = rng.normal(
        np.array([key, key + 1], dtype=np.uint64)[:, None], rng.STREAM_NOISE, t, slot, np.arange(5)[None, :]
    )
    single = rng.normal(np.uint64(key), rng.STREAM_NOISE, t, slot, 3)
    assert batch.shape == (2, 5)
    assert batch[0, 3] == single


def test_multivariate_normal_and_categorical():
    keys = np.arange(50_000, dtype=np.uint64)
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    draws = rng.multivariate_normal(
        keys, (rng.STREAM_INSTANCE, 0), np.array([1.0, -1.0]), np.linalg.cholesky(cov)
    )
    np.testing.assert_allclose(draws.mean(0), [1.0, -1.0], atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05)
    probs = np.array([0.1, 0.6, 0.3])
    counts = np.bincount(rng.categorical(rng.uniform(keys, 9), probs), minlength=3) / len(keys)
    np.testing.assert_allclose(counts, probs, atol=0.01)
