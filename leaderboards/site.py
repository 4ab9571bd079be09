"""The static web leaderboard: a self-contained HTML site from a results directory or a published board.

``report DIR --html SITE`` / ``publish BUNDLE --board BOARD`` write::

    SITE/index.html               overview: one ranked table per coverage group (agents are ranked only
                                  among agents that played the same settings), sortable by any column
                                  (inline JS), per-family IQM columns, all with 95% CIs, optimality gap;
                                  probability-of-improvement matrix with CIs; performance profiles (bands)
    SITE/agents/<agent>.html      code hash, spec, versions, machine, verification status, per-setting
                                  scores, regret curves
    SITE/settings/<key>.html      the setting (readable name, env id, kwargs, references), its scores
    SITE/plots/*.png, *.svg       150 dpi PNG + SVG; one colour per agent across every plot

No external resource is referenced (no CDN, fonts or scripts): the site works offline and from
``file://``. Every string that comes from results or a bundle is HTML-escaped (a bundle is hostile input).
With several suites on a board, ``SITE/index.html`` links one such site per suite in a subfolder.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hbgym.leaderboards.bundle import Collection, Sandbox, board_collections
from hbgym.leaderboards.report import agent_colours, regret_curves, save_figure, setting_dicts
from hbgym.leaderboards.scoring import (
    ScoreTable,
    iqm_ci,
    optimality_gap,
    performance_profile_ci,
    probability_of_improvement_ci,
    score_rows,
)
from hbgym.leaderboards.suites import find_setting_label

__all__ = [
    "build_results_site",
    "build_board_site",
    "write_site",
    "coverage_groups",
    "add_bundle_commands",
    "cmd_verify",
    "cmd_publish",
]

MAX_POI_AGENTS = 8

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em}
th{background:#f0f0f0}table.sortable th{cursor:pointer}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
img{max-width:100%;border:1px solid #eee}.muted{color:#777}code{background:#f6f6f6;padding:0 .2em}"""

SORT_JS = """document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=th.dataset.dir!=='asc';
  t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir;});th.dataset.dir=asc?'asc':'desc';
  function key(r){var c=r.cells[i],v=c.dataset.v!==undefined?c.dataset.v:c.textContent,f=parseFloat(v);
   return isNaN(f)?v.toLowerCase():f;}
  rows.sort(function(x,y){var a=key(x),c=key(y);if(typeof a!==typeof c){a=String(a);c=String(c);}
   return (a<c?-1:a>c?1:0)*(asc?1:-1);});
  rows.forEach(function(r){b.appendChild(r);});});});});"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:100] or "_"


def _num(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "-"


def _td(x: float, digits: int = 2, ci: tuple[float, float] | None = None) -> str:
    """A numeric cell sorted by ``x`` (missing values sort last), optionally showing ``[low, high]``."""
    v = f"{x:.6g}" if np.isfinite(x) else "-1e308"
    extra = f" [{_num(ci[0], digits)}, {_num(ci[1], digits)}]" if ci is not None and np.isfinite(x) else ""
    return f'<td class="n" data-v="{v}">{_num(x, digits)}{extra}</td>'


def _td_ci(scores: np.ndarray) -> str:
    """IQM of ``scores`` with its seed-bootstrap 95% CI in one cell."""
    point, lo, hi = iqm_ci(scores) if scores.size else (np.nan, np.nan, np.nan)
    return _td(point, ci=(lo, hi))


def _page(title: str, body: str, depth: int = 0) -> str:
    home = "../" * depth + "index.html"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<link rel="icon" href="data:,"><style>{CSS}</style></head>'
        f'<body><p><a href="{home}">leaderboard</a></p><h1>{_e(title)}</h1>\n{body}\n'
        f"<script>{SORT_JS}</script></body></html>\n"
    )


def _swatch(colour: tuple[float, float, float]) -> str:
    hexc = "#" + "".join(f"{int(round(c * 255)):02x}" for c in colour[:3])
    return f'<span class="sw" style="background:{hexc}"></span>'


def coverage_groups(table: ScoreTable) -> list[tuple[tuple[str, ...], list[str]]]:
    """Agents grouped by the exact set of settings they have scores on (like-with-like ranking).

    Returns:
        ``[(settings, agents)]``, the group with the most settings first (ties: more agents first);
        agents without any score are left out.
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for agent, s in table.scores.items():
        played = tuple(k for j, k in enumerate(table.settings) if np.isfinite(s[:, j]).any())
        if played:
            groups.setdefault(played, []).append(agent)
    return sorted(groups.items(), key=lambda g: (-len(g[0]), -len(g[1]), g[0]))


