"""``submit``: score an untrusted agent; it runs sandboxed, the runner keeps the env and the results.

Every cell of the submitted agent is a ``sandboxed`` cell (:func:`hbgym.leaderboards.runner.run_cell`
with :class:`~hbgym.leaderboards.sandbox.Limits`): the runner owns the vector env, the simulator, the
keys, the regret and the record, and the agent runs in a least-privileged child process that sees the
public model, the spaces, its observations and its own rewards only (see
:mod:`hbgym.leaderboards.sandbox`). Anything wrong on the agent's side — an exception, a hang, a crash,
an invalid action or NaN, a malformed frame, a flood of output, a limit — fails that cell with one
reason; the run continues. The suite's reference agents run trusted in-process. Cells run in parallel
with ``--jobs`` (through :func:`~hbgym.leaderboards.runner.execute`).

Cells of a submitted agent carry its code hash and the mode in their id: a trusted ``run`` of the same
agent is never reused, and an edited agent is scored again (kept apart in the report as
``name@<hash>``; use ``--name`` to name variants).

Before anything runs, an existing results directory is verified (checksums, suite hash) and rejected
with the reason if it was edited, truncated or produced for another suite.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from hbgym.leaderboards.console import agent_names, expand, print_zoo_rank, say, suite_from_args
from hbgym.leaderboards.records import validate_record
from hbgym.leaderboards.runner import execute, plan, run_cell
from hbgym.leaderboards.sandbox import Limits, isolation
from hbgym.leaderboards.store import ResultStore

__all__ = ["submit", "validate_record"]


def submit(args: argparse.Namespace) -> int:
    """The ``submit`` command (see ``hbgym-leaderboard submit --help``)."""
    from hbgym.leaderboards.report import build_report, console_table

    suite = suite_from_args(args)
    specs = expand(args.agent, suite.agents)
    names = agent_names(specs, getattr(args, "name", None))
    if getattr(args, "bundle", None) and len(specs) != 1:
        raise ValueError(f"--bundle packs one agent; got {len(specs)} agent specs: {specs[:5]}")
    if args.timeout <= 0 or args.memory <= 0:
        raise ValueError(f"--timeout and --memory must be > 0, got {args.timeout} and {args.memory}")
    out = Path(args.out or f"results/{suite.name}")
    store = ResultStore(out)
    if store.exists():
        store.verify(suite.hash)  # a tampered / other-suite directory is rejected before anything runs
    cells, _ = plan(suite, specs, device=args.device, mode="sandboxed", names=names)  # before any mkdir
    store.open(suite)
    missing = [k for k, on in isolation().items() if not on]
    if missing:
        say(f"note: sandbox without {', '.join(missing)} on this machine (run as root with util-linux "
            "`unshare` for both); recorded with each cell")
    # one schedule for all: the references run trusted, the submitted agents' cells sandboxed
    worker = partial(run_cell, limits=Limits(timeout=args.timeout, memory_gib=args.memory))
    new = execute(cells, store, jobs=args.jobs, progress=not args.quiet, worker=worker,
                  backend=getattr(args, "backend", "local"), address=getattr(args, "address", None))
    new = [r for r in new if r["cell"]["mode"] == "sandboxed"]
    for r in new:
        if r["status"] != "ok":
            say(f"FAILED {r['cell']['id']}: {r['reason'][:300]}")
    _, ranks = build_report(out, expected_hash=suite.hash)
    print(console_table(ranks))
    print_zoo_rank(args, out, suite, specs, names)
    failed = sum(r["status"] != "ok" for r in new)
    print(f"\nsubmitted {', '.join(specs)}: {len(new) - failed} cells ok, {failed} failed; "
          f"{out / 'LEADERBOARD.md'} written")
    if getattr(args, "bundle", None):
        from hbgym.leaderboards.bundle import make_bundle

        print(f"bundle {make_bundle(out, specs[0], args.bundle)} written")
    return 1 if failed else 0
