"""The one schema of a stored cell record and its rows (used by the runner, submit and validation).

A record is ``{"cell": {..., "id"}, "status": "ok" | "failed", "reason", "rows": [...], "wall_time",
"host", "pid"}``; each row is :func:`base_row` (who, what, where, provenance) plus the seed's results.
Provenance: ``mode`` is ``"trusted"`` (``run``: the agent ran in the runner's process) or
``"sandboxed"`` (``submit``: the agent ran in a separate least-privileged process and never held the
env); ``agent_code_hash`` is the sha256 of the agent's source and factory name
(:func:`hbgym.leaderboards.specs.code_hash`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

__all__ = ["base_row", "make_record", "validate_record", "agent_label", "MODES"]

MODES = ("trusted", "sandboxed")


def base_row(cell: Any, oracle: bool) -> dict[str, Any]:
    """The fields every row of ``cell`` (a :class:`~hbgym.leaderboards.runner.Cell`) carries."""
    return {
        "agent": cell.agent_name, "agent_spec": cell.agent_spec, "agent_kind": cell.agent_kind,
        "agent_code_hash": cell.code_hash, "mode": cell.mode, "role": cell.role, "oracle": oracle,
        "suite": cell.suite_name, "suite_hash": cell.suite_hash, "env_id": cell.setting["env_id"],
        "setting": cell.setting_key, "config_hash": cell.config_hash, "tags": list(cell.setting["tags"]),
        "device": cell.device, "dtype": cell.dtype or "float64", "cell": cell.id,
    }


def make_record(cell: Any, status: str, reason: str | None, seed_rows: list[dict[str, Any]], wall: float,
                oracle: bool, env_info: Mapping[str, Any], pid: int, **extra: Any) -> dict[str, Any]:
    """The stored record of ``cell``; ``seed_rows``: one dict per seed (``{"seed"}`` alone when failed).

    ``extra`` (e.g. ``sandbox``: how the child was isolated) is kept at the record level.
    """
    base = base_row(cell, oracle)
    rows = [{**base, **r, "status": status, "reason": reason, "cell_wall_time": wall,
             "git_commit": env_info.get("git_commit"), "versions": env_info.get("versions")}
            for r in seed_rows]
    return {"cell": {**asdict(cell), "id": cell.id}, "status": status, "reason": reason, "rows": rows,
            "wall_time": wall, "host": env_info.get("host"), "pid": pid, **extra}


def validate_record(record: Any, cell: Any) -> str | None:
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
    base = base_row(cell, False)
    base.pop("oracle")
    for r in rows:
        wrong = sorted(k for k, v in base.items() if r.get(k) != v)
        if wrong:
            return f"a row disagrees with its cell on {wrong}"
        if record["status"] == "ok":
            values = [r.get("final_regret"), *r.get("cum_regret", [])]
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                return "a row has a missing or non-finite regret"
    return None


def agent_label(row: Mapping[str, Any], several_versions: bool) -> str:
    """The name a row's agent is ranked under.

    Third-party agents run trusted (``run``) are marked ``(trusted)``; when one name was scored with
    several code versions, each keeps its own entry ``name@<hash12>``.
    """
    name, mode = str(row["agent"]), row.get("mode", "trusted")
    if row.get("role", "agent") != "agent":
        return name
    if row.get("agent_kind", "zoo") == "zoo":
        return name if mode == "trusted" else f"{name} (sandboxed)"
    if several_versions:
        name += f"@{str(row.get('agent_code_hash'))[:12]}"
    return name + (" (trusted)" if mode == "trusted" else "")
