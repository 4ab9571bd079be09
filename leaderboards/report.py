"""``LEADERBOARD.md`` and one PNG + SVG of regret curves per env setting, from a verified results directory.

Plots use one colour per agent across the whole report (:func:`agent_colours`), 150 dpi PNG plus SVG, a
human-readable setting name as title (the hash-suffixed key stays the file name), and a second panel
without the uniform agent so the good agents stay readable when uniform's regret dominates the scale.
The static HTML site (``report DIR --html OUT``) is :mod:`hbgym.leaderboards.site`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from hbgym.leaderboards.records import agent_label
from hbgym.leaderboards.scoring import ScoreTable, iqm, iqm_ci, probability_of_improvement, score_rows
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import Suite, find_setting_label

__all__ = ["agent_colours", "build_report", "labelled_rows", "rank_rows", "ranking", "regret_curves",
           "save_figure", "setting_dicts"]


def setting_dicts(suite: Suite) -> list[dict[str, Any]]:
    return [{**s.spec(), "key": s.key} for s in suite.settings]


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if not np.isfinite(x) else f"{x:.{digits}f}"


def labelled_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``agent`` set to the name it is ranked under (``records.agent_label``:
    trusted third-party results marked, several code versions of one name kept apart); ``name`` keeps
    the stored name."""
    versions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        versions[(r["agent"], r.get("mode", "trusted"))].add(str(r.get("agent_code_hash")))
    return [{**r, "name": r["agent"],
             "agent": agent_label(r, len(versions[(r["agent"], r.get("mode", "trusted"))]) > 1)}
            for r in rows]


def rank_rows(rows: list[dict[str, Any]], suite: Suite) -> list[dict[str, Any]]:
    """:func:`ranking` of stored rows on ``suite`` (labelled by :func:`labelled_rows`)."""
    table = score_rows(labelled_rows(rows), setting_dicts(suite))
    return ranking(table, list(dict.fromkeys(s.family for s in suite.settings)))


def ranking(table: ScoreTable, families: list[str]) -> list[dict[str, Any]]:
    """One entry per agent (sorted by IQM, best first): score, CI, per-family IQM, envs played.

    Failed (seed, setting) pairs score 0 (see :func:`score_rows`); an agent none of whose cells
    succeeded gets no score and no rank (``ranked`` False, listed last).
    """
    out = []
    for agent in table.scores:
        played = table.columns(agent)
        ranked = bool(np.isfinite(table.final[agent]).any())
        point, lo, hi = iqm_ci(played) if played.size and ranked else (np.nan, np.nan, np.nan)
        out.append({"ranked": ranked,
            "agent": agent, "oracle": table.oracle.get(agent, False), "iqm": point, "low": lo, "high": hi,
            "families": {f: iqm(table.columns(agent, f)) for f in families},
            "envs": int(played.shape[1]) if played.size else 0,
            "failed": table.failed_cells.get(agent, 0),
        })
    out.sort(key=lambda e: (-np.nan_to_num(e["iqm"], nan=-np.inf), e["agent"]))
    return out


def agent_colours(agents: list[str]) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per agent for all plots of a report (``tab20`` dark, light shades, then ``hsv``)."""
    import matplotlib

    tab = list(matplotlib.colormaps["tab20"].colors)
    base = tab[0::2] + tab[1::2]
    extra = len(agents) - len(base)
    if extra > 0:
        hsv = matplotlib.colormaps["hsv"]
        base += [tuple(hsv(i / extra)[:3]) for i in range(extra)]
    return {a: tuple(base[i]) for i, a in enumerate(agents)}


def regret_curves(records: list[dict[str, Any]], key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per agent ``(steps (T,), cumulative regret (num_seeds x T))`` of the ok rows on setting ``key``."""
    curves: dict[str, list[np.ndarray]] = {}
    steps: dict[str, np.ndarray] = {}
    for rec in records:
        for r in rec["rows"]:
            if r["setting"] == key and r.get("status") == "ok":
                curves.setdefault(r["agent"], []).append(np.asarray(r["cum_regret"], dtype=float))
                steps[r["agent"]] = np.asarray(r["steps"])
    return {a: (steps[a], np.stack(curves[a])) for a in sorted(curves)}


