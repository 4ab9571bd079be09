"""Submission bundles: pack, check, verify by re-running, and publish into a leaderboard directory.

A **bundle** is a directory or a ``.tar.gz`` of one::

    bundle.json       {"format", "agent": {"spec", "name", "kind", "entry", "code_hash"},
                       "suite": {"name", "version", "hash", "spec"}, "environment": {versions, machine}}
    results/...       the results directory of the submission (manifest/index + cell files, as the store
                      wrote them; reports and plots left out)
    agent/...         the agent's source: the ``.py`` file, the top-level package tree of a
                      ``pkg.module:factory`` spec, or the SB3 zip (nothing for a zoo agent)
    CHECKSUMS.json    {member path: sha256} of every other member

A bundle is hostile input. :func:`open_bundle` extracts into a fresh temporary directory member by
member: only regular files and directories, no absolute paths, no ``..``, no links or devices, at most
:data:`MAX_MEMBERS` members and :data:`MAX_BUNDLE_BYTES` bytes uncompressed; then every member must
match ``CHECKSUMS.json`` and nothing unlisted may be present.

Checksums only catch accidents: a forger recomputes them. Trust comes from :func:`verify_bundle`, which
checks that the suite is a registered version, that the agent's code hashes to the bundle's code hash,
that every cell is a cell of the registered suite (setting, seed chunk and reference agents are rebuilt
from the suite, never taken from the bundle), and re-runs ``K`` randomly chosen cells of the agent
plus ``max(1, K // 5)`` of the reference agents (uniform, oracle) in the sandbox with the bundled
source: every compared row field must be
bit-identical when the device, dtype and the numpy/torch versions match, else within
``rtol=1e-6, atol=1e-9`` (:data:`TOLERANCE`). The first differing cell, field and values are the
rejection reason. A forgery of ``f`` of the agent's ``N`` cells escapes ``K`` sampled cells with
probability ``C(N - f, K) / C(N, K)`` (printed); ``--cells all`` re-runs everything.

:func:`publish` merges a verified bundle into a board directory (meant to live in git)::

    BOARD/history.jsonl                                   append-only, one line per publication
    BOARD/entries/<suite>-<hash12>/<agent>-<code12>/      the extracted bundle + verification.json

Publishing the same bundle again is a no-op; a newer version of an agent (same name, another code hash)
supersedes the older one in the table (:func:`board_collections`) while both stay in the history.

Every call into the store, the runner and the sandbox is in the section "adapters" below.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import random
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hbgym.leaderboards.suites import Suite, canonical_json, get_suite

from hbgym.datasets.store import file_digest
from hbgym.fileio import atomic_write_stream

__all__ = [
    "BundleError",
    "Verification",
    "make_bundle",
    "open_bundle",
    "read_bundle",
    "verify_bundle",
    "publish",
    "board_collections",
    "board_lock",
    "code_hash",
    "compare_rows",
    "TOLERANCE",
]

FORMAT = 1
MAX_MEMBERS = 20_000
MAX_BUNDLE_BYTES = 512 * 2**20  # uncompressed
MAX_SOURCE_BYTES = 16 * 2**20  # agent source (file, package tree or SB3 zip)
TOLERANCE = {"rtol": 1e-6, "atol": 1e-9}
REPORT_SUFFIXES = (".md", ".png", ".svg", ".html", ".css", ".js")
#: Row fields compared by verification (timings, hosts, pids and versions legitimately differ).
COMPARED = (
    "agent",
    "role",
    "setting",
    "config_hash",
    "suite_hash",
    "seed",
    "status",
    "steps",
    "cum_regret",
    "final_regret",
    "score",
    "uniform_suboptimality",
)


class BundleError(ValueError):
    """A bundle that is malformed, unsafe, forged or does not reproduce (the message says why)."""


# --------------------------------------------------------------------------- adapters
# The only calls into the store, runner and sandbox (their interfaces are changing; adapt them here).
# Callers may pass another ``sandbox`` (tests); this module never imports ``submit`` or ``cli``.

#: ``sandbox(cell, timeout=seconds) -> record``; default :func:`_run_cell_limited`
Sandbox = Callable[..., dict[str, Any]]


def _run_cell_limited(cell: Any, timeout: float) -> dict[str, Any]:
    """The runner's own cell execution: sandboxed cells in a limited child, trusted ones in-process."""
    from hbgym.leaderboards.runner import run_cell
    from hbgym.leaderboards.sandbox import Limits

    return run_cell(cell, limits=Limits(timeout=timeout))


