"""rliable-style aggregates on hand-made arrays, readable setting names, one colour per agent."""

from __future__ import annotations

import numpy as np
import pytest
from hbgym.leaderboards.report import agent_colours
from hbgym.leaderboards.scoring import (
    iqm_ci,
    optimality_gap,
    performance_profile,
    performance_profile_ci,
    probability_of_improvement_ci,
    seed_bootstrap_ci,
)
from hbgym.leaderboards.suites import SUITES, Setting, find_setting_label, setting_label


def test_performance_profile_by_hand():
    scores = np.array([[0.0, 0.5], [1.0, 2.0], [np.nan, np.nan]])  # NaN = not played, ignored
    got = performance_profile(scores, np.array([-1.0, 0.0, 0.5, 1.5, 2.0]))
    np.testing.assert_allclose(got, [1.0, 0.75, 0.5, 0.25, 0.0])
    assert np.isnan(performance_profile(np.full((2, 2), np.nan), np.array([0.0]))).all()
    with pytest.raises(ValueError, match="taus must be 1-D"):
        performance_profile(scores, np.zeros((2, 2)))


def test_optimality_gap_by_hand():
    assert optimality_gap(np.array([0.0, 0.5, 1.0, 2.0])) == pytest.approx(0.375)  # (1 + .5 + 0 + 0) / 4
    assert optimality_gap(np.array([[0.2, np.nan]]), gamma=0.5) == pytest.approx(0.3)
    assert np.isnan(optimality_gap(np.array([np.nan])))


def test_probability_of_improvement_ci_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert probability_of_improvement_ci(x, x - 1) == (1.0, 1.0, 1.0)  # always better, in every resample
    assert probability_of_improvement_ci(x, x) == (0.5, 0.5, 0.5)  # ties count 1/2
    y = np.array([[0.0], [9.0], [0.0], [9.0]])  # beats 4 on half the seeds
    p, lo, hi = probability_of_improvement_ci(y, np.full((4, 1), 4.0))
    assert p == 0.5 and 0.0 <= lo <= 0.5 <= hi <= 1.0 and lo < hi
    with pytest.raises(ValueError, match="same shape"):
        probability_of_improvement_ci(x, x[:2])


def test_seed_bootstrap_ci_resamples_rows_together():
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    p, lo, hi = seed_bootstrap_ci(np.mean, x)
    assert p == 2.5 and 1.0 <= lo < 2.5 < hi <= 4.0
    assert seed_bootstrap_ci(np.mean, x[:1]) == (1.0, 1.0, 1.0)  # one seed: no interval
    with pytest.raises(ValueError, match="same number of seeds"):
        seed_bootstrap_ci(lambda a, b: 0.0, x, x[:2])
    np.testing.assert_allclose(
        iqm_ci(x), seed_bootstrap_ci(lambda a: float(np.mean(np.sort(a.ravel())[1:3])), x)
    )


def test_batched_statistics_equal_the_per_resample_ones():
    from hbgym.leaderboards.scoring import _iqm_batched, _poi_batched, iqm, probability_of_improvement

    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 7, 3))
    y = np.round(rng.normal(size=(50, 7, 3)), 1)
    x[:, :, 2] = np.nan  # a setting not played
    x[3, 1, 0] = np.nan  # one failed seed
    y[:5, :, 1] = np.nan
    np.testing.assert_allclose(_iqm_batched(x), [iqm(r) for r in x], rtol=1e-12)
    np.testing.assert_allclose(_poi_batched(x, y), [probability_of_improvement(a, b) for a, b in zip(x, y)])
    assert np.isnan(_iqm_batched(np.full((2, 3, 1), np.nan))).all()


def test_setting_labels_are_readable_and_keep_the_hash_key():
    s = Setting("HierGaussian-v0", {"sigma_q": 1, "num_tasks": 5}, 200, ("hg",), note="HierTS Fig. 2")
    assert s.label == "HierGaussian-v0 num_tasks=5, sigma_q=1, n=200 (HierTS Fig. 2)"
    assert s.key.startswith("HierGaussian-v0-") and s.label not in s.key
    registered = SUITES["standard"].settings[0]
    assert registered.note and find_setting_label("standard", registered.spec()).endswith(
        f"({registered.note})"
    )
    assert find_setting_label("no-such-suite", s.spec()) == setting_label(s.spec())


def test_one_distinct_colour_per_agent():
    agents = [f"a{i}" for i in range(25)]
    colours = agent_colours(agents)
    assert len(set(colours.values())) == 25
    assert agent_colours(agents[:3]) == {a: colours[a] for a in agents[:3]}  # stable prefix


def test_coverage_groups_rank_like_with_like():
    from hbgym.leaderboards.scoring import ScoreTable
    from hbgym.leaderboards.site import coverage_groups

    nan = np.nan
    scores = {
        "full1": np.array([[0.5, 0.2, 0.1]]),
        "full2": np.array([[0.4, 0.3, 0.2]]),
        "two": np.array([[0.9, 0.9, nan]]),
        "one": np.array([[nan, nan, 0.7]]),
        "none": np.array([[nan, nan, nan]]),
    }
    table = ScoreTable(["a", "b", "c"], {k: [] for k in "abc"}, [0], scores, scores, {}, {}, {})
    assert coverage_groups(table) == [
        (("a", "b", "c"), ["full1", "full2"]),
        (("a", "b"), ["two"]),
        (("c",), ["one"]),
    ]


def test_performance_profile_band_by_hand():
    taus = np.array([-1.0, 0.5, 5.0])
    same = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])  # every seed alike: no uncertainty
    for arr in performance_profile_ci(same, taus):
        np.testing.assert_allclose(arr, [1.0, 1.0, 0.0])
    split = np.array([[0.0], [1.0], [0.0], [1.0]])  # half the seeds above 0.5
    point, low, high = performance_profile_ci(split, taus)
    np.testing.assert_allclose(point, [1.0, 0.5, 0.0])
    assert low[1] < 0.5 < high[1] and low[0] == high[0] == 1.0 and low[2] == high[2] == 0.0
    np.testing.assert_allclose(performance_profile_ci(split[:1], taus), [[1.0, 0.0, 0.0]] * 3)
