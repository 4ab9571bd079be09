"""Command line: ``hbgym-leaderboard`` / ``python -m hbgym.leaderboards``.

python -m hbgym.leaderboards run --suite quick                     # the zoo on the quick suite, table + plots
python -m hbgym.leaderboards run --agent HierTS --agent my.py:make_agent --suite standard --jobs 2
python -m hbgym.leaderboards run --suite quick --backend ray --address 10.0.0.1:6379   # attach to a cluster
python -m hbgym.leaderboards report results/quick --export results.parquet
python -m hbgym.leaderboards repair results/quick                  # move damaged files aside, then rerun
python -m hbgym.leaderboards submit --agent examples/my_agent.py:make_agent --suite quick
python -m hbgym.leaderboards submit --agent my.py:make_agent --suite quick --bundle my.tar.gz
python -m hbgym.leaderboards verify my.tar.gz --cells 5                # re-run 5 random cells in the sandbox
python -m hbgym.leaderboards publish my.tar.gz --board board/          # verify, then merge into a board
python -m hbgym.leaderboards report results/quick --html site/         # static HTML site (or a board DIR)
python -m hbgym.leaderboards list
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from hbgym.leaderboards.console import (
    agent_names,
    expand,
    print_zoo_rank,
    report_skipped,
    say,
    suite_from_args,
)
from hbgym.leaderboards.suites import SUITES, get_suite

__all__ = ["main", "build_parser"]

DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))

SPEC_HELP = (
    "agent SPEC: a zoo name (e.g. HierTS), 'all' (every zoo agent of the suite), 'package.module:factory', "
    "'path/to/file.py:factory' or 'sb3:ALGO:path/to/model.zip'; repeat for several agents"
)


def _add_common(p: argparse.ArgumentParser, agent_required: bool) -> None:
    p.add_argument(
        "--agent",
        action="append",
        required=agent_required,
        metavar="SPEC",
        help=SPEC_HELP + ("" if agent_required else " (default: all)"),
    )
    p.add_argument("--suite", default="quick", help=f"suite name: {', '.join(SUITES)} (default: quick)")
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="override the suite's number of seeds (changes the suite hash)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="results directory (default: results/<suite>)")
    p.add_argument("--device", default="cpu", help="torch device of batched agents: cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true",
                   help="list every (agent, setting) pair skipped because the agent does not fit the env")
    p.add_argument("--name", action="append", default=None, metavar="NAME",
                   help="leaderboard name of each --agent (one per --agent, in order), e.g. to keep two "
                   "variants of one file apart (default: <file stem>.<factory>)")
    p.add_argument("--compare", default=None, metavar="DIR",
                   help="rank third-party agents within the zoo results in DIR (default: the zoo's results "
                   "for the suite, computed once and cached in $HBGYM_CACHE_DIR or ~/.cache/hbgym/zoo)")
    p.add_argument("--no-compare", action="store_true", help="do not rank third-party agents within the zoo")
    p.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"parallel workers (default: min(4, CPUs) = {DEFAULT_JOBS})",
    )


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray", "dask"),
        help="local: joblib loky processes; ray / dask: run cells on a Ray / Dask cluster (with --address, "
        "or RAY_ADDRESS / DASK_SCHEDULER_ADDRESS, attach to a running one; else start a local one "
        "of --jobs workers); results stream back to this process",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="cluster to attach to: a Ray address (127.0.0.1:6379, ray://host:10001) or a Dask scheduler "
        "(tcp://host:8786); default: RAY_ADDRESS / DASK_SCHEDULER_ADDRESS",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hbgym-leaderboard",
        description="Score agents on hbgym's versioned suites: normalised regret (uniform = 0, oracle = 1), "
        "IQM with bootstrap CIs, regret plots, resumable runs, sandboxed submissions.",
        epilog="Run `hbgym-leaderboard COMMAND --help` for each command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run agents on a suite (resumes an interrupted run), then report",
        description="Run agents (plus the suite's uniform and oracle reference agents) on "
        "a suite; results go to DIR (append-only; rerun the same command to "
        "resume), then LEADERBOARD.md and PNGs are written there and the table "
        "is printed.",
    )
    _add_common(run, agent_required=False)
    _add_backend(run)
    run.add_argument("--no-report", action="store_true", help="only run; do not write the report")
    run.add_argument("--only", action="append", metavar="TAG",
                     help="run only the settings with this tag (repeatable; the suite and its hash are "
                     "unchanged, so a later run without --only completes the rest)")

    rp = sub.add_parser(
        "reproduce",
        help="the seed papers' reported orderings beside ours (paper suites)",
        description="Check every paper claim of hbgym.leaderboards.reproduce.CLAIMS against the results "
        "in DIR... (paired seeds, 95% CIs) and write REPRODUCE.md.",
    )
    rp.add_argument("dirs", nargs="+", metavar="DIR",
                    help="results directories of `run --suite paper[-offline]`")
    rp.add_argument("--out", default=None, metavar="OUT",
                    help="where to write REPRODUCE.md (default: first DIR)")

    rep = sub.add_parser(
        "report",
        help="verify a results directory and write LEADERBOARD.md + PNGs",
        description="Verify DIR (checksums, suite hash) and write LEADERBOARD.md and one "
        "PNG of regret curves per env setting; rejects tampered directories.",
    )
    rep.add_argument("dir", metavar="DIR", help="results directory written by `run` or `submit`")
    rep.add_argument("--out", default=None, metavar="OUT", help="where to write the report (default: DIR)")
    rep.add_argument("--suite", default=None, help="also require that DIR was produced for this suite's hash")
    rep.add_argument("--html", default=None, metavar="SITE",
                     help="also write a self-contained static HTML site to SITE (DIR may also be a board "
                     "written by `publish`)")
    rep.add_argument("--export", default=None, metavar="FILE",
                     help="also write every row to FILE: .csv (standard library) or .parquet (needs pyarrow)")

    rpr = sub.add_parser(
        "repair",
        help="move damaged files of a results directory aside so that `run` redoes those cells",
        description="Check DIR in one pass and move every damaged file (edited, truncated, unlisted, "
        "another suite's rows) and the entries of missing files out of the index into "
        "DIR/quarantine/<time>/ (nothing is deleted); rerunning the same `run` command then "
        "redoes exactly those cells.",
    )
    rpr.add_argument("dir", metavar="DIR", help="results directory written by `run` or `submit`")

    sm = sub.add_parser(
        "submit",
        help="run an untrusted agent sandboxed (separate least-privileged process, limits)",
        description="Run an untrusted agent on a suite: the runner keeps the env and writes the results; "
        "the agent runs in a separate process (empty temp dir, minimal environment, uid nobody and "
        "its own PID and network namespaces when run as root, wall-time and memory limits) that sees "
        "only the "
        "public model, the spaces, its observations and its own rewards. A crash, hang, invalid "
        "action/NaN, malformed message or limit marks that cell failed with the reason and the run "
        "continues. The results directory is verified first (a tampered one is rejected).",
    )
    _add_common(sm, agent_required=True)
    sm.add_argument("--timeout", type=float, default=600.0, metavar="S", help="wall-time limit per cell (s)")
    sm.add_argument(
        "--memory", type=float, default=8.0, metavar="GiB", help="address-space limit per cell (GiB)"
    )
    _add_backend(sm)
    sm.add_argument("--bundle", default=None, metavar="OUT",
                    help="also pack the results and the agent's code into a submission bundle "
                    "(OUT.tar.gz, or a new directory); needs exactly one --agent")

    from hbgym.leaderboards.site import add_bundle_commands  # verify, publish

    add_bundle_commands(sub)

    sub.add_parser("list", help="list suites, settings and zoo agents", description="List suites and agents.")

    try:
        from hbgym.leaderboards.rl import add_train_arguments
    except ImportError:
        add_train_arguments = None
    if add_train_arguments is not None:
        tr = sub.add_parser("train-rl",
                            help="train an SB3 baseline on training seeds (see hbgym.leaderboards.rl)")
        add_train_arguments(tr)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from hbgym.leaderboards.report import build_report, console_table
    from hbgym.leaderboards.runner import execute, plan
    from hbgym.leaderboards.store import ResultStore

    suite = suite_from_args(args)
    specs = expand(args.agent, suite.agents)
    names = agent_names(specs, args.name)
    out = Path(args.out or f"results/{suite.name}")
    start = time.perf_counter()
    cells, skipped = plan(suite, specs, device=args.device, log=None, names=names)  # fails before any mkdir
    if args.only:
        unknown = sorted(set(args.only) - {t for s in suite.settings for t in s.tags})
        if unknown:
            raise ValueError(f"--only {unknown}: no setting of suite {suite.name} has that tag")
        keep = {s.key for s in suite.settings if set(s.tags) & set(args.only)}
        cells = [c for c in cells if c.setting_key in keep]
    store = ResultStore(out)
    store.open(suite)
    report_skipped(skipped, verbose=args.verbose and not args.quiet)
    done = store.completed()
    say(
        f"suite {suite.name} v{suite.version} ({suite.hash[:12]}): {len(cells)} cells, "
        f"{sum(c.id in done for c in cells)} already done, results in {out}"
    )
    new = execute(cells, store, jobs=args.jobs, backend=args.backend, progress=not args.quiet,
                  address=args.address)
    failed = [r for r in new if r["status"] != "ok"]
    for r in failed:
        say(f"FAILED {r['cell']['id']}: {r['reason'][:300]}")
    if args.no_report:
        return 0
    _, ranks = build_report(out, expected_hash=suite.hash)
    print(console_table(ranks))
    print_zoo_rank(args, out, suite, specs, names)
    print(
        f"\n{out / 'LEADERBOARD.md'} (and regret PNGs for online suites) written "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from hbgym.leaderboards.report import build_report, console_table

    if args.html and (Path(args.dir) / "history.jsonl").exists():  # a board written by `publish`
        from hbgym.leaderboards.site import build_board_site

        print(f"{build_board_site(args.dir, args.html) / 'index.html'} written")
        return 0
    expected = get_suite(args.suite).hash if args.suite else None
    if args.export and Path(args.export).suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"--export {args.export!r}: use a .csv or .parquet file name")
    text, ranks = build_report(args.dir, args.out, expected_hash=expected)
    print(console_table(ranks))
    print(f"\n{Path(args.out or args.dir) / 'LEADERBOARD.md'} written")
    if "## Incomplete" in text:
        say(f"warning: {args.dir} is incomplete (some agents lack seeds; see '## Incomplete' in "
            "LEADERBOARD.md); "
            "rerun the same `run` command to complete it")
    failed = sum(e["failed"] for e in ranks)
    if failed:
        say(f"warning: {failed} failed cells (they score 0; see '## Failed cells' in LEADERBOARD.md)")
    if args.html:
        from hbgym.leaderboards.site import build_results_site

        print(f"{build_results_site(args.dir, args.html, expected_hash=expected) / 'index.html'} written")
    if args.export:
        from hbgym.leaderboards.store import ResultStore

        n = ResultStore(args.dir).export(args.export)
        print(f"{n} rows written to {args.export}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from hbgym.leaderboards.reproduce import write_report

    command = "python -m hbgym.leaderboards reproduce " + " ".join(args.dirs)
    command += f" --out {args.out}" if args.out else ""
    path, verdicts = write_report(args.dirs, args.out, command=command)
    counts = {s: sum(v.status == s for v in verdicts) for s in ("held", "not held", "not run")}
    print(f"{path} written: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    from hbgym.leaderboards.store import ResultStore

    qdir, damage = ResultStore(args.dir).repair()
    if qdir is None:
        print(f"{args.dir}: no damaged files; nothing to repair")
        return 0
    for d in damage:
        print(f"{'moved aside' if (qdir / d.path).exists() else 'dropped from the index'}: {d}")
    print(f"{len(damage)} damaged file(s) moved into {qdir} (with the previous index and REASONS.txt); "
          "rerun the same `run` command to redo those cells")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from hbgym.leaderboards.submit import submit

    return submit(args)


def cmd_list(args: argparse.Namespace) -> int:
    from hbgym.leaderboards.specs import zoo

    for suite in SUITES.values():
        print(
            f"suite {suite.name} v{suite.version} [{suite.kind}] hash {suite.hash[:12]}: "
            f"{suite.seeds_text()}, {suite.description}"
        )
        for s in suite.settings:
            print(
                f"    {s.key:32s} horizon={str(s.horizon):<5s} {dict(s.kwargs)} tags={list(s.tags)} "
                f"oracle={s.oracle}"
            )
    print("zoo agents:")
    for name, cls in zoo().items():
        flags = [
            f for f in ("oracle", "offline") if getattr(cls, f, False)
        ]
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"    {name:16s} {'(' + ', '.join(flags) + ')' if flags else '':20s} {doc[:90]}")
    print("other specs: package.module:factory, path/to/file.py:factory, sb3:ALGO:path/to/model.zip")
    return 0


def main(argv: list[str] | None = None) -> int:
    from hbgym.leaderboards.site import cmd_publish, cmd_verify

    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "report": cmd_report, "repair": cmd_repair, "submit": cmd_submit,
                "list": cmd_list, "reproduce": cmd_reproduce,
                "verify": cmd_verify, "publish": cmd_publish}  # the last two from hbgym.leaderboards.site
    try:
        if args.command == "train-rl":
            from hbgym.leaderboards.rl import train_from_args

            train_from_args(args)
            return 0
        code = handlers[args.command](args)
        sys.stdout.flush()  # a pipe closed by the reader (`| head`) fails here, not at exit
        return code
    except ValueError as err:  # bad input and tampered directories: one clear line, exit code 2
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:  # e.g. a real-data env whose data is missing (hbgym.datasets)
        lines = str(err).strip().splitlines() or [repr(err)]
        if getattr(args, "verbose", False) or len(lines) == 1:
            print(f"error: {' '.join(line.strip() for line in lines if line.strip())}", file=sys.stderr)
        else:
            print(f"error: {lines[0]} (--verbose lists every way to provide it)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head` closed stdout: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