def _record_code_hash(spec: str) -> str | None:
    """The code hash the runner writes into rows (``agent_code_hash``) for ``spec``, if it can be computed."""
    from hbgym.leaderboards.specs import code_hash as spec_code_hash

    try:
        return spec_code_hash(spec)
    except (ValueError, OSError):
        return None


def _load_results(results_dir: Path, expected_hash: str | None = None) -> tuple[Suite, list[dict[str, Any]]]:
    """``(suite, records)`` of a verified results directory (raises ``ValueError`` with the reason)."""
    from hbgym.leaderboards.store import ResultStore

    store = ResultStore(results_dir)
    suite = store.verify(expected_hash)
    return suite, store.records()


def _rerun(cell: dict[str, Any], agent_spec: str, timeout: float, sandbox: Sandbox) -> dict[str, Any]:
    """Re-run the stored cell ``cell`` (its ``record["cell"]``) with ``agent_spec``: the submitted agent
    sandboxed, the suite's reference agents (zoo code) trusted."""
    from hbgym.leaderboards.runner import Cell
    from hbgym.leaderboards.specs import spec_kind

    fields = {k: v for k, v in cell.items() if k in Cell.__dataclass_fields__}
    fields["agent_spec"] = agent_spec
    if "mode" in Cell.__dataclass_fields__:
        agent = cell.get("role") == "agent"
        fields["mode"] = "sandboxed" if agent else "trusted"
        fields["agent_kind"] = spec_kind(agent_spec) if agent else "zoo"
    return sandbox(Cell(**fields), timeout=timeout)


# --------------------------------------------------------------------------- hashing and machine info


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """``(posix relative path, path)`` of every regular file under ``root``, sorted."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path.relative_to(root).as_posix(), path


def code_hash(root: Path) -> str:
    """SHA-256 over the sorted ``(relative path, sha256)`` pairs of the files under ``root`` (a tree hash)."""
    return hashlib.sha256(
        canonical_json([[rel, file_digest(p)] for rel, p in _files(root)]).encode()
    ).hexdigest()


def machine_info() -> dict[str, Any]:
    """Versions of hbgym, python, numpy, torch and the machine (CPU, cores, GPU if torch sees one)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for pkg in ("hbgym", "numpy", "torch", "scipy", "gymnasium", "stable-baselines3"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    gpu = None
    if "torch" in versions:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    return {
        "versions": versions,
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "gpu": gpu,
        },
    }


# --------------------------------------------------------------------------- making a bundle


