"""Append-only results store: one JSON file per completed cell plus an append-only, checksummed index.

Layout of a results directory::

    DIR/manifest.json          {"format": 2, "suite": spec, "suite_hash"}   (written once)
    DIR/index.jsonl            one line per stored cell: {"id", "file", "sha256", "status", "check"}
    DIR/cells/<cell id>.json   {"cell": {...}, "rows": [tidy rows, one per seed]}
    DIR/quarantine/<time>/     what ``repair`` moved aside (never deleted)

Adding a cell is O(1): the cell file is written atomically (temporary file + ``os.replace``), then one
line is appended to ``index.jsonl``; ``check`` is the sha256 of the line's other fields, so a torn or
edited line is detected. The driver is the only writer. A run killed at any point (even ``kill -9``)
resumes without loss or duplicates: listed cells are skipped, a cell file that reached the disk but not
the index is recomputed (same id, same file), and a torn last line (the append was cut) is dropped by
the next :meth:`ResultStore.open`. The index is fsynced at most once a second and at :meth:`close`, not
per cell: after a power loss the last cells may be damaged; :meth:`ResultStore.verify` then names them
and :meth:`ResultStore.repair` moves them aside so that the next ``run`` redoes exactly those cells.

:meth:`ResultStore.verify` (one pass, linear in the number of cells) is what ``report`` and ``submit``
call before trusting a directory: the manifest's suite spec must hash to its ``suite_hash`` (and to the
expected one), every index line must match its checksum, every listed file must exist with its sha256,
every row must carry the suite hash, and no unlisted cell file may be present.

What the checksums protect against: accidents (a disk, a truncated copy, a person editing or deleting a
file by mistake). What they do not: anyone can edit a result and re-hash the index, or delete index
lines to drop results; such a directory passes. Trust in published numbers comes from re-running cells.

Directories written by the first format (a ``manifest.json`` holding the whole ``cells`` table) are
read as they are and converted to this layout by the next ``open`` (or ``repair``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hbgym.leaderboards.suites import Suite, canonical_json

from hbgym.fileio import atomic_write

__all__ = ["Damage", "ResultStore", "TamperedResultsError", "atomic_write"]

FORMAT = 2
LEGACY_FORMAT = 1
#: the index is fsynced at most this often (seconds) while cells are added, and at close()
SYNC_INTERVAL = 1.0
_ENTRY_KEYS = ("file", "id", "sha256", "status")


class TamperedResultsError(ValueError):
    """A results directory that cannot be trusted (the message says why)."""


@dataclass(frozen=True)
class Damage:
    """One problem found by :meth:`ResultStore.check`.

    Attributes:
        path: the file concerned, relative to the results directory.
        reason: what is wrong with it.
        cell_id: the cell it belongs to (``None`` for an unparsable index line).
        unlisted: a cell file that the index does not list (an interrupted run, or a file added by hand).
    """

    path: str
    reason: str
    cell_id: str | None = None
    unlisted: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _index_line(entry: dict[str, Any]) -> bytes:
    body = {k: entry[k] for k in _ENTRY_KEYS}
    return (canonical_json({**body, "check": _sha256(canonical_json(body).encode())}) + "\n").encode()


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """The entry of one index line, or ``None`` if it is malformed or fails its checksum."""
    try:
        entry = json.loads(line)
        body = {k: entry[k] for k in _ENTRY_KEYS}
    except (ValueError, KeyError, TypeError):
        return None
    if entry.get("check") != _sha256(canonical_json(body).encode()):
        return None
    return body


class ResultStore:
    """The results of one suite (any number of agents) in ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"
        self.index_path = self.root / "index.jsonl"
        self.cells_dir = self.root / "cells"
        self._listed: set[str] | None = None  # ids in the index (loaded once, then kept up to date)
        self._fh: Any = None
        self._last_sync = 0.0

    # ------------------------------------------------------------------ manifest and index

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict[str, Any]:
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except FileNotFoundError as err:
            raise TamperedResultsError(f"{self.root}: no manifest.json (not a results directory)") from err
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise TamperedResultsError(f"{self.manifest_path}: manifest is not valid JSON ({err})") from err
        if not isinstance(manifest, dict):
            raise TamperedResultsError(f"{self.manifest_path}: manifest is not a JSON object")
        fmt = manifest.get("format")
        if fmt not in (FORMAT, LEGACY_FORMAT):
            raise TamperedResultsError(
                f"{self.manifest_path}: unknown results format {fmt!r} (this version reads formats "
                f"{LEGACY_FORMAT} and {FORMAT}); rerun the `run` command into a new --out directory"
            )
        return manifest

    def _entries(self) -> Iterator[tuple[int, dict[str, Any] | None, bytes]]:
        """``(line number, entry or None if damaged, raw line)`` of every index line, in order.

        A torn last line (no newline: the append was cut) is skipped: its cell was never acknowledged.
        """
        manifest = self.read_manifest()
        if manifest["format"] == LEGACY_FORMAT:
            for i, (cell_id, e) in enumerate(manifest.get("cells", {}).items(), 1):
                entry = {"id": cell_id, "file": e.get("file"), "sha256": e.get("sha256"),
                         "status": e.get("status")}
                yield i, entry, b""
            return
        if not self.index_path.exists():
            return
        with open(self.index_path, "rb") as fh:
            for i, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    return
                yield i, _parse_line(line), line

    def _load(self) -> set[str]:
        if self._listed is None:
            entries = self._entries() if self.exists() else iter(())
            self._listed = {e["id"] for _, e, _ in entries if e is not None}
        return self._listed

    def open(self, suite: Suite) -> None:
        """Create the directory for ``suite``, or check that an existing one belongs to it and is intact.

        An existing directory is checked in one pass (:meth:`check`); damage other than unlisted cell files
        (which an interrupted run leaves and the resumed run rewrites) raises, naming the files.
        """
        if not self.exists():
            self.cells_dir.mkdir(parents=True, exist_ok=True)
            self.index_path.touch()
            atomic_write(self.manifest_path, json.dumps(
                {"format": FORMAT, "suite": suite.spec(), "suite_hash": suite.hash}, indent=1,
                sort_keys=True).encode())
            self._listed = set()
            return
        manifest = self.read_manifest()
        if manifest.get("suite_hash") != suite.hash:
            raise TamperedResultsError(
                f"{self.root} holds results of suite {manifest.get('suite', {}).get('name')!r} with hash "
                f"{str(manifest.get('suite_hash'))[:12]}, not {suite.name!r} {suite.hash[:12]}; "
                "use another --out directory"
            )
        self._migrate(manifest)
        self._drop_torn_tail()
        _, damage = self.check(suite.hash)
        bad = [d for d in damage if not d.unlisted]
        if bad:
            raise TamperedResultsError(self._damage_message(bad))

    def _migrate(self, manifest: dict[str, Any]) -> None:
        """Convert a first-format directory (cells table inside manifest.json) to the index layout."""
        if manifest["format"] != LEGACY_FORMAT:
            return
        lines = b"".join(_index_line(e) for _, e, _ in self._entries() if e is not None)
        atomic_write(self.index_path, lines)  # first the index, then the manifest that points to it
        atomic_write(self.manifest_path, json.dumps(
            {"format": FORMAT, "suite": manifest["suite"], "suite_hash": manifest["suite_hash"]}, indent=1,
            sort_keys=True).encode())
        self._listed = None

    def _drop_torn_tail(self) -> None:
        if not self.index_path.exists():
            return
        data = self.index_path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.index_path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def completed(self) -> set[str]:
        """Ids of the cells listed in the index (done, successfully or failed)."""
        return set(self._load())

    def add(self, record: dict[str, Any]) -> None:
        """Append one completed cell (``{"cell": {"id", ...}, "rows": [...], "status"}``) in O(1)."""
        cell_id = record["cell"]["id"]
        listed = self._load()
        if cell_id in listed:
            return  # append-only: a listed cell is never rewritten
        data = canonical_json(record).encode()
        rel = f"cells/{cell_id}.json"
        atomic_write(self.root / rel, data, fsync=False)
        if self._fh is None:
            if self.read_manifest()["format"] != FORMAT:
                raise TamperedResultsError(f"{self.root}: call open(suite) before adding cells")
            self._drop_torn_tail()
            self._fh = open(self.index_path, "ab")  # noqa: SIM115 - kept open across adds, closed by close()
        self._fh.write(_index_line({"id": cell_id, "file": rel, "sha256": _sha256(data),
                                    "status": record["status"]}))
        self._fh.flush()
        listed.add(cell_id)
        now = time.monotonic()
        if now - self._last_sync >= SYNC_INTERVAL:
            os.fsync(self._fh.fileno())
            self._last_sync = now

    def close(self) -> None:
        """Force the index to the disk and close it (``add`` reopens it)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading and checking

    def _suite(self, manifest: dict[str, Any], expected_hash: str | None) -> Suite:
        for key in ("format", "suite", "suite_hash"):
            if key not in manifest:
                raise TamperedResultsError(f"{self.manifest_path}: manifest lacks {key!r}")
        try:
            suite = Suite.from_spec(manifest["suite"])
        except (KeyError, TypeError, ValueError) as err:
            raise TamperedResultsError(f"{self.manifest_path}: invalid suite spec ({err})") from err
        if suite.hash != manifest["suite_hash"]:
            raise TamperedResultsError(
                f"{self.manifest_path}: the suite spec hashes to {suite.hash[:12]} but the manifest says "
                f"{str(manifest['suite_hash'])[:12]} (edited by hand?)"
            )
        if expected_hash is not None and suite.hash != expected_hash:
            raise TamperedResultsError(
                f"{self.root} was produced for suite {suite.name!r} hash {suite.hash[:12]}, "
                f"expected hash {expected_hash[:12]} (another suite version or seed count)"
            )
        return suite

    def check(self, expected_hash: str | None = None) -> tuple[Suite, list[Damage]]:
        """Check the whole directory in one pass; returns the suite and every damaged file found.

        Raises:
            TamperedResultsError: the manifest itself is missing, invalid or for another suite (nothing
                in the directory can be trusted then).
        """
        suite, damage, _ = self._scan(expected_hash, keep=False)
        return suite, damage

    def _scan(self, expected_hash: str | None,
              keep: bool) -> tuple[Suite, list[Damage], list[dict[str, Any]]]:
        """:meth:`check`, also returning the parsed records of the intact cells when ``keep``."""
        suite = self._suite(self.read_manifest(), expected_hash)
        damage: list[Damage] = []
        listed: set[str] = set()
        kept: list[dict[str, Any]] = []
        want = {suite.hash}  # (a property that hashes the spec: computed once)
        for lineno, entry, _ in self._entries():
            if entry is None:
                damage.append(Damage(f"index.jsonl line {lineno}", "does not match its checksum (edited or "
                                     "damaged line)"))
                continue
            cell_id, rel = entry["id"], str(entry["file"])
            if cell_id in listed:
                damage.append(Damage(rel, f"cell {cell_id} is listed twice in the index", cell_id))
                continue
            listed.add(cell_id)
            path = self.root / rel
            if rel != f"cells/{Path(rel).name}" or not path.is_file():
                damage.append(Damage(rel, f"file of cell {cell_id} is missing (deleted?)", cell_id))
                continue
            data = path.read_bytes()
            if _sha256(data) != entry["sha256"]:
                damage.append(Damage(rel, f"cell {cell_id} does not match its sha256 in the index "
                                     "(edited by hand or truncated)", cell_id))
                continue
            try:
                record = json.loads(data)
                ok = record["cell"]["id"] == cell_id
                hashes = {row.get("suite_hash") for row in record["rows"]}
            except (ValueError, KeyError, TypeError, AttributeError):
                damage.append(Damage(rel, f"cell {cell_id} is not a valid record", cell_id))
                continue
            if not ok:
                other = record["cell"]["id"]
                damage.append(Damage(rel, f"holds cell {other!r}, listed as {cell_id!r}", cell_id))
            elif hashes - want:
                bad = sorted(map(str, hashes - want))
                damage.append(Damage(rel, f"cell {cell_id}: a row carries suite hash {bad[0]!r}", cell_id))
            elif keep:
                kept.append(record)
        if self.cells_dir.is_dir():
            names = {f"{i}.json" for i in listed}
            for p in sorted(self.cells_dir.iterdir()):
                if p.name not in names and not p.name.startswith("."):
                    damage.append(Damage(f"cells/{p.name}", "not in the index", p.stem, unlisted=True))
        return suite, damage, kept

    def _damage_message(self, damage: list[Damage]) -> str:
        shown = "; ".join(str(d) for d in damage[:5]) + (f"; and {len(damage) - 5} more" if len(damage) > 5
                                                          else "")
        hint = (f"`hbgym-leaderboard repair {self.root}` moves the bad files into {self.root}/quarantine/ "
                "(nothing is deleted); then rerun the same `run` command to redo exactly those cells")
        if all(d.unlisted for d in damage):
            hint = ("an interrupted run: resume it with the same `run` command; or a file added by hand: "
                    + hint)
        return f"{self.root}: {len(damage)} damaged file(s): {shown}. {hint}"

    def verify(self, expected_hash: str | None = None) -> Suite:
        """Check the directory (see :meth:`check`); returns the suite it was produced for.

        Raises:
            TamperedResultsError: naming every damaged file (up to 5) and how to repair the directory.
        """
        return self.verified_records(expected_hash, keep=False)[0]

    def verified_records(self, expected_hash: str | None = None,
                         keep: bool = True) -> tuple[Suite, list[dict[str, Any]]]:
        """:meth:`verify` and :meth:`records` in one pass over the files: ``(suite, records)``.

        Raises:
            TamperedResultsError: as :meth:`verify`.
        """
        suite, damage, records = self._scan(expected_hash, keep)
        if damage:
            raise TamperedResultsError(self._damage_message(damage))
        return suite, records

    def repair(self) -> tuple[Path | None, list[Damage]]:
        """Move every damaged file aside into ``quarantine/<UTC time>/`` and drop its index entry.

        Nothing is deleted: the bad cell files and the previous index are moved (copied, for the index)
        into the quarantine folder. The next ``run`` then redoes exactly the dropped cells.

        Returns:
            ``(quarantine folder or None when nothing was damaged, the damage found)``.
        """
        self.close()
        manifest = self.read_manifest()
        self._suite(manifest, None)
        self._migrate(manifest)
        self._drop_torn_tail()
        _, damage = self.check()
        if not damage:
            return None, damage
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        qdir = self.root / "quarantine" / stamp
        n = 1
        while qdir.exists():
            n += 1
            qdir = self.root / "quarantine" / f"{stamp}-{n}"
        (qdir / "cells").mkdir(parents=True)
        bad_ids = {d.cell_id for d in damage if d.cell_id is not None and not d.unlisted}
        shutil.copy2(self.index_path, qdir / "index.jsonl")
        keep: list[bytes] = []
        seen: set[str] = set()
        for _, entry, raw in self._entries():
            if entry is None or entry["id"] in bad_ids or entry["id"] in seen:
                continue
            seen.add(entry["id"])
            keep.append(raw)
        for d in damage:
            src = self.root / d.path
            if d.path.startswith("cells/") and src.is_file():
                with contextlib.suppress(FileNotFoundError):
                    os.replace(src, qdir / d.path)
        atomic_write(self.index_path, b"".join(keep))
        (qdir / "REASONS.txt").write_text("".join(f"{d}\n" for d in damage))
        self._listed = None
        return qdir, damage

    def records(self) -> list[dict[str, Any]]:
        """All cell records listed in the index (call :meth:`verify` first to trust them)."""
        entries = [e for _, e, _ in self._entries() if e is not None]
        return [json.loads((self.root / e["file"]).read_bytes()) for e in entries]

    def rows(self) -> list[dict[str, Any]]:
        return [row for record in self.records() for row in record["rows"]]

    def export(self, path: str | os.PathLike) -> int:
        """Write every row to ``path`` (``.csv`` or ``.parquet``); returns the number of rows.

        CSV needs nothing beyond the standard library (list and dict values as JSON text); Parquet needs
        ``pyarrow`` (``pip install "hbgym[export]"``).

        Raises:
            ValueError: another file extension, or pyarrow missing for Parquet (before anything is written).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"--export {str(path)!r}: use a .csv or .parquet file name")
        if suffix == ".parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as err:
                raise ValueError('--export to .parquet needs pyarrow: pip install "hbgym[export]" '
                                 "(or pip install pyarrow), or export to .csv") from err
        rows = self.rows()
        columns = list(dict.fromkeys(k for r in rows for k in r))
        if suffix == ".parquet":
            table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows])
            tmp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            return len(rows)
        import csv
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
        atomic_write(path, buf.getvalue().encode())
        return len(rows)