def save_figure(fig: Any, path: Path) -> None:
    """``path`` as a 150 dpi PNG and as ``.svg`` (text kept as text, no date: small and stable in git)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=150, pil_kwargs={"optimize": True})
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hbgym"}):
        fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})


def _plot(records: list[dict[str, Any]], key: str, path: Path, title: str,
          colours: dict[str, tuple[float, float, float]], uniform: str = "Uniform") -> None:
    """Regret curves (mean, 95% CI) on ``key``: all agents, and a zoomed panel without the uniform agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = regret_curves(records, key)
    zoom = [a for a in curves if a != uniform]
    panels = 2 if zoom and uniform in curves else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    for p, ax in enumerate(axes[0]):
        for agent in (curves if p == 0 else zoom):
            x, y = curves[agent]
            mean = y.mean(0)
            half = 1.96 * y.std(0, ddof=1) / np.sqrt(len(y)) if len(y) > 1 else np.zeros_like(mean)
            colour = colours.get(agent, (0.3, 0.3, 0.3))
            ax.plot(x, mean, label=agent, color=colour, marker="." if len(x) < 3 else None)
            ax.fill_between(x, mean - half, mean + half, alpha=0.2, color=colour)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative regret (mean, 95% CI)")
        ax.set_title("all agents" if p == 0 else f"zoom: without {uniform}", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def build_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 expected_hash: str | None = None, plots: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Verify ``results_dir``, write ``LEADERBOARD.md`` and the PNGs to ``out_dir`` (default: the same).

    Returns:
        ``(markdown, ranking)``.

    Raises:
        TamperedResultsError: if the directory fails :meth:`ResultStore.verify`.
    """
    suite, records = ResultStore(results_dir).verified_records(expected_hash)  # one pass over the files
    out = Path(out_dir or results_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = labelled_rows([r for rec in records for r in rec["rows"]])
    table = score_rows(rows, setting_dicts(suite))
    families = list(dict.fromkeys(s.family for s in suite.settings))
    ranks = ranking(table, families)
    what = "normalised suboptimality" if suite.kind == "offline" else "normalised regret"
    lines = [
        f"# Leaderboard: suite `{suite.name}` v{suite.version}",
        "",
        f"Suite hash `{suite.hash[:16]}`, {suite.seeds_text()}, "
        f"{len(suite.settings)} settings. "
        f"Score = {what}: uniform = 0, oracle = 1 (per env, from the reference agents stored with these "
        "results); aggregate = IQM over (seed, env) with a 95% percentile bootstrap CI over seeds "
        "(scipy.stats.bootstrap, random_state=0). (oracle) marks agents that read the sampled truth; "
        "(trusted) marks third-party agents run in-process by `run`, not sandboxed by `submit`. "
        "A failed cell scores 0 (uniform) on its seeds; an agent whose cells all failed is not ranked. "
        "Agents are ranked over the envs they apply to (column envs): compare the per-family columns "
        "for like-for-like comparisons. Scores above 1 beat the oracle reference (an oracle-prior "
        "agent is Bayes-optimal only on average over instances, not per seed).",
        "",
        "| rank | agent | IQM score | 95% CI | " + " | ".join(families) + " | envs | failed cells |",
        "|---:|---|---:|---|" + "---:|" * len(families) + "---:|---:|",
    ]
    for i, e in enumerate(ranks, 1):
        name = e["agent"] + (" (oracle)" if e["oracle"] else "")
        i = i if e["ranked"] else "-"  # noqa: PLW2901 - a fully failed agent has no rank
        fam = " | ".join(_fmt(e["families"][f]) for f in families)
        lines.append(f"| {i} | {name} | {_fmt(e['iqm'])} | [{_fmt(e['low'])}, {_fmt(e['high'])}] | {fam} | "
                     f"{e['envs']} | {e['failed']} |")
    top = [e["agent"] for e in ranks if np.isfinite(e["iqm"]) and not e["oracle"]][:5]
    if len(top) > 1:
        lines += ["", "Probability of improvement P(row > column) on paired seeds (non-oracle top 5):", "",
                  "| | " + " | ".join(top) + " |", "|---|" + "---:|" * len(top)]
        for a in top:
            cells = [("-" if a == b else _fmt(probability_of_improvement(table.scores[a], table.scores[b])))
                     for b in top]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
    extra = " (suboptimality)" if suite.kind == "offline" else ""
    lines += ["", "## Per env: mean final regret" + extra, ""]
    agents = [e["agent"] for e in ranks]
    lines += ["| setting | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for j, s in enumerate(suite.settings):
        vals = []
        for a in agents:
            col = table.final[a][:, j]
            col = col[np.isfinite(col)]
            vals.append("-" if col.size == 0 else f"{col.mean():.3g}")
        lines.append(f"| {find_setting_label(suite.name, s.spec())} | " + " | ".join(vals) + " |")
    lines += ["", "## Settings", "",
              "| setting | env id | kwargs | horizon | tags | oracle reference | plot |",
              "|---|---|---|---:|---|---|---|"]
    colours = agent_colours(sorted(agents))
    for s in suite.settings:
        png = f"{s.key}.png"
        label = find_setting_label(suite.name, s.spec())
        lines.append(f"| {label} | {s.env_id} | `{dict(s.kwargs)}` | {s.horizon} | {', '.join(s.tags)} | "
                     f"{s.oracle} | [{png}]({png}) |")
        if plots and suite.kind == "online":
            _plot(records, s.key, out / png, label, colours)
    seen_seeds: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        seen_seeds.setdefault((r["agent"], r["setting"]), set()).add(int(r["seed"]))
    expected = {s.key: suite.num_seeds_of(s) for s in suite.settings}
    incomplete = [f"{a} on {k}: {len(s)}/{expected.get(k, suite.num_seeds)} seeds"
                  for (a, k), s in sorted(seen_seeds.items()) if len(s) < expected.get(k, suite.num_seeds)]
    if incomplete:
        lines += ["", "## Incomplete (an interrupted run: rerun the same `run` command to resume)", ""]
        lines += [f"- {line}" for line in incomplete]
    fails = [(a, f) for a, fs in table.failures.items() for f in fs]
    if fails:
        lines += ["", "## Failed cells", ""]
        seen = set()
        for a, f in fails:
            reason = f.split(": ", 1)[-1]
            if (a, reason) not in seen:
                seen.add((a, reason))
                lines.append(f"- {a}: {f[:300]}")
    rows_meta = rows[0] if rows else {}
    lines += ["", f"Produced with git commit `{rows_meta.get('git_commit')}`, versions "
              f"`{rows_meta.get('versions')}`, device {rows_meta.get('device')}, "
              f"dtype {rows_meta.get('dtype')}."]
    text = "\n".join(lines) + "\n"
    (out / "LEADERBOARD.md").write_text(text)
    return text, ranks


def console_table(ranks: list[dict[str, Any]], limit: int | None = None, mark: set[str] | None = None) -> str:
    """The ranking as a fixed-width table for the terminal; agents in ``mark`` get a ``<--``."""
    lines = [f"{'rank':>4}  {'agent':24s} {'IQM score':>9}  {'95% CI':>16}  envs  failed cells"]
    for i, e in enumerate(ranks[:limit], 1):
        name = e["agent"] + (" (oracle)" if e["oracle"] else "")
        ci = f"[{_fmt(e['low'])}, {_fmt(e['high'])}]"
        rank = f"{i:4d}" if e.get("ranked", True) else "   -"
        arrow = "  <--" if mark and e["agent"] in mark else ""
        lines.append(f"{rank}  {name:24s} {_fmt(e['iqm']):>9}  {ci:>16}  {e['envs']:>4}  "
                     f"{e.get('failed', 0):>12}{arrow}")
    return "\n".join(lines)