def _agent_source(spec: str, dest: Path) -> dict[str, Any]:
    """Copy the agent's code for ``spec`` into ``dest``; returns the ``agent`` entry of ``bundle.json``."""
    from hbgym.leaderboards.specs import spec_name, zoo

    name = spec_name(spec)
    if spec in zoo():
        return {"spec": spec, "name": name, "kind": "zoo", "entry": None}
    dest.mkdir(parents=True)
    if spec.startswith("sb3:"):
        _, algo, where = spec.split(":", 2)
        src = Path(where)
        if not src.is_file():
            raise BundleError(f"agent spec {spec!r}: model file {where!r} does not exist")
        shutil.copy2(src, dest / src.name)
        return {"spec": spec, "name": name, "kind": "sb3", "entry": f"sb3:{algo}:{src.name}"}
    where, _, attr = spec.rpartition(":")
    if where.endswith(".py") or "/" in where or os.sep in where:
        src = Path(where)
        if not src.is_file():
            raise BundleError(f"agent spec {spec!r}: file {where!r} does not exist")
        shutil.copy2(src, dest / src.name)
        return {"spec": spec, "name": name, "kind": "file", "entry": f"{src.name}:{attr}"}
    top = where.split(".")[0]
    found = importlib.util.find_spec(top)  # a top-level name: located, not imported
    if found is None or found.origin is None:
        raise BundleError(f"agent spec {spec!r}: cannot locate module {top!r}")
    origin = Path(found.origin)
    if origin.name == "__init__.py":
        shutil.copytree(origin.parent, dest / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(origin, dest / origin.name)
    return {"spec": spec, "name": name, "kind": "package", "entry": f"{where}:{attr}"}


def _write_checksums(root: Path) -> None:
    sums = {rel: file_digest(p) for rel, p in _files(root) if rel != "CHECKSUMS.json"}
    (root / "CHECKSUMS.json").write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")


def make_bundle(results_dir: str | os.PathLike, agent_spec: str, out: str | os.PathLike) -> Path:
    """Pack ``results_dir`` (verified first) and the code of ``agent_spec`` into ``out``.

    ``out`` ending in ``.tar.gz`` / ``.tgz`` is written as an archive, anything else as a new directory.

    Raises:
        BundleError: the results do not verify, hold no cell of the agent, the source is too large, or
            ``out`` exists.
    """
    from hbgym.leaderboards.specs import spec_name

    out = Path(out)
    if out.exists():
        raise BundleError(f"{out} exists; choose a new bundle path")
    suite, records = _load_results(Path(results_dir))
    name = spec_name(agent_spec)
    if not any(r["cell"].get("agent_name") == name for r in records):
        raise BundleError(f"{results_dir} holds no cell of agent {name!r} (spec {agent_spec!r})")
    with tempfile.TemporaryDirectory(prefix="hbgym-bundle-") as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        shutil.copytree(
            results_dir,
            root / "results",
            ignore=shutil.ignore_patterns(*(f"*{s}" for s in REPORT_SUFFIXES), ".*.tmp"),
        )
        agent = _agent_source(agent_spec, root / "agent")
        if agent["kind"] != "zoo":
            size = sum(p.stat().st_size for _, p in _files(root / "agent"))
            if size > MAX_SOURCE_BYTES:
                raise BundleError(
                    f"agent source of {agent_spec!r} is {size} bytes, over the "
                    f"{MAX_SOURCE_BYTES} byte cap; bundle only the agent's package"
                )
            agent["code_hash"] = code_hash(root / "agent")
            agent["record_code_hash"] = _record_code_hash(agent_spec)
        else:
            agent["code_hash"] = None
        meta = {
            "format": FORMAT,
            "agent": agent,
            "suite": {"name": suite.name, "version": suite.version, "hash": suite.hash, "spec": suite.spec()},
            "environment": machine_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (root / "bundle.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        _write_checksums(root)
        if out.name.endswith((".tar.gz", ".tgz")):

            def write_tar(stream: Any) -> None:
                with tarfile.open(fileobj=stream, mode="w:gz") as tar:
                    for rel, path in _files(root):
                        tar.add(path, arcname=rel, recursive=False)

            atomic_write_stream(out, write_tar)
        else:
            shutil.copytree(root, out)
    return out


# --------------------------------------------------------------------------- reading a bundle safely


def _safe_member(name: str) -> str:
    rel = Path(name)
    if name.startswith(("/", "\\")) or rel.is_absolute() or ".." in rel.parts or ":" in name or "\\" in name:
        raise BundleError(f"unsafe member path {name!r} in bundle (absolute or '..')")
    return rel.as_posix()


def _extract(archive: Path, dest: Path) -> None:
    total = 0
    try:
        tar = tarfile.open(archive, mode="r:gz")  # noqa: SIM115 - closed by the `with tar` below
    except (tarfile.TarError, OSError, EOFError) as err:
        raise BundleError(f"{archive}: not a readable .tar.gz ({err})") from err
    with tar:
        for i, member in enumerate(tar):
            if i >= MAX_MEMBERS:
                raise BundleError(f"{archive}: more than {MAX_MEMBERS} members")
            rel = _safe_member(member.name)
            if member.isdir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            if not member.isreg():
                raise BundleError(
                    f"{archive}: member {member.name!r} is a link or special file (not allowed)"
                )
            total += member.size
            if total > MAX_BUNDLE_BYTES:
                raise BundleError(f"{archive}: more than {MAX_BUNDLE_BYTES} bytes uncompressed")
            target = dest / rel
            if target.exists():
                raise BundleError(f"{archive}: member {member.name!r} appears twice")
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                raise BundleError(f"{archive}: member {member.name!r} cannot be read")
            with src, open(target, "wb") as fh:
                remaining = member.size
                while remaining:
                    block = src.read(min(remaining, 1 << 20))
                    if not block:
                        raise BundleError(f"{archive}: member {member.name!r} is truncated")
                    fh.write(block)
                    remaining -= len(block)


def _copy_dir(src: Path, dest: Path) -> None:
    total, count = 0, 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise BundleError(f"{src}: member {rel!r} is a link or special file (not allowed)")
        count += 1
        if count > MAX_MEMBERS:
            raise BundleError(f"{src}: more than {MAX_MEMBERS} members")
        if path.is_dir():
            (dest / rel).mkdir(parents=True, exist_ok=True)
            continue
        total += path.stat().st_size
        if total > MAX_BUNDLE_BYTES:
            raise BundleError(f"{src}: more than {MAX_BUNDLE_BYTES} bytes")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)


def read_bundle(root: Path) -> dict[str, Any]:
    """Check the checksums of an extracted bundle at ``root``; returns its ``bundle.json``."""
    try:
        sums = json.loads((root / "CHECKSUMS.json").read_text())
        meta = json.loads((root / "bundle.json").read_text())
    except FileNotFoundError as err:
        raise BundleError(f"not a bundle: {Path(err.filename).name} is missing") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"not a bundle: invalid JSON ({err})") from err
    if not isinstance(sums, dict) or not isinstance(meta, dict):
        raise BundleError("not a bundle: CHECKSUMS.json and bundle.json must be JSON objects")
    present = {rel for rel, _ in _files(root)} - {"CHECKSUMS.json"}
    if present - set(sums):
        raise BundleError(f"members not in CHECKSUMS.json: {sorted(present - set(sums))[:5]}")
    if set(sums) - present:
        raise BundleError(f"members listed in CHECKSUMS.json are missing: {sorted(set(sums) - present)[:5]}")
    for rel, digest in sorted(sums.items()):
        if file_digest(root / _safe_member(rel)) != digest:
            raise BundleError(f"member {rel} does not match its checksum (corrupted or edited)")
    if meta.get("format") != FORMAT:
        raise BundleError(f"bundle format {meta.get('format')!r} is not supported (expected {FORMAT})")
    for key in ("agent", "suite", "environment"):
        if not isinstance(meta.get(key), dict):
            raise BundleError(f"bundle.json lacks {key!r}")
    return meta


@contextmanager
def open_bundle(path: str | os.PathLike) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Safely extract (or copy) the bundle at ``path`` into a temporary directory and check its checksums.

    Yields:
        ``(root, bundle.json)``; the directory is removed on exit.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"bundle {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="hbgym-open-") as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        if path.is_dir():
            _copy_dir(path, root)
        else:
            _extract(path, root)
        yield root, read_bundle(root)


# --------------------------------------------------------------------------- verification


@dataclass
class Verification:
    """What :func:`verify_bundle` found (``ok`` False means rejected, ``reason`` says why)."""

    ok: bool
    reason: str
    agent: str = ""
    code_hash: str | None = None
    suite: str = ""
    suite_hash: str = ""
    cells_checked: list[str] = field(default_factory=list)
    cells_total: int = 0
    exact: bool = True
    escape_probability: float | None = None
    seconds: float = 0.0
    bundle_sha256: str = ""  # sha256 of CHECKSUMS.json: publish checks it is the very bundle verified

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _close(a: Any, b: Any, exact: bool) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, exact) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if exact:
            return a == b
        return math.isclose(a, b, rel_tol=TOLERANCE["rtol"], abs_tol=TOLERANCE["atol"])
    return a == b


