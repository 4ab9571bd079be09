"""Scoring: pure functions over result rows and ``(num_seeds x num_envs)`` score arrays (rliable style).

* Per-env normalised score (D4RL / bsuite): ``score = (R_uniform - R) / (R_uniform - R_oracle)`` where
  ``R`` is an agent's final cumulative regret on one seed and ``R_uniform`` / ``R_oracle`` are the mean
  final regrets of the suite's reference agents on the same env setting and seeds, taken from the
  rows stored with the results (so scores cannot drift). Uniform play scores 0, the oracle 1; with
  ``oracle="optimal"`` (no oracle agent in the family) ``R_oracle = 0``. Scores are not clipped: an
  agent worse than uniform is negative, one better than the oracle-prior agent exceeds 1. Offline
  rows carry their score (``1 - suboptimality / uniform suboptimality``, both exact).
* Aggregate: the interquartile mean (IQM, 25% trimmed mean) of all (seed, env) scores, with a
  percentile bootstrap CI from ``scipy.stats.bootstrap`` that resamples seeds (rows) with a fixed
  ``random_state``.
* Probability of improvement ``P(X > Y)`` on paired seeds: per env the fraction of seeds where X's
  score beats Y's (ties count 1/2), averaged over the envs both played (Agarwal et al. 2021), with a
  bootstrap CI over paired seeds (:func:`probability_of_improvement_ci`).
* Performance profile (the fraction of (seed, env) scores above each threshold ``tau``) and optimality
  gap (mean shortfall below a target score, ``mean(max(gamma - score, 0))``), rliable's other
  recommendations, each with the same seed bootstrap (:func:`performance_profile`, :func:`optimality_gap`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "normalized_score", "iqm", "iqm_ci", "seed_bootstrap_ci", "probability_of_improvement",
    "probability_of_improvement_ci", "performance_profile", "performance_profile_ci",
    "optimality_gap", "ScoreTable", "score_rows",
]


def normalized_score(regret: np.ndarray, uniform: float, oracle: float) -> np.ndarray:
    """``(uniform - regret) / (uniform - oracle)``: 0 for uniform, 1 for the oracle.

    Raises:
        ValueError: if ``uniform <= oracle`` (the references do not separate; the env is degenerate).
    """
    if not uniform > oracle:
        raise ValueError(f"uniform regret {uniform} must exceed oracle regret {oracle} to normalise")
    return (uniform - np.asarray(regret, dtype=float)) / (uniform - oracle)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all finite entries (``scipy.stats.trim_mean`` with 25% cut each side)."""
    x = np.asarray(scores, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(stats.trim_mean(x, 0.25))


def _iqm_batched(x: np.ndarray) -> np.ndarray:
    """:func:`iqm` of each resample: ``x`` is ``(R x num_seeds x ...)``, returns ``(R,)``.

    Same trimming as ``scipy.stats.trim_mean(., 0.25)`` over the finite entries of each resample.
    """
    flat = x.reshape(x.shape[0], -1)
    finite = np.isfinite(flat)
    ordered = np.sort(np.where(finite, flat, np.inf), axis=1)
    k = finite.sum(axis=1)
    low = (0.25 * k).astype(np.int64)
    high = k - low
    csum = np.cumsum(np.where(np.isfinite(ordered), ordered, 0.0), axis=1)
    csum = np.concatenate([np.zeros((flat.shape[0], 1)), csum], axis=1)
    rows = np.arange(flat.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, (csum[rows, high] - csum[rows, low]) / (high - low), np.nan)


def _poi_batched(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`probability_of_improvement` of each resample: ``x, y`` are ``(R x num_seeds x num_envs)``."""
    ok = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore"):
        wins = np.where(ok, (x > y) + 0.5 * (x == y), 0.0).sum(axis=1)
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_env = np.where(count > 0, wins / count, np.nan)
    played = np.isfinite(per_env).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(played > 0, np.nansum(per_env, axis=1) / played, np.nan)


def seed_bootstrap_ci(
    statistic: Callable[..., float], *arrays: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000,
    random_state: int = 0, batched: Callable[..., np.ndarray] | None = None,
) -> tuple[float, float, float]:
    """``statistic(*arrays)`` and its percentile bootstrap CI resampling seeds (rows, shared by all arrays).

    Args:
        statistic: maps arrays of shape ``(num_seeds x ...)`` to a float (NaN-aware as needed).
        arrays: equally long along axis 0 (paired seeds).
        batched: optional vectorised ``statistic`` over resamples: arrays ``(R x num_seeds x ...)`` ->
            ``(R,)`` (much faster; must equal ``statistic`` per resample).

    Returns:
        ``(point, low, high)``; ``(point, point, point)`` with fewer than 2 seeds or a non-finite point.
    """
    arrays = tuple(np.asarray(a, dtype=float) for a in arrays)
    if len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(f"paired arrays need the same number of seeds, got {[a.shape for a in arrays]}")
    point = float(statistic(*arrays))
    if arrays[0].shape[0] < 2 or not np.isfinite(point):
        return point, point, point

    def resampled(index: np.ndarray, axis: int = -1) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        if index.ndim == 1:
            return np.asarray(statistic(*(a[index] for a in arrays)))
        if batched is not None:
            return batched(*(a[index] for a in arrays))
        return np.array([statistic(*(a[i] for a in arrays)) for i in index])

    res = stats.bootstrap(
        (np.arange(arrays[0].shape[0]),), resampled, n_resamples=n_resamples, confidence_level=confidence,
        method="percentile", random_state=random_state, vectorized=True,
    )
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def iqm_ci(
    scores: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, random_state: int = 0
) -> tuple[float, float, float]:
    """IQM of a ``(num_seeds x num_envs)`` array and its bootstrap CI over seeds.

    Returns:
        ``(iqm, low, high)``; the CI is ``(iqm, iqm)`` with fewer than 2 seeds.
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    return seed_bootstrap_ci(iqm, x, confidence=confidence, n_resamples=n_resamples,
                             random_state=random_state, batched=_iqm_batched)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y)`` for paired ``(num_seeds x num_envs)`` scores (NaN columns of either are dropped)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores must have the same shape, got {x.shape} and {y.shape}")
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    per_env = []
    for j in range(x.shape[1]):
        ok = np.isfinite(x[:, j]) & np.isfinite(y[:, j])
        if ok.any():
            a, b = x[ok, j], y[ok, j]
            per_env.append(np.mean((a > b) + 0.5 * (a == b)))
    return float(np.mean(per_env)) if per_env else float("nan")


def probability_of_improvement_ci(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, random_state: int = 0
) -> tuple[float, float, float]:
    """:func:`probability_of_improvement` of paired ``(num_seeds x num_envs)`` scores, seed-bootstrap CI."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores must have the same shape, got {x.shape} and {y.shape}")
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    return seed_bootstrap_ci(probability_of_improvement, x, y, confidence=confidence,
                             n_resamples=n_resamples, random_state=random_state, batched=_poi_batched)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of finite (seed, env) scores strictly above each threshold.

    Args:
        scores: any shape, e.g. ``(num_seeds x num_envs)``; NaN entries (not played) are ignored.
        taus: ``(T,)`` thresholds.

    Returns:
        ``(T,)`` fractions in [0, 1] (NaN when no score is finite).
    """
    x = np.asarray(scores, dtype=float).ravel()
    x = x[np.isfinite(x)]
    taus = np.asarray(taus, dtype=float)
    if taus.ndim != 1:
        raise ValueError(f"taus must be 1-D, got shape {taus.shape}")
    if x.size == 0:
        return np.full(taus.shape, np.nan)
    return (x[None, :] > taus[:, None]).mean(axis=1)


def performance_profile_ci(
    scores: np.ndarray, taus: np.ndarray, confidence: float = 0.95, n_resamples: int = 500,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`performance_profile` of ``(num_seeds x num_envs)`` scores with a pointwise percentile band
    from resampling seeds (rows) with replacement.

    Returns:
        ``(profile, low, high)``, each ``(T,)``; the band is the profile itself with fewer than 2 seeds.
    """
    x = np.asarray(scores, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    taus = np.asarray(taus, dtype=float)
    point = performance_profile(x, taus)
    if x.shape[0] < 2:
        return point, point, point
    index = np.random.default_rng(random_state).integers(0, x.shape[0], size=(n_resamples, x.shape[0]))
    flat = x[index].reshape(n_resamples, -1)  # (R, num_seeds * num_envs)
    finite = np.isfinite(flat)
    above = (flat[:, None, :] > taus[None, :, None]) & finite[:, None, :]  # (R, T, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        profiles = above.sum(axis=2) / finite.sum(axis=1)[:, None]  # (R, T)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(profiles, [alpha, 1 - alpha], axis=0)
    return point, low, high


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """``mean(max(gamma - score, 0))`` over the finite scores: how far below the target (lower is better)."""
    x = np.asarray(scores, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(np.mean(np.maximum(gamma - x, 0.0)))


@dataclass
class ScoreTable:
    """Scores of every agent on a suite.

    Attributes:
        settings: setting keys (columns), in suite order; ``tags[key]`` their tags.
        seeds: the seeds (rows).
        scores: agent -> ``(num_seeds x num_settings)`` normalised scores (NaN where not played).
        final: agent -> ``(num_seeds x num_settings)`` final regret (offline: suboptimality).
        references: setting key -> ``{"uniform": mean regret, "oracle": mean regret}``.
        oracle: agent -> True if it reads the truth; failures: agent -> list of reasons (one per seed row).
        failed_cells: agent -> number of failed cells (a cell is one seed chunk of one setting).
    """

    settings: list[str]
    tags: dict[str, list[str]]
    seeds: list[int]
    scores: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    references: dict[str, dict[str, float]]
    oracle: dict[str, bool]
    failures: dict[str, list[str]]
    failed_cells: dict[str, int] = field(default_factory=dict)

    def columns(self, agent: str, tag: str | None = None) -> np.ndarray:
        """The agent's score columns (optionally those of settings with ``tag``) it actually played."""
        keep = [j for j, k in enumerate(self.settings) if tag is None or tag in self.tags[k]]
        s = self.scores[agent][:, keep]
        return s[:, np.isfinite(s).any(axis=0)] if s.size else s


def score_rows(rows: Iterable[Mapping[str, Any]], settings: Sequence[Mapping[str, Any]]) -> ScoreTable:
    """Build a :class:`ScoreTable` from stored rows and the suite's setting specs (``Suite.spec()``).

    ``settings`` are dicts with ``key``, ``tags``, ``oracle``, ``uniform`` (see :class:`Setting`).
    Failing on purpose never pays: a failed row scores 0 (uniform) on its (seed, setting), so it
    counts in every aggregate; failures are listed in ``failures`` and counted per cell.
    """
    rows = list(rows)
    keys = [s["key"] for s in settings]
    col = {k: j for j, k in enumerate(keys)}
    seeds = sorted({int(r["seed"]) for r in rows})
    row_of = {s: i for i, s in enumerate(seeds)}
    agents = sorted({r["agent"] for r in rows})
    final = {a: np.full((len(seeds), len(keys)), np.nan) for a in agents}
    direct = {a: np.full((len(seeds), len(keys)), np.nan) for a in agents}
    oracle: dict[str, bool] = {}
    failures: dict[str, list[str]] = defaultdict(list)
    failed_at: dict[str, list[tuple[int, int]]] = defaultdict(list)
    cells: dict[str, set[Any]] = defaultdict(set)
    for r in rows:
        if r["setting"] not in col:
            continue
        a = r["agent"]
        oracle[a] = oracle.get(a, False) or bool(r.get("oracle"))
        if r.get("status") != "ok":
            failures[a].append(f"{r['setting']} seed {r['seed']}: {r.get('reason')}")
            failed_at[a].append((row_of[int(r["seed"])], col[r["setting"]]))
            cells[a].add(r.get("cell") or (r["setting"], r.get("cell_wall_time"), r.get("reason")))
            continue
        final[a][row_of[int(r["seed"])], col[r["setting"]]] = r["final_regret"]
        if "score" in r:
            direct[a][row_of[int(r["seed"])], col[r["setting"]]] = r["score"]
    references: dict[str, dict[str, float]] = {}
    scores = {a: direct[a].copy() for a in agents}
    for j, s in enumerate(settings):
        uni = final.get(s["uniform"])
        if uni is None or not np.isfinite(uni[:, j]).any():
            continue  # offline settings carry their scores; online ones need the uniform reference
        ref_u = float(np.nanmean(uni[:, j]))
        if s["oracle"] == "optimal":
            ref_o = 0.0
        else:
            orc = final.get(s["oracle"])
            if orc is None or not np.isfinite(orc[:, j]).any():
                continue
            ref_o = float(np.nanmean(orc[:, j]))
        references[s["key"]] = {"uniform": ref_u, "oracle": ref_o}
        for a in agents:
            scores[a][:, j] = normalized_score(final[a][:, j], ref_u, ref_o)
    for a, where in failed_at.items():
        for i, j in where:
            scores[a][i, j] = 0.0 if np.isnan(scores[a][i, j]) else min(scores[a][i, j], 0.0)
    return ScoreTable(keys, {s["key"]: list(s["tags"]) for s in settings}, seeds, scores, final, references,
                      oracle, dict(failures), {a: len(c) for a, c in cells.items()})
