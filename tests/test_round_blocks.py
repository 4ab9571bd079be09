"""The single env's speed paths give the numbers of the plain per-round paths, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from hbgym import rng
from hbgym.envs.core import RoundBlocks
from hbgym.schedules import TaskSchedule

KEYS = np.array([12345678901234567, 42], dtype=np.uint64)


@pytest.mark.parametrize("draw", [rng.normal, rng.uniform, rng.hash_words])
@pytest.mark.parametrize(
    "key, words",
    [
        (KEYS[:1, None], (rng.STREAM_NOISE, 7, np.arange(5)[None, :], np.array([[1, 9, 0, 3, 3]]))),
        (KEYS[:1], (rng.STREAM_CONTEXT, 3, 0)),  # scalar words only
        (np.uint64(99), (2, np.arange(4))),  # 0-d key
        (KEYS[1:], ()),  # no words
        (KEYS[:1, None], (np.arange(3)[:, None], 5, np.arange(2)[None, :])),  # a scalar after an array
    ],
)
def test_small_python_path_equals_numpy_path(draw, key, words, monkeypatch) -> None:
    small = draw(key, *words)
    monkeypatch.setattr(rng, "_SMALL", 0)  # force the array path
    full = draw(key, *words)
    assert small.shape == full.shape and small.dtype == full.dtype
    assert np.array_equal(small, full)


def _draws(keys: np.ndarray):
    def draw(ts: np.ndarray) -> np.ndarray:  # (B, T, 3)
        return rng.uniform(keys[:, None, None], 9, ts[None, :, None], np.arange(3)[None, None, :])

    return draw


def _one_round(keys: np.ndarray, t: int) -> np.ndarray:
    return rng.uniform(keys[:, None], 9, t, np.arange(3)[None, :])


def test_round_blocks_serve_the_per_round_draw() -> None:
    blocks = RoundBlocks(budget=12)  # 12 numbers: blocks of 2 rounds of 6 numbers (B=2 x 3)
    for t in [0, 1, 5, 4, 11, 2, 3]:  # forwards, backwards, across blocks
        assert np.array_equal(blocks.get("u", KEYS, t, 6, _draws(KEYS)), _one_round(KEYS, t))
    other = KEYS[::-1].copy()  # new episodes (another keys array): nothing cached may be served
    assert np.array_equal(blocks.get("u", other, 1, 6, _draws(other)), _one_round(other, 1))
    big = RoundBlocks(budget=5)  # one round needs more than the budget: drawn alone
    assert big.rounds_per_block(6) == 1
    assert np.array_equal(big.get("u", KEYS, 3, 6, _draws(KEYS)), _one_round(KEYS, 3))


@pytest.mark.parametrize("kind", ["concurrent", "sequential", "meta", "arrival"])
def test_schedule_tasks_for_many_rounds_equal_round_by_round(kind: str) -> None:
    width = 2 if kind in ("concurrent", "arrival") else 1
    schedule = TaskSchedule(kind, 4, 6, width, None)
    state = schedule.prepare(KEYS)
    rounds = np.arange(schedule.num_rounds)
    together = schedule.tasks(state, KEYS, rounds)  # (B, T, L)
    one_by_one = np.stack([schedule.tasks(state, KEYS, int(t)) for t in rounds], axis=1)
    assert together.dtype == one_by_one.dtype == np.int64
    assert np.array_equal(together, one_by_one)