def compare_rows(claimed: list[dict[str, Any]], rerun: list[dict[str, Any]], exact: bool) -> str | None:
    """``None`` if the re-run rows reproduce the claimed ones on :data:`COMPARED`, else the difference."""
    if len(claimed) != len(rerun):
        return f"{len(claimed)} rows claimed, {len(rerun)} re-run"
    for a, b in zip(claimed, rerun):
        for key in COMPARED:
            if (key in a or key in b) and not _close(a.get(key), b.get(key), exact):
                claimed_v, rerun_v = str(a.get(key))[:200], str(b.get(key))[:200]
                return f"seed {a.get('seed')}: {key} claimed {claimed_v}, re-run gives {rerun_v}"
    return None


def _escape_probability(total: int, checked: int, forged: int = 1) -> float:
    """Chance that ``forged`` forged cells of ``total`` all escape ``checked`` uniformly sampled cells."""
    if forged > total - checked:
        return 0.0
    return math.comb(total - forged, checked) / math.comb(total, checked)


def _agent_spec_in(root: Path, agent: dict[str, Any]) -> tuple[str, str | None]:
    """The spec that runs the bundled source at ``root`` and the ``PYTHONPATH`` entry it needs."""
    kind, entry = agent.get("kind"), agent.get("entry")
    if kind == "zoo":
        from hbgym.leaderboards.specs import zoo

        if agent.get("spec") not in zoo():
            raise BundleError(f"bundle.json: agent kind 'zoo' but {agent.get('spec')!r} is not a zoo agent")
        return agent["spec"], None
    if not isinstance(entry, str) or ":" not in entry:
        raise BundleError(f"bundle.json: agent entry {entry!r} is not 'file.py:factory' / 'module:factory'")
    if kind == "sb3":
        _, algo, where = entry.split(":", 2)
        return f"sb3:{algo}:{root / 'agent' / _safe_member(where)}", None
    where, _, attr = entry.rpartition(":")
    if kind == "file":
        return f"{root / 'agent' / _safe_member(where)}:{attr}", None
    if kind == "package":
        return entry, str(root / "agent")
    raise BundleError(f"bundle.json: unknown agent kind {kind!r} (file, package, sb3 or zoo)")


