"""Paper claims beside our numbers: the ``reproduce`` report of the ``paper`` suites.

Each :class:`Claim` is an ordering a seed paper reports (transcribed from the paper, with its figure
or table), stated on the final cumulative regret (offline: suboptimality) of two (setting, agent)
sides: ``left < factor * right`` (``relation="<"``) or ``left ~ right`` (``relation="~"``). Settings
are found by their figure tag (``Setting.tags[1]`` in :data:`hbgym.leaderboards.suites.PAPER`).
:func:`check` pairs the two sides by seed (common random numbers: the same instances and noise) and
marks the claim *held* or *not held* with the reason, from the 95% t-interval of the mean paired
difference; :func:`write_report` renders ``REPRODUCE.md``::

    python -m hbgym.leaderboards run --suite paper --jobs 2            # resumable; --only TAG for a part
    python -m hbgym.leaderboards run --suite paper-offline --jobs 2
    python -m hbgym.leaderboards reproduce results/paper results/paper-offline
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["CLAIMS", "Claim", "Verdict", "check", "final_by_seed", "write_report"]

#: relative tolerance of "~": the paired mean difference is within this fraction of the larger mean
APPROX_TOLERANCE = 0.1


@dataclass(frozen=True)
class Claim:
    """``left`` beats ``right`` (lower regret), or they are about equal, as the paper reports.

    Attributes:
        paper: short paper name (section heading of the report).
        source: where the paper says it (figure / section).
        left, right: ``(setting tag, agent name)``.
        relation: ``"<"`` (``left < factor * right``) or ``"~"`` (about equal).
        factor: scales ``right`` (e.g. 10 for "sublinear in L": L=10 costs less than 10x L=1).
        paper_values: values the paper (or its authors' code) reports, by agent, if any.
        note: what the paper value is (e.g. "authors' code, 2 runs, realised regret").
        if_not_held: our analysis of why the claim does not hold here, appended to the reason when
            it does not (with where the evidence is).
    """

    paper: str
    source: str
    left: tuple[str, str]
    right: tuple[str, str]
    relation: str = "<"
    factor: float = 1.0
    paper_values: Mapping[str, float] = field(default_factory=dict)
    note: str = ""
    if_not_held: str = ""

    def __post_init__(self) -> None:
        if self.relation not in ("<", "~"):
            raise ValueError(f"relation must be '<' or '~', got {self.relation!r}")
        if not (np.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"factor must be a finite number > 0, got {self.factor!r}")

    def text(self) -> str:
        def side(s: tuple[str, str]) -> str:
            return f"{s[1]} @ {s[0]}"

        scale = "" if self.factor == 1 else f"{self.factor:g} x "
        op = "<" if self.relation == "<" else "≈"
        if self.left[0] == self.right[0]:
            return f"{self.left[1]} {op} {scale}{self.right[1]} ({self.left[0]})"
        return f"{side(self.left)} {op} {scale}{side(self.right)}"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim: ``status`` ``held`` | ``not held`` | ``not run``."""

    claim: Claim
    status: str
    reason: str
    num_seeds: int = 0
    left_mean: float = float("nan")
    right_mean: float = float("nan")
    diff_mean: float = float("nan")
    diff_ci: tuple[float, float] = (float("nan"), float("nan"))


def _mets_linear() -> list[Claim]:
    tag, src = "mets-fig1-linear", "meTS poster Fig. 1 (linear); order of the authors' code"
    values = {"meTS": 933, "meTS-Fa": 898, "HierTS": 2540, "LinUCB": 3033, "LinTS": 1417}
    note = "authors' code on this machine, 2 runs, realised regret (issue 17)"
    pairs = [
        ("meTS", "meTS-Fa", "~"),
        ("meTS-Fa", "LinTS", "<"),
        ("meTS", "LinTS", "<"),
        ("LinTS", "HierTS", "<"),
        ("HierTS", "LinUCB", "<"),
    ]
    why = {
        ("meTS", "meTS-Fa"): "meTS-Fa drops the cross-effect terms of the effect posterior, which signed "
        "weights make large; the authors' 2 runs cannot resolve a 10% gap",
        ("LinTS", "HierTS"): "it depends on LinTS's prior scale: ours is ridge N(0, I) while each action's "
        "true marginal prior is about N(0, 4 I); with N(0, 4 I) (ridge 0.25) or the exact marginal "
        "(FlatTS) it beats HierTS, see benchmarks/results/mets_lints_prior.md",
    }
    claims = [
        Claim("meTS", src, (tag, a), (tag, b), rel, paper_values=values, note=note,
              if_not_held=why.get((a, b), ""))
        for a, b, rel in pairs
    ]
    # The authors' LinTS scores like TS on each action alone with its exact marginal prior (our FlatTS:
    # 1444 +- 61 over 50 seeds in benchmarks/results/mets_lints_prior.md vs their 1417), not like ridge
    # LinTS (2674): the same ordering with FlatTS in LinTS's place.
    src_flat = ("meTS poster Fig. 1 (linear); the authors' LinTS read as our FlatTS (each action, its "
                "marginal prior)")
    flat_values = {**values, "FlatTS": values["LinTS"]}
    flat_note = note + "; FlatTS's paper value is the authors' LinTS"
    claims += [
        Claim("meTS", src_flat, (tag, a), (tag, b), paper_values=flat_values, note=flat_note)
        for a, b in (("meTS-Fa", "FlatTS"), ("meTS", "FlatTS"), ("FlatTS", "HierTS"))
    ]
    return claims


def _mets_logistic() -> list[Claim]:
    tag, src = "mets-fig1-logistic", "meTS poster Fig. 1 (logistic): meTS-GLM lowest"
    return [Claim("meTS", src, (tag, "meTS-GLM"), (tag, b)) for b in ("meTS", "HierTS", "GLM-TS", "UCB-GLM")]


def _hierts() -> list[Claim]:
    out = []
    for tag, panel in (("hierts-fig2a", "(a)"), ("hierts-fig2b", "(b)")):
        src = f"HierTS Sec. 7 Fig. 2{panel}: OracleTS <= HierTS < TS"
        out += [
            Claim("HierTS", src, (tag, "OracleTS"), (tag, "HierTS")),
            Claim("HierTS", src, (tag, "HierTS"), (tag, "FlatTS")),
        ]
    src = "HierTS Fig. 2(c): regret increases with L, sublinearly (Sec. 6.3)"
    out += [
        Claim("HierTS", src, ("hierts-fig2c-L1", "HierTS"), ("hierts-fig2c-L10", "HierTS"),
              if_not_held="the increase with L is small at the paper's size (compare the four hierts-fig2c "
              "settings: the means grow with L): with m = 10 tasks, concurrency only withholds one round's "
              "observations from the shared hyper-posterior, a cost smaller than the noise of 50 seeds"),
        Claim("HierTS", src, ("hierts-fig2c-L10", "HierTS"), ("hierts-fig2c-L1", "HierTS"), factor=10.0),
    ]
    return out


_TS_VS_UCB = (
    "this pair mixes two effects: the empirical-Bayes prior (EbmTS beats DisjointLinTS and EbmUCB beats "
    "DisjointLinUCB, each by a wide margin here) and Thompson sampling exploring more than UCB at this "
    "horizon; the second offsets the first for EbmTS against DisjointLinUCB"
)
_COCO_SEEDS = (
    "the paper's own 10 seeds (it reports mean curves with sd/sqrt(10), no test) leave the paired "
    "difference within noise here"
)


def _ebm() -> list[Claim]:
    out = []
    for tag in ("ebm-fig1-balanced", "ebm-fig1-data-poor", "ebm-fig2-sparse"):
        src = "ebm Sec. 7.1 Figs. 1-2: ebmTS/ebmUCB below every baseline (incl. RMBandit on sparse)"
        out += [
            Claim("ebm", src, (tag, ours), (tag, base), if_not_held=_TS_VS_UCB if (ours, base) == (
                "EbmTS", "DisjointLinUCB") else "")
            for ours in ("EbmTS", "EbmUCB")
            for base in ("DisjointLinTS", "DisjointLinUCB", "RMBandit")
        ]
    return out


def _coco() -> list[Claim]:
    out = []
    for tag, panel in (("coco-fig2a", "(a)"), ("coco-fig2b", "(b)"), ("coco-fig2d", "(d)")):
        src = f"CoCo Fig. 2{panel} (Sec. 4): the CoCo agents beat MTTS and Ind-TS"
        out += [
            Claim("CoCo", src, (tag, ours), (tag, base), if_not_held=_COCO_SEEDS)
            for ours in ("NPM-TS", "GIDS")
            for base in ("MTTS", "Ind-TS")
        ]
    out += [
        Claim(
            "CoCo",
            "CoCo Fig. 2(a): GIDS outperforms NPM-TS",
            ("coco-fig2a", "GIDS"),
            ("coco-fig2a", "NPM-TS"),
        ),
        Claim(
            "CoCo",
            "CoCo Fig. 2(d): MTTS underperforms Ind-TS",
            ("coco-fig2d", "Ind-TS"),
            ("coco-fig2d", "MTTS"),
        ),
    ]
    src = "CoCo Fig. 2(c): MTTS converges fastest; the CoCo agents beat Ind-TS"
    out += [Claim("CoCo", src, ("coco-fig2c", "MTTS"), ("coco-fig2c", ours)) for ours in ("NPM-TS", "GIDS")]
    out += [Claim("CoCo", src, ("coco-fig2c", ours), ("coco-fig2c", "Ind-TS")) for ours in ("NPM-TS", "GIDS")]
    return out


def _hieropo() -> list[Claim]:
    out = []
    for sq in (0.5, 1.0):
        for n in (25, 50, 100, 200, 500, 1000, 2000):
            tag = f"hieropo-fig2-sq{sq}-n{n}"
            src = f"HierOPO Sec. 7.1 Fig. 2 (vary n, sigma_q={sq}): HierOPO outperforms FlatOPO"
            out.append(Claim("HierOPO", src, (tag, "HierOPO"), (tag, "FlatOPO")))
            if n <= 100:  # "the gap is most noticeable in the limited data regime, where n is small"
                src = f"HierOPO Fig. 2 (sigma_q={sq}): OracleOPO ahead of HierOPO at small n"
                out.append(Claim("HierOPO", src, (tag, "OracleOPO"), (tag, "HierOPO")))
            else:
                src = f"HierOPO Fig. 2 (sigma_q={sq}): HierOPO is close to OracleOPO"
                out.append(Claim("HierOPO", src, (tag, "HierOPO"), (tag, "OracleOPO"), "~"))
    for m in (5, 10, 20, 50, 100):
        tag = f"hieropo-fig2-m{m}"
        out.append(
            Claim(
                "HierOPO",
                "HierOPO Fig. 2 (vary m, n=500): HierOPO < FlatOPO",
                (tag, "HierOPO"),
                (tag, "FlatOPO"),
                if_not_held="HierOPO's gain comes from the m tasks that inform the hyper-posterior; with "
                "few tasks it is small against the noise of 30 runs",
            )
        )
    return out


#: every claim of the seed papers checked by :func:`check`
CLAIMS: tuple[Claim, ...] = (*_hierts(), *_mets_linear(), *_mets_logistic(), *_ebm(), *_coco(), *_hieropo())


def final_by_seed(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[int, float]]:
    """``{(tag, agent): {seed: final regret}}`` from stored rows (ok rows only), one entry per tag of
    the row's setting."""
    out: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        if r.get("status", "ok") != "ok":
            continue
        for tag in r["tags"]:
            out[(tag, r["agent"])][int(r["seed"])] = float(r["final_regret"])
    return dict(out)


def check(claim: Claim, finals: Mapping[tuple[str, str], Mapping[int, float]]) -> Verdict:
    """Pair the claim's two sides by seed and decide it (95% t-interval of the paired difference)."""
    missing = [f"{a} @ {t}" for t, a in (claim.left, claim.right) if not finals.get((t, a))]
    if missing:
        return Verdict(claim, "not run", f"no results for {', '.join(missing)}")
    left, right = finals[claim.left], finals[claim.right]
    seeds = sorted(set(left) & set(right))
    if len(seeds) < 2:
        return Verdict(claim, "not run", f"{len(seeds)} common seed(s); need >= 2 for an interval")
    x = np.array([left[s] for s in seeds])
    y = claim.factor * np.array([right[s] for s in seeds])
    diff = x - y
    mean = float(diff.mean())
    half = float(stats.t.ppf(0.975, len(seeds) - 1) * diff.std(ddof=1) / np.sqrt(len(seeds)))
    lo, hi = mean - half, mean + half
    base = dict(
        num_seeds=len(seeds),
        left_mean=float(x.mean()),
        right_mean=float(y.mean()),
        diff_mean=mean,
        diff_ci=(lo, hi),
    )
    ci = f"paired difference {mean:.3g}, 95% CI [{lo:.3g}, {hi:.3g}], {len(seeds)} seeds"
    if claim.relation == "<":
        if hi < 0:
            return Verdict(claim, "held", ci, **base)
        if lo > 0:
            return Verdict(claim, "not held", f"reversed: the left side is larger ({ci})", **base)
        return Verdict(claim, "not held", f"not significant: the CI contains 0 ({ci})", **base)
    scale = max(abs(float(x.mean())), abs(float(y.mean())))
    if lo <= 0 <= hi:
        return Verdict(claim, "held", f"no significant difference ({ci})", **base)
    if abs(mean) <= APPROX_TOLERANCE * scale:
        return Verdict(claim, "held", f"within {APPROX_TOLERANCE:.0%} of the larger mean ({ci})", **base)
    return Verdict(claim, "not held", f"differ by {abs(mean) / scale:.0%} of the larger mean ({ci})", **base)


def _load(
    dirs: Sequence[str | os.PathLike],
) -> tuple[list[dict[str, Any]], list[str], dict[tuple[str, str], float]]:
    """Rows of every results directory (each verified), one line per directory and the cell wall
    seconds summed per (setting key, agent)."""
    from hbgym.leaderboards.store import ResultStore

    rows, lines = [], []
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    for d in dirs:
        store = ResultStore(d)
        suite = store.verify()
        records = store.records()
        for rec in records:
            seconds[(rec["cell"]["setting_key"], rec["cell"]["agent_name"])] += float(rec["wall_time"])
        hosts = sorted({str(rec.get("host", "?")) for rec in records})
        rows += [r for rec in records for r in rec["rows"]]
        total = sum(float(rec["wall_time"]) for rec in records)
        ran = {rec["cell"]["setting_key"] for rec in records}
        tags = [s.tags[1] if len(s.tags) > 1 else s.key for s in suite.settings if s.key in ran]
        lines.append(
            f"`{d}`: suite {suite.name} v{suite.version} ({suite.hash[:12]}), {len(records)} cells of the "
            f"settings {', '.join(tags) or '-'} (`run --suite {suite.name} --only TAG ...` runs a part), "
            f"{suite.seeds_text()}, {total:.0f} cell-seconds, hosts {', '.join(hosts)}"
        )
    return rows, lines, dict(seconds)


def _fmt(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.4g}"


def write_report(
    dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, command: str | None = None
) -> tuple[Path, list[Verdict]]:
    """Check :data:`CLAIMS` against the results in ``dirs`` and write ``REPRODUCE.md`` (in ``out``,
    default the first directory). Returns the path and the verdicts."""
    if not dirs:
        raise ValueError("reproduce needs at least one results directory (e.g. results/paper)")
    rows, dir_lines, seconds = _load(dirs)
    finals = final_by_seed(rows)
    verdicts = [check(c, finals) for c in CLAIMS]
    verdicts = [dataclasses.replace(v, reason=f"{v.reason}. Why: {v.claim.if_not_held}")
                if v.status == "not held" and v.claim.if_not_held else v for v in verdicts]
    command = command or "python -m hbgym.leaderboards reproduce " + " ".join(str(d) for d in dirs)
    counts = {s: sum(v.status == s for v in verdicts) for s in ("held", "not held", "not run")}
    lines = [
        "# Paper claims beside our numbers (`paper` suites)",
        "",
        f"Command: `{command}`. Machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}.",
        "",
        *[f"- {line}" for line in dir_lines],
        "",
        f"**{counts['held']} held, {counts['not held']} not held, {counts['not run']} not run** "
        f"(claims on final cumulative regret / offline suboptimality; a claim `a < b` holds when the 95% "
        f"t-interval of the paired per-seed difference lies below 0; `a ≈ b` when it contains 0 or the "
        f"difference is within {APPROX_TOLERANCE:.0%} of the larger mean).",
        "",
    ]
    by_paper: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_paper[v.claim.paper].append(v)
    for paper, group in by_paper.items():
        lines += [
            f"## {paper}",
            "",
            "| claim | source | paper value (left, right) | ours: left | ours: right | verdict | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in group:
            c = v.claim
            pv = ", ".join(
                _fmt(c.paper_values[a]) if a in c.paper_values else "-" for _, a in (c.left, c.right)
            )
            pv = "" if pv == "-, -" else f"{pv} ({c.note})" if c.note else pv
            lines.append(
                f"| {c.text()} | {c.source} | {pv} | {_fmt(v.left_mean)} | {_fmt(v.right_mean)} | "
                f"**{v.status}** | {v.reason} |"
            )
        lines.append("")
    lines += [
        "## Cell wall time (seconds, all seeds of a cell batched; for estimating a full run)",
        "",
        "| setting | agent | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {a} | {t:.1f} |" for (k, a), t in sorted(seconds.items())]
    lines.append("")
    path = Path(out or dirs[0]) / "REPRODUCE.md"
    from hbgym.leaderboards.store import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "\n".join(lines).encode())
    return path, verdicts