def _agent_link(agent: str, colours: dict[str, Any], depth: int = 0) -> str:
    return f'{_swatch(colours[agent])}<a href="{"../" * depth}agents/{_slug(agent)}.html">{_e(agent)}</a>'


def _group_table(
    table: ScoreTable,
    agents: list[str],
    families: list[str],
    colours: dict[str, Any],
    meta: dict[str, dict[str, Any]],
    index: int,
) -> tuple[str, list[str]]:
    entries = []
    for a in agents:
        played = table.columns(a)
        point, lo, hi = iqm_ci(played)
        entries.append((a, point, lo, hi, played))
    entries.sort(key=lambda e: (-np.nan_to_num(e[1], nan=-np.inf), e[0]))
    head = [
        "rank",
        "agent",
        "IQM score",
        "CI low",
        "CI high",
        *families,
        "optimality gap",
        "settings",
        "failed seeds",
        "verification",
    ]
    rows = []
    for rank, (a, point, lo, hi, played) in enumerate(entries, 1):
        oracle = " (oracle)" if table.oracle.get(a) else ""
        fam = "".join(_td_ci(table.columns(a, f)) for f in families)
        info = meta.get(a, {})
        status = info.get("verification", "")
        short = ("verified" if info.get("verified") else "local results") if status else ""
        rows.append(
            f'<tr><td class="n" data-v="{rank}">{rank}</td>'
            f'<td data-v="{_e(a)}">{_agent_link(a, colours)}{_e(oracle)}</td>{_td(point)}{_td(lo)}'
            f'{_td(hi)}{fam}{_td(optimality_gap(played))}<td class="n">{played.shape[1]}</td>'
            f'<td class="n">{len(table.failures.get(a, []))}</td>'
            f'<td title="{_e(status)}">{_e(short)}</td></tr>'
        )
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    html_table = (
        f'<table class="sortable" id="ranking-{index}"><thead><tr>{ths}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    return html_table, [e[0] for e in entries]


def _profile_plot(table: ScoreTable, agents: list[str], colours: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = np.concatenate([table.columns(a).ravel() for a in agents])
    finite = finite[np.isfinite(finite)]
    lo, hi = (float(np.min(finite)), float(np.max(finite))) if finite.size else (0.0, 1.0)
    taus = np.linspace(min(lo, 0.0), max(hi, 1.0), 201)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for a in agents:
        profile, low, high = performance_profile_ci(table.columns(a), taus)
        ax.plot(taus, profile, label=a, color=colours[a])
        ax.fill_between(taus, low, high, color=colours[a], alpha=0.15)
    ax.set_xlabel("normalised score threshold tau")
    ax.set_ylabel("fraction of (seed, setting) runs with score > tau")
    ax.set_title("performance profiles", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _setting_plot(
    records: list[dict[str, Any]], key: str, label: str, colours: dict[str, Any], path: Path
) -> bool:
    from hbgym.leaderboards.report import _plot

    if not regret_curves(records, key):
        return False
    _plot(records, key, path, label, colours)
    return True


def _poi_matrix(table: ScoreTable, agents: list[str], colours: dict[str, Any]) -> str:
    head = "".join(f"<th>{_e(b)}</th>" for b in agents)
    rows = []
    for a in agents:
        cells = []
        for b in agents:
            if a == b:
                cells.append("<td>-</td>")
                continue
            p, lo, hi = probability_of_improvement_ci(table.scores[a], table.scores[b])
            cells.append(f'<td class="n">{_num(p)} [{_num(lo)}, {_num(hi)}]</td>')
        rows.append(f"<tr><th>{_agent_link(a, colours)}</th>{''.join(cells)}</tr>")
    return (
        f'<table id="poi"><thead><tr><th>P(row &gt; column)</th>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def write_site(col: Collection, out: str | os.PathLike, title: str | None = None) -> Path:
    """Write the site of one suite's :class:`~hbgym.leaderboards.bundle.Collection` to ``out``."""
    out = Path(out)
    for sub in ("agents", "settings", "plots"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    suite = col.suite
    rows = [r for rec in col.records for r in rec["rows"]]
    table = score_rows(rows, setting_dicts(suite))
    families = list(dict.fromkeys(s.family for s in suite.settings))
    colours = agent_colours(sorted(table.scores))
    labels = {s.key: find_setting_label(suite.name, s.spec()) for s in suite.settings}
    body = [
        f"<p>Suite <code>{_e(suite.name)}</code> v{suite.version}, hash <code>{_e(suite.hash[:16])}</code>, "
        f"{_e(suite.seeds_text())}, {len(suite.settings)} settings. Score = normalised regret (uniform 0, "
        "oracle 1); IQM over (seed, setting) with a 95% bootstrap CI over seeds; optimality gap = mean "
        "shortfall below score 1 (lower is better). Agents are ranked only among agents that played the "
        "same settings. Click a column header to sort.</p>"
    ]
    groups = coverage_groups(table)
    main_order: list[str] = []
    for i, (settings, agents) in enumerate(groups):
        heading = (
            "Ranking: all settings"
            if len(settings) == len(suite.settings)
            else f"Partial coverage: {len(settings)} of {len(suite.settings)} settings"
        )
        body.append(f"<h2>{_e(heading)}</h2>")
        if len(settings) < len(suite.settings):
            body.append("<p class='muted'>settings: " + ", ".join(_e(labels[k]) for k in settings) + "</p>")
        html_table, order = _group_table(table, agents, families, colours, col.agents, i)
        body.append(html_table)
        if i == 0:
            main_order = order
    contenders = [a for a in main_order if not table.oracle.get(a)][:MAX_POI_AGENTS]
    if len(contenders) > 1:
        body += [
            "<h2>Probability of improvement</h2>",
            "<p>P(row beats column) on paired seeds, averaged over settings, with a 95% bootstrap CI "
            f"over seeds (top {len(contenders)} non-oracle agents of the main ranking).</p>",
            _poi_matrix(table, contenders, colours),
        ]
    if main_order:
        _profile_plot(table, main_order, colours, out / "plots" / "performance_profile.png")
        body += [
            "<h2>Performance profiles</h2>",
            '<img src="plots/performance_profile.png" alt="performance profiles">',
            '<p><a href="plots/performance_profile.svg">SVG</a></p>',
        ]
    body.append(
        "<h2>Settings</h2><table class='sortable' id='settings'><thead><tr><th>setting</th>"
        "<th>env id</th><th>family</th><th>horizon</th></tr></thead><tbody>"
    )
    plotted = {}
    for s in suite.settings:
        body.append(
            f'<tr><td><a href="settings/{_slug(s.key)}.html">{_e(labels[s.key])}</a></td>'
            f"<td>{_e(s.env_id)}</td><td>{_e(s.family)}</td><td class='n'>{_e(s.horizon)}</td></tr>"
        )
        plotted[s.key] = _setting_plot(
            col.records, s.key, labels[s.key], colours, out / "plots" / f"{_slug(s.key)}.png"
        )
    body.append("</tbody></table>")
    if col.superseded:
        body.append("<h2>Superseded versions (history)</h2><ul>")
        body += [
            f"<li>{_e(h.get('agent'))} code <code>{_e(str(h.get('code_hash'))[:12])}</code>, published "
            f"{_e(h.get('published'))}</li>"
            for h in col.superseded
        ]
        body.append("</ul>")
    (out / "index.html").write_text(
        _page(title or f"Leaderboard: {suite.name} v{suite.version}", "\n".join(body))
    )
    pages = _Pages(table, col, labels, plotted, colours, out)
    for a in table.scores:
        _agent_page(a, pages)
    for j, s in enumerate(suite.settings):
        _setting_page(j, s, pages)
    return out


@dataclass
class _Pages:
    """What the per-agent and per-setting pages of one site share."""

    table: ScoreTable
    col: Collection
    labels: dict[str, str]  # setting key -> readable name
    plotted: dict[str, bool]  # setting key -> a regret plot exists
    colours: dict[str, Any]
    out: Path


def _agent_page(agent: str, d: _Pages) -> None:
    table, col, labels, plotted, out = d.table, d.col, d.labels, d.plotted, d.out
    meta = col.agents.get(agent, {})
    info = [
        ("code hash", meta.get("code_hash")),
        ("spec", meta.get("spec")),
        ("mode", meta.get("mode")),
        ("verification", meta.get("verification")),
        ("published", meta.get("published")),
        ("versions", meta.get("versions") and json.dumps(meta["versions"], sort_keys=True)),
        ("machine", meta.get("machine") and json.dumps(meta["machine"], sort_keys=True)),
        ("oracle (reads the truth)", table.oracle.get(agent, False)),
    ]
    body = [
        "<table id='info'>"
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in info if v not in (None, "", {}))
        + "</table>",
        "<h2>Per setting</h2><table class='sortable' id='per-setting'><thead><tr><th>setting</th>"
        "<th>mean score</th><th>IQM</th><th>CI low</th><th>CI high</th><th>mean final regret</th></tr>"
        "</thead><tbody>",
    ]
    curves = []
    for j, key in enumerate(table.settings):
        s = table.scores[agent][:, j]
        if not np.isfinite(s).any():
            continue
        point, lo, hi = iqm_ci(s)
        final = table.final[agent][:, j]
        body.append(
            f'<tr><td><a href="../settings/{_slug(key)}.html">{_e(labels[key])}</a></td>'
            f"{_td(float(np.nanmean(s)))}{_td(point)}{_td(lo)}{_td(hi)}"
            f"{_td(float(np.nanmean(final)), 3)}</tr>"
        )
        if plotted.get(key):
            curves.append(
                f"<h3>{_e(labels[key])}</h3><img src='../plots/{_slug(key)}.png' alt='regret curves'>"
            )
    body.append("</tbody></table>")
    fails = table.failures.get(agent, [])
    if fails:
        body.append(
            "<h2>Failures</h2><ul>" + "".join(f"<li>{_e(f[:300])}</li>" for f in fails[:50]) + "</ul>"
        )
    body += ["<h2>Regret curves</h2>", *curves]
    page = _page(agent, "\n".join(body), depth=1)
    (out / "agents" / f"{_slug(agent)}.html").write_text(page)


def _setting_page(j: int, s: Any, d: _Pages) -> None:
    table, labels, plotted, colours, out = d.table, d.labels, d.plotted, d.colours, d.out
    refs = table.references.get(s.key, {})
    info = [
        ("key (hash)", s.key),
        ("env id", s.env_id),
        ("kwargs", json.dumps(dict(s.kwargs), sort_keys=True)),
        ("horizon", s.horizon),
        ("tags", ", ".join(s.tags)),
        ("score-0 reference", s.uniform),
        ("score-1 reference", s.oracle),
        ("reference mean final regrets (score 0 / score 1)", f"{refs.get('uniform')} / {refs.get('oracle')}"),
    ]
    body = [
        "<table id='info'>"
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in info)
        + "</table>",
        "<table class='sortable' id='agents'><thead><tr><th>agent</th><th>IQM score</th>"
        "<th>CI low</th><th>CI high</th><th>mean final regret</th></tr></thead><tbody>",
    ]
    for a in sorted(table.scores):
        sc = table.scores[a][:, j]
        if not np.isfinite(sc).any():
            continue
        point, lo, hi = iqm_ci(sc)
        body.append(
            f"<tr><td data-v='{_e(a)}'>{_agent_link(a, colours, depth=1)}</td>{_td(point)}{_td(lo)}"
            f"{_td(hi)}{_td(float(np.nanmean(table.final[a][:, j])), 3)}</tr>"
        )
    body.append("</tbody></table>")
    if plotted.get(s.key):
        body.append(
            f"<img src='../plots/{_slug(s.key)}.png' alt='regret curves'>"
            f"<p><a href='../plots/{_slug(s.key)}.svg'>SVG</a></p>"
        )
    (out / "settings" / f"{_slug(s.key)}.html").write_text(_page(labels[s.key], "\n".join(body), depth=1))


# --------------------------------------------------------------------------- entry points


def _results_collection(results_dir: str | os.PathLike, expected_hash: str | None) -> Collection:
    from hbgym.leaderboards.bundle import _load_results

    suite, records = _load_results(Path(results_dir), expected_hash)
    agents: dict[str, dict[str, Any]] = {}
    for rec in records:
        for r in rec["rows"][:1]:
            meta = agents.setdefault(
                r["agent"],
                {
                    "spec": r.get("agent_spec"),
                    "versions": r.get("versions"),
                    "code_hash": r.get("agent_code_hash"),
                    "mode": r.get("mode"),
                },
            )
            meta["verification"] = f"local results ({r.get('mode') or 'unverified'})"
    return Collection(suite, records, agents)


def build_results_site(
    results_dir: str | os.PathLike, out: str | os.PathLike, expected_hash: str | None = None
) -> Path:
    """The site of a results directory written by ``run`` / ``submit``."""
    return write_site(_results_collection(results_dir, expected_hash), out)


def build_board_site(board: str | os.PathLike, out: str | os.PathLike) -> Path:
    """The site of a board written by :func:`~hbgym.leaderboards.bundle.publish` (one subfolder per suite)."""
    cols = board_collections(board)
    out = Path(out)
    if len(cols) == 1:
        return write_site(cols[0], out)
    out.mkdir(parents=True, exist_ok=True)
    links = []
    for col in cols:
        sub = f"{_slug(col.suite.name)}-{col.suite.hash[:12]}"
        write_site(col, out / sub)
        links.append(
            f'<li><a href="{sub}/index.html">{_e(col.suite.name)} v{col.suite.version} '
            f"({len(col.agents)} agents)</a></li>"
        )
    (out / "index.html").write_text(_page("Leaderboards", "<ul>" + "".join(links) + "</ul>"))
    return out


def add_bundle_commands(sub: Any) -> None:
    """Add ``verify`` and ``publish`` to the CLI's subparsers."""
    ver = sub.add_parser(
        "verify",
        help="re-run random cells of a submission bundle in the sandbox",
        description="Check a bundle (checksums, registered suite, code hash) and re-run K "
        "randomly chosen cells in the sandbox; exit 0 if they reproduce, 1 with the first "
        "differing cell if not.",
    )
    ver.add_argument("bundle", metavar="BUNDLE", help="a .tar.gz or directory written by `submit --bundle`")
    pub = sub.add_parser(
        "publish",
        help="verify a bundle and merge it into a leaderboard directory",
        description="Verify BUNDLE, then add it to BOARD (append-only history.jsonl; a newer "
        "version of an agent supersedes the older in the table) and write the site.",
    )
    pub.add_argument("bundle", metavar="BUNDLE")
    pub.add_argument("--board", required=True, metavar="DIR", help="leaderboard directory (e.g. in git)")
    pub.add_argument("--html", default=None, metavar="SITE", help="site directory (default: DIR/site)")
    for p in (ver, pub):
        p.add_argument("--cells", default="5", metavar="K", help="cells to re-run, or 'all' (default: 5)")
        p.add_argument("--seed", type=int, default=0, metavar="S", help="which cells are drawn (default: 0)")
        p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="wall-time limit per cell")


def _verify_args(args: argparse.Namespace, sandbox: Sandbox | None = None) -> Any:
    from hbgym.leaderboards.bundle import verify_bundle

    if args.cells != "all" and not (args.cells.isdigit() and int(args.cells) >= 1):
        raise ValueError(f"--cells must be a positive integer or 'all', got {args.cells!r}")
    cells = None if args.cells == "all" else int(args.cells)
    result = verify_bundle(
        args.bundle,
        sandbox,
        cells=cells,
        seed=args.seed,
        timeout=args.timeout,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(
        f"{'VERIFIED' if result.ok else 'REJECTED'} {args.bundle}: {result.reason} ({result.seconds:.1f} s)"
    )
    return result


def cmd_verify(args: argparse.Namespace, sandbox: Sandbox | None = None) -> int:
    """``verify``; ``sandbox`` runs one cell (default: the runner's, see :mod:`.bundle`)."""
    return 0 if _verify_args(args, sandbox).ok else 1


def cmd_publish(args: argparse.Namespace, sandbox: Sandbox | None = None) -> int:
    """``publish``: verify (with ``sandbox``), merge into the board, write the site."""
    from hbgym.leaderboards.bundle import publish

    result = _verify_args(args, sandbox)
    if not result.ok:
        return 1
    entry, new = publish(args.bundle, args.board, result)
    print(f"{'published' if new else 'already published'}: {entry}")
    site = build_board_site(args.board, args.html or Path(args.board) / "site")
    print(f"{site / 'index.html'} written")
    return 0