def _cell_to_rerun(cell: dict[str, Any], suite: Suite, agent_name: str, spec: str) -> dict[str, Any]:
    """The stored ``cell`` rebuilt from the registered ``suite`` (never trusting the bundle's copy of the
    setting, seeds or reference agents), to be re-run with ``spec`` (the agent) or the suite's reference."""
    key, cid = cell.get("setting_key"), cell.get("id")
    try:
        setting = suite.setting(str(key))
    except ValueError as err:
        raise BundleError(f"cell {cid}: setting {key!r} is not in the suite") from err
    if cell.get("setting") != setting.spec():
        raise BundleError(f"cell {cid}: its setting differs from the suite's {key} (edited env kwargs?)")
    if (cell.get("seed_start"), cell.get("num_seeds")) not in suite.chunks_of(setting):
        raise BundleError(
            f"cell {cid}: seeds {cell.get('seed_start')}+{cell.get('num_seeds')} are not a "
            f"chunk of the suite on {key} {suite.chunks_of(setting)[:3]}..."
        )
    role = cell.get("role")
    if role in ("uniform", "oracle"):
        want = setting.uniform if role == "uniform" else setting.oracle
        if cell.get("agent_name") != want or cell.get("agent_spec") != want:
            raise BundleError(
                f"cell {cid}: a {role} reference cell must be the suite's {want!r}, "
                f"got {cell.get('agent_spec')!r}"
            )
        spec = want
    elif cell.get("agent_name") != agent_name:
        raise BundleError(f"cell {cid} is not a cell of the bundle's agent {agent_name!r}")
    return {
        **cell,
        "agent_spec": spec,
        "setting": setting.spec(),
        "config_hash": setting.config_hash,
        "suite_name": suite.name,
        "suite_hash": suite.hash,
        "kind": suite.kind,
        "log_points": suite.log_points,
    }


