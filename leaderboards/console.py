"""What the commands share: agent lists, the suite from the arguments, messages, and "where do I rank".

Imported by :mod:`hbgym.leaderboards.cli` and :mod:`hbgym.leaderboards.submit` (neither imports the other).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hbgym.leaderboards.suites import Suite, get_suite

__all__ = ["expand", "say", "suite_from_args", "report_skipped", "agent_names", "zoo_results", "rank_in_zoo",
           "zoo_cache_dir", "print_zoo_rank"]


def expand(specs: list[str] | None, suite_agents: tuple[str, ...]) -> list[str]:
    from hbgym.leaderboards.suites import expand_agents

    out: list[str] = []
    for spec in specs or ["all"]:
        for s in expand_agents(suite_agents) if spec == "all" else (spec,):
            if s not in out:
                out.append(s)
    return out


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def suite_from_args(args: argparse.Namespace) -> Suite:
    if getattr(args, "device", "cpu") != "cpu":
        from hbgym.agents.base import resolve_device

        resolve_device(args.device)  # a clear error now rather than every cell failing
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    return get_suite(args.suite).with_seeds(args.seeds)


def report_skipped(skipped: list[tuple[str, str, str]], verbose: bool) -> None:
    """One line per skipped (agent, setting) pair when verbose or when there are few, else a summary."""
    if verbose or len(skipped) <= 10:
        for name, key, reason in skipped:
            say(f"skip {name} on {key}: {reason.splitlines()[0][:120]}")
    else:
        agents = len({name for name, _, _ in skipped})
        say(f"skipped {len(skipped)} (agent, setting) pairs of {agents} agents that do not apply to "
               "that env family (--verbose lists them with the reason)")




def agent_names(specs: list[str], names: list[str] | None) -> dict[str, str]:
    """spec -> leaderboard name from ``--name`` (one per ``--agent``, in order), or ``{}``."""
    if not names:
        return {}
    if len(names) != len(specs):
        raise ValueError(f"--name given {len(names)} times for {len(specs)} agents ({specs}); give one "
                         "--name per --agent, in the same order")
    bad = [n for n in names if not n or any(c in n for c in "/\\\n@")]
    if bad:
        raise ValueError(f"--name {bad[0]!r}: use a non-empty name without '/', '\\\\', '@' or newlines")
    return dict(zip(specs, names))


def zoo_cache_dir(suite: Suite) -> Path:
    """Where the zoo's results of ``suite`` are cached: ``$HBGYM_CACHE_DIR`` or ``~/.cache/hbgym``, then
    ``zoo/<suite hash>``."""
    base = Path(os.environ.get("HBGYM_CACHE_DIR") or Path.home() / ".cache" / "hbgym")
    return base / "zoo" / suite.hash


def zoo_results(suite: Suite, compare: str | None, jobs: int, quiet: bool) -> Path:
    """A verified directory with the zoo's results on ``suite``: ``compare`` if given, else the cache
    (computed once, resumed if interrupted, verified by checksum before use)."""
    from hbgym.leaderboards.runner import execute, plan
    from hbgym.leaderboards.store import ResultStore

    if compare is not None:
        ResultStore(compare).verify(suite.hash)
        return Path(compare)
    where = zoo_cache_dir(suite)
    store = ResultStore(where)
    if store.exists():
        store.verify(suite.hash)
    store.open(suite)
    cells, _ = plan(suite, expand(None, suite.agents))
    if any(c.id not in store.completed() for c in cells):
        say(f"computing the zoo's results on suite {suite.name} once (cached in {where})")
        execute(cells, store, jobs=jobs, progress=not quiet)
    store.verify(suite.hash)
    return where


def rank_in_zoo(out: Path, suite: Suite, agents: list[str], zoo_dir: Path) -> str:
    """The console table of ``agents`` (names in ``out``) ranked among the zoo's results in ``zoo_dir``."""
    from hbgym.leaderboards.report import console_table, labelled_rows, rank_rows
    from hbgym.leaderboards.store import ResultStore

    mine = [r for r in ResultStore(out).rows() if r["agent"] in agents]
    theirs = [r for r in ResultStore(zoo_dir).rows() if r["agent"] not in agents]
    return console_table(rank_rows(mine + theirs, suite), mark={r["agent"] for r in labelled_rows(mine)})


def print_zoo_rank(args: argparse.Namespace, out: Path, suite: Suite, specs: list[str],
                   names: dict[str, str]) -> None:
    """After ``run``/``submit``: the third-party agents of ``specs`` within the zoo (``--compare``/cache)."""
    from hbgym.leaderboards.specs import spec_kind, spec_name

    mine = [names.get(s, spec_name(s)) for s in specs if spec_kind(s) != "zoo"]
    if not mine or getattr(args, "no_compare", False) or suite.kind != "online":
        return
    if set(expand(None, suite.agents)) <= set(specs):  # the run holds the whole zoo: its table is the rank
        return
    zoo_dir = zoo_results(suite, getattr(args, "compare", None), getattr(args, "jobs", 1), args.quiet)
    print(f"\nwithin the zoo (results from {zoo_dir}):")
    print(rank_in_zoo(out, suite, mine, zoo_dir))
