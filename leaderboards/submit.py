"""``submit``: score an untrusted agent, each cell in a separate, limited process.

The parent never imports the submitted code. For every cell it starts
``python -m hbgym.leaderboards.submit _cell IN OUT`` with an address-space limit (``RLIMIT_AS``, set in the
child before anything is imported) and kills its process group after a wall-time limit. The child runs
the cell with the ordinary runner (actions checked: shape, integer, range, NaN) and writes the record.
The parent validates the record (schema, cell id, suite hash, one finite row per seed); anything else
(an exception, a hang, a crash, an invalid action, a memory error, a malformed record) marks the cell
``failed`` with the reason, and the run continues. The suite's reference agents run trusted in-process.

Before anything runs, an existing results directory is verified (checksums, suite hash) and rejected
with the reason if it was edited, truncated or produced for another suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from hbgym.leaderboards.runner import Cell, execute, plan
from hbgym.leaderboards.specs import spec_name, zoo
from hbgym.leaderboards.store import ResultStore

__all__ = ["run_sandboxed", "submit", "validate_record"]


def _limit_memory(max_bytes: int) -> None:  # runs in the child between fork and exec
    import resource

    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _failed(cell: Cell, reason: str, wall: float) -> dict[str, Any]:
    rows = [{"agent": cell.agent_name, "agent_spec": cell.agent_spec, "role": cell.role, "oracle": False,
             "suite": cell.suite_name, "suite_hash": cell.suite_hash, "env_id": cell.setting["env_id"],
             "setting": cell.setting_key, "config_hash": cell.config_hash, "tags": list(cell.setting["tags"]),
             "device": cell.device, "dtype": cell.dtype or "float64", "seed": cell.seed_start + i,
             "status": "failed", "reason": reason, "cell_wall_time": wall}
            for i in range(cell.num_seeds)]
    return {"cell": {**asdict(cell), "id": cell.id}, "status": "failed", "reason": reason, "rows": rows,
            "wall_time": wall}


def validate_record(record: Any, cell: Cell) -> str | None:
    """``None`` if ``record`` is a well-formed result of ``cell``, else what is wrong."""
    if not isinstance(record, dict) or not {"cell", "status", "rows"} <= set(record):
        return "result is not a record with cell, status and rows"
    if record["cell"].get("id") != cell.id:
        return f"result is for cell {record['cell'].get('id')!r}, not {cell.id!r}"
    rows = record["rows"]
    if not isinstance(rows, list) or len(rows) != cell.num_seeds:
        return f"expected {cell.num_seeds} rows, got {len(rows) if isinstance(rows, list) else type(rows)}"
    want = list(range(cell.seed_start, cell.seed_start + cell.num_seeds))
    if [r.get("seed") for r in rows] != want:
        return "rows do not cover the cell's seeds in order"
    for r in rows:
        if r.get("suite_hash") != cell.suite_hash or r.get("agent") != cell.agent_name:
            return "a row has another suite hash or agent"
        if record["status"] == "ok":
            values = [r.get("final_regret"), *r.get("cum_regret", [])]
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                return "a row has a missing or non-finite regret"
    return None


def run_sandboxed(cell: Cell, timeout: float = 600.0, memory_gib: float = 8.0) -> dict[str, Any]:
    """Run ``cell`` in a child process with limits; always returns a record (``failed`` on any problem)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hbgym-submit-") as tmp:
        src, dst = Path(tmp) / "cell.json", Path(tmp) / "record.json"
        src.write_text(json.dumps(asdict(cell)))
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        proc = subprocess.Popen(
            [sys.executable, "-m", "hbgym.leaderboards.submit", "_cell", str(src), str(dst)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            preexec_fn=partial(_limit_memory, int(memory_gib * 2**30)),
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return _failed(cell, f"timeout: no result within {timeout:g} s (wall-time limit)", timeout)
        wall = time.perf_counter() - start
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        if not dst.exists():
            why = "killed by a signal" if proc.returncode < 0 else f"exit code {proc.returncode}"
            hint = " (memory limit?)" if any("MemoryError" in line for line in tail) else ""
            return _failed(cell, f"agent process died ({why}){hint}: {' | '.join(tail)[-500:]}", wall)
        try:
            record = json.loads(dst.read_text())
        except json.JSONDecodeError as exc:
            return _failed(cell, f"malformed result: {exc}", wall)
    problem = validate_record(record, cell)
    if problem is not None:
        return _failed(cell, f"invalid result: {problem}", wall)
    if record["status"] != "ok" and "MemoryError" in str(record.get("reason")):
        record["reason"] = f"memory limit of {memory_gib:g} GiB exceeded: {record['reason']}"
        for r in record["rows"]:
            r["reason"] = record["reason"]
    return record


def submit(args: argparse.Namespace) -> int:
    """The ``submit`` command (see ``hbgym-leaderboard submit --help``)."""
    from hbgym.leaderboards.cli import _expand, _print, _suite
    from hbgym.leaderboards.report import build_report, console_table

    suite = _suite(args)
    specs = _expand(args.agent, suite.agents)
    if getattr(args, "bundle", None) and len(specs) != 1:
        raise ValueError(f"--bundle packs one agent; got {len(specs)} agent specs: {specs[:5]}")
    out = Path(args.out or f"results/{suite.name}")
    store = ResultStore(out)
    if store.exists():
        store.verify(suite.hash)  # a tampered / other-suite directory is rejected before anything runs
    store.open(suite)
    ref_cells, _ = plan(suite, [], device=args.device, log=None)
    template = ref_cells[0] if ref_cells else None
    cells: list[Cell] = []
    for spec in specs:
        if spec in zoo():  # trusted names: only the settings they apply to (still sandboxed)
            cells += [c for c in plan(suite, [spec], device=args.device, with_references=False)[0]]
            continue
        name = spec_name(spec)
        for setting in suite.settings:
            for start, n in suite.chunks:
                base = template or Cell("", "", {}, "", "", 0, 0, suite.name, suite.hash, suite.kind,
                                        suite.log_points, args.device)
                cells.append(replace(base, agent_spec=spec, agent_name=name, setting=setting.spec(),
                                     setting_key=setting.key, config_hash=setting.config_hash,
                                     seed_start=start, num_seeds=n, role="agent"))
    execute(ref_cells, store, jobs=1, progress=not args.quiet)
    worker = partial(run_sandboxed, timeout=args.timeout, memory_gib=args.memory)
    new = execute(cells, store, jobs=1, progress=not args.quiet, worker=worker)
    for r in new:
        if r["status"] != "ok":
            _print(f"FAILED {r['cell']['id']}: {r['reason'][:300]}")
    _, ranks = build_report(out, expected_hash=suite.hash)
    print(console_table(ranks))
    failed = sum(r["status"] != "ok" for r in new)
    print(f"\nsubmitted {', '.join(specs)}: {len(new) - failed} cells ok, {failed} failed; "
          f"{out / 'LEADERBOARD.md'} written")
    if getattr(args, "bundle", None):
        from hbgym.leaderboards.bundle import make_bundle

        print(f"bundle {make_bundle(out, specs[0], args.bundle)} written")
    return 1 if failed else 0


def _child(src: str, dst: str) -> None:
    from hbgym.leaderboards.runner import run_cell
    from hbgym.leaderboards.store import atomic_write

    cell = Cell(**json.loads(Path(src).read_text()))
    record = run_cell(cell, catch=True)
    atomic_write(Path(dst), json.dumps(record).encode())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_cell":
        _child(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python -m hbgym.leaderboards.submit _cell IN.json OUT.json (internal; use `submit`)")