def verify_bundle(
    path: str | os.PathLike,
    sandbox: Sandbox | None = None,
    cells: int | None = 5,
    seed: int = 0,
    timeout: float = 600.0,
    suite_lookup: Callable[[str], Suite] = get_suite,
    log: Callable[[str], None] | None = None,
) -> Verification:
    """Check a bundle and re-run ``cells`` randomly chosen cells of it (``None``: every cell).

    Args:
        sandbox: runs one cell (default: the runner's ``run_cell`` with sandbox limits).
        suite_lookup: name -> registered suite (tests pass their own); the bundle's suite must be a
            registered version (``with_seeds`` of the bundle's seed count).

    Returns:
        A :class:`Verification`; ``ok`` False with the reason for a forged or non-reproducing bundle.
    """
    start = time.perf_counter()
    try:
        with open_bundle(path) as (root, meta):
            result = _verify_open(
                root, meta, cells, seed, timeout, suite_lookup, log, sandbox or _run_cell_limited
            )
    except BundleError as err:
        result = Verification(False, str(err))
    except ValueError as err:  # results directory checks (TamperedResultsError and friends)
        result = Verification(False, f"results do not verify: {err}")
    result.seconds = time.perf_counter() - start
    return result


def _verify_open(
    root: Path,
    meta: dict[str, Any],
    cells: int | None,
    seed: int,
    timeout: float,
    suite_lookup: Callable[[str], Suite],
    log: Callable[[str], None] | None,
    sandbox: Sandbox,
) -> Verification:
    agent, claimed_suite = meta["agent"], meta["suite"]
    out = Verification(
        False,
        "",
        agent=str(agent.get("name")),
        bundle_sha256=_bundle_digest(root),
        code_hash=agent.get("code_hash"),
        suite=str(claimed_suite.get("name")),
        suite_hash=str(claimed_suite.get("hash")),
    )
    try:
        known = suite_lookup(str(claimed_suite.get("name")))
    except ValueError as err:
        raise BundleError(f"suite {claimed_suite.get('name')!r} is not a registered suite ({err})") from err
    suite, records = _load_results(root / "results")
    if suite.hash != claimed_suite.get("hash"):
        raise BundleError(
            f"bundle.json says suite hash {str(claimed_suite.get('hash'))[:12]} but the results "
            f"were produced for {suite.hash[:12]}"
        )
    registered = known.with_seeds(suite.num_seeds)
    if suite.hash != registered.hash:
        raise BundleError(
            f"suite hash {suite.hash[:12]} is not a registered version of suite {known.name!r} "
            f"(v{known.version} with {suite.num_seeds} seeds hashes to {registered.hash[:12]})"
        )
    if agent.get("kind") != "zoo":
        if not (root / "agent").is_dir():
            raise BundleError("bundle has no agent/ source")
        actual = code_hash(root / "agent")
        if actual != agent.get("code_hash"):
            raise BundleError(
                f"agent source hashes to {actual[:12]}, bundle.json says "
                f"{str(agent.get('code_hash'))[:12]} (swapped source?)"
            )
    name = agent.get("name")
    mine = [r for r in records if r["cell"].get("agent_name") == name]
    if not mine:
        raise BundleError(f"the results hold no cell of the bundle's agent {name!r}")
    spec, pythonpath = _agent_spec_in(root, agent)
    # the rows' own code hash (the runner's specs.code_hash) must be that of the bundled source
    claimed = agent.get("record_code_hash")
    row_hashes = {r.get("agent_code_hash") for rec in mine for r in rec["rows"]} - {None}
    if claimed is not None and row_hashes - {claimed}:
        raise BundleError(
            f"the agent's rows carry code hash {sorted(row_hashes - {claimed})[0][:12]}, "
            f"bundle.json says {claimed[:12]}"
        )
    if claimed is not None and agent.get("kind") in ("file", "sb3"):
        actual_record_hash = _record_code_hash(spec)
        if actual_record_hash != claimed:
            raise BundleError(
                f"the bundled source hashes to {str(actual_record_hash)[:12]} but the rows "
                f"were produced by code {claimed[:12]} (swapped source?)"
            )
    refs = [r for r in records if r["cell"].get("role") in ("uniform", "oracle")]
    for rec in mine + refs:  # every cell, re-run or not, must be a cell of the registered suite
        cell = _cell_to_rerun(rec["cell"], registered, str(name), spec)
        first = cell["seed_start"]
        rows = rec.get("rows") or []
        if [r.get("seed") for r in rows] != list(range(first, first + cell["num_seeds"])) or any(
            r.get("setting") != cell["setting_key"] or r.get("agent") != cell["agent_name"] for r in rows
        ):
            raise BundleError(f"cell {cell['id']}: its rows do not match the cell's agent, setting and seeds")
    if cells is not None and int(cells) < 1:
        raise BundleError(f"--cells must be >= 1, got {cells}")
    mine.sort(key=lambda r: r["cell"]["id"])
    refs.sort(key=lambda r: r["cell"]["id"])
    k = len(mine) if cells is None else min(int(cells), len(mine))
    k_ref = len(refs) if cells is None else min(len(refs), max(1, k // 5))
    draw = random.Random(seed)
    chosen = draw.sample(mine, k) + draw.sample(refs, k_ref)
    env = meta["environment"].get("versions", {})
    here = machine_info()["versions"]
    if pythonpath is not None:  # the bundled package is found (and copied into the sandbox) from here
        sys.path.insert(0, pythonpath)
        importlib.invalidate_caches()
    try:
        for rec in chosen:
            cell = rec["cell"]
            exact = (
                all(env.get(p) == here.get(p) for p in ("numpy", "torch"))
                and cell.get("device", "cpu") == "cpu"
            )
            out.exact = out.exact and exact
            if log is not None:
                log(f"re-running {cell['id']} ({'bit-identical' if exact else 'within tolerance'} check)")
            trusted = _cell_to_rerun(cell, registered, str(name), spec)
            new = _rerun(trusted, trusted["agent_spec"], timeout, sandbox)
            out.cells_checked.append(cell["id"])
            if new.get("status") != "ok" and rec.get("status") == "ok":
                out.reason = f"cell {cell['id']}: the re-run failed ({str(new.get('reason'))[:300]})"
                return out
            diff = compare_rows(rec["rows"], new["rows"], exact)
            if diff is not None:
                out.reason = f"cell {cell['id']} does not reproduce: {diff}"
                return out
    finally:
        if pythonpath is not None:
            with contextlib.suppress(ValueError):
                sys.path.remove(pythonpath)
            importlib.invalidate_caches()
    out.cells_total = len(mine) + len(refs)
    out.escape_probability = _escape_probability(len(mine), k)
    tol = "bit-identical" if out.exact else f"within rtol={TOLERANCE['rtol']:g}, atol={TOLERANCE['atol']:g}"
    out.ok = True
    out.reason = (
        f"{k} of the agent's {len(mine)} cells and {k_ref} of {len(refs)} reference cells re-run and "
        f"reproduced ({tol}); one forged agent cell would have escaped with probability "
        f"{out.escape_probability:.2f}"
    )
    return out


# --------------------------------------------------------------------------- publishing


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]


def _bundle_digest(root: Path) -> str:
    return hashlib.sha256((root / "CHECKSUMS.json").read_bytes()).hexdigest()


def _history(board: Path) -> list[dict[str, Any]]:
    path = board / "history.jsonl"
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise BundleError(f"{path}:{i}: not valid JSON ({err}); the board is damaged") from err
    return out


def _reference_rows(records: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {
        (r["agent"], r["setting"], int(r["seed"])): r
        for rec in records
        if rec["cell"].get("role") in ("uniform", "oracle")
        for r in rec["rows"]
    }


@contextmanager
def board_lock(board: Path) -> Iterator[None]:
    """Hold ``board/.lock`` exclusively (``flock``; released when the holder dies): one ``publish`` at a
    time decides what is new, checks the references and appends to the history."""
    import fcntl

    board.mkdir(parents=True, exist_ok=True)
    with open(board / ".lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def publish(
    path: str | os.PathLike, board: str | os.PathLike, verification: Verification
) -> tuple[Path, bool]:
    """Merge a verified bundle into ``board``; returns ``(entry directory, newly added)``.

    Raises:
        BundleError: ``verification`` is not ok or is of another bundle, or the bundle's reference rows
            differ from the board's for the same suite (a forged uniform / oracle reference).
    """
    if not verification.ok:
        raise BundleError(f"refusing to publish an unverified bundle: {verification.reason}")
    board = Path(board)
    with open_bundle(path) as (root, meta), board_lock(board):
        agent, suite = meta["agent"], meta["suite"]
        digest = _bundle_digest(root)
        if digest != verification.bundle_sha256:
            raise BundleError("the verification result belongs to another bundle (contents differ)")
        suite_dir = board / "entries" / f"{_slug(str(suite['name']))}-{str(suite['hash'])[:12]}"
        code = (agent.get("code_hash") or "zoo")[:12]
        entry = suite_dir / f"{_slug(str(agent['name']))}-{code}"
        history = _history(board)
        if any(h.get("bundle_sha256") == digest for h in history) and entry.is_dir():
            return entry, False
        if entry.exists():
            raise BundleError(
                f"{entry} exists with another bundle of the same agent and code; "
                "an agent version is published once"
            )
        _, records = _load_results(root / "results")
        refs = _reference_rows(records)
        for other in sorted(suite_dir.glob("*/results")) if suite_dir.is_dir() else []:
            _, theirs = _load_results(other)
            for key, row in _reference_rows(theirs).items():
                if key in refs and compare_rows([row], [refs[key]], exact=True) is not None:
                    raise BundleError(f"reference row {key} differs from the board's ({other.parent.name})")
        board.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".publish-", dir=board))
        try:
            shutil.copytree(root, tmp / "entry")
            (tmp / "entry" / "verification.json").write_text(
                json.dumps(verification.to_json(), indent=1, sort_keys=True) + "\n"
            )
            entry.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / "entry", entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        line = {
            "bundle_sha256": digest,
            "agent": agent["name"],
            "code_hash": agent.get("code_hash"),
            "suite": suite["name"],
            "suite_hash": suite["hash"],
            "entry": entry.relative_to(board).as_posix(),
            "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "verification": verification.reason,
        }
        with open(board / "history.jsonl", "a") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return entry, True


@dataclass
class Collection:
    """Everything the site needs for one suite: rows and per-agent metadata."""

    suite: Suite
    records: list[dict[str, Any]]
    agents: dict[str, dict[str, Any]]  # agent -> {"code_hash", "versions", "machine", "verification", ...}
    superseded: list[dict[str, Any]] = field(default_factory=list)


def board_collections(board: str | os.PathLike) -> list[Collection]:
    """The current table of ``board`` per suite: the latest published version of every agent name."""
    board = Path(board)
    history = _history(board)
    if not history:
        raise BundleError(f"{board}: no history.jsonl (not a leaderboard directory, or nothing published)")
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    older: dict[str, list[dict[str, Any]]] = {}
    for h in history:
        key = (h["suite_hash"], h["agent"])
        if key in latest and latest[key]["entry"] != h["entry"]:
            older.setdefault(h["suite_hash"], []).append(latest[key])
        latest[key] = h
    out: dict[str, Collection] = {}
    for (suite_hash, name), h in latest.items():
        entry = board / _safe_member(h["entry"])
        suite, records = _load_results(entry / "results", suite_hash)
        meta = json.loads((entry / "bundle.json").read_text())
        ver = json.loads((entry / "verification.json").read_text())
        col = out.setdefault(suite_hash, Collection(suite, [], {}, older.get(suite_hash, [])))
        seen = {(rec["cell"]["id"]) for rec in col.records}
        col.records += [
            rec
            for rec in records
            if rec["cell"].get("agent_name") == name
            or (rec["cell"].get("role") in ("uniform", "oracle") and rec["cell"]["id"] not in seen)
        ]
        col.agents[name] = {
            "code_hash": meta["agent"].get("code_hash"),
            "spec": meta["agent"].get("spec"),
            **meta["environment"],
            "verification": ver.get("reason"),
            "verified": bool(ver.get("ok")),
            "published": h.get("published"),
        }
    return list(out.values())
