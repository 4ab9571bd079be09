"""Append-only results store: one JSON file per completed cell plus a checksummed manifest.

Layout of a results directory::

    DIR/manifest.json          {"format", "suite": spec, "suite_hash", "cells": {id: {file, sha256, status}}}
    DIR/cells/<cell id>.json   {"cell": {...}, "rows": [tidy rows, one per seed]}

Writes are atomic (a temporary file in the same directory, ``fsync``, ``os.replace``): a cell file is
complete or absent, and the manifest is rewritten only after its cell file is in place. A run killed
at any point therefore resumes without loss or duplicates: cells in the manifest are skipped, a cell
file that reached the disk but not the manifest is simply recomputed (same id, same file). Cells are
never rewritten once listed (append-only).

:meth:`ResultStore.verify` is what ``report`` and ``submit`` call before trusting a directory: the
manifest's suite spec must hash to its ``suite_hash`` (and to the expected one), every listed file must
exist with its sha256, every row must carry the suite hash, and no unlisted cell file may be present.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hbgym.leaderboards.suites import Suite, canonical_json

from hbgym.fileio import atomic_write

__all__ = ["ResultStore", "TamperedResultsError", "atomic_write"]

FORMAT = 1


class TamperedResultsError(ValueError):
    """A results directory that cannot be trusted (the message says why)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ResultStore:
    """The results of one suite (any number of agents) in ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"
        self.cells_dir = self.root / "cells"

    # ------------------------------------------------------------------ manifest

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError as err:
            raise TamperedResultsError(f"{self.root}: no manifest.json (not a results directory)") from err
        except json.JSONDecodeError as err:
            raise TamperedResultsError(f"{self.manifest_path}: manifest is not valid JSON ({err})") from err

    def open(self, suite: Suite) -> None:
        """Create the directory for ``suite``, or check that an existing one belongs to it."""
        if self.exists():
            manifest = self.read_manifest()
            if manifest.get("suite_hash") != suite.hash:
                raise TamperedResultsError(
                    f"{self.root} holds results of suite {manifest.get('suite', {}).get('name')!r} with hash "
                    f"{str(manifest.get('suite_hash'))[:12]}, not {suite.name!r} {suite.hash[:12]}; "
                    "use another --out directory"
                )
            return
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self._write_manifest({"format": FORMAT, "suite": suite.spec(), "suite_hash": suite.hash, "cells": {}})

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def completed(self) -> set[str]:
        """Ids of the cells listed in the manifest (done, successfully or failed)."""
        if not self.exists():
            return set()
        return set(self.read_manifest().get("cells", {}))

    def add(self, record: dict[str, Any]) -> None:
        """Append one completed cell (``{"cell": {"id", ...}, "rows": [...], "status"}``)."""
        cell_id = record["cell"]["id"]
        manifest = self.read_manifest()
        if cell_id in manifest["cells"]:
            return  # append-only: a listed cell is never rewritten
        data = canonical_json(record).encode()
        rel = f"cells/{cell_id}.json"
        atomic_write(self.root / rel, data)
        manifest["cells"][cell_id] = {"file": rel, "sha256": _sha256(data), "status": record["status"]}
        self._write_manifest(manifest)

    # ------------------------------------------------------------------ reading and checking

    def verify(self, expected_hash: str | None = None) -> Suite:
        """Check the directory (see the module docstring); returns the suite it was produced for.

        Raises:
            TamperedResultsError: with the reason.
        """
        manifest = self.read_manifest()
        for key in ("format", "suite", "suite_hash", "cells"):
            if key not in manifest:
                raise TamperedResultsError(f"{self.manifest_path}: manifest lacks {key!r}")
        try:
            suite = Suite.from_spec(manifest["suite"])
        except (KeyError, TypeError, ValueError) as err:
            raise TamperedResultsError(f"{self.manifest_path}: invalid suite spec ({err})") from err
        if suite.hash != manifest["suite_hash"]:
            raise TamperedResultsError(
                f"{self.manifest_path}: the suite spec hashes to {suite.hash[:12]} but the manifest says "
                f"{manifest['suite_hash'][:12]} (edited by hand?)"
            )
        if expected_hash is not None and suite.hash != expected_hash:
            raise TamperedResultsError(
                f"{self.root} was produced for suite {suite.name!r} hash {suite.hash[:12]}, "
                f"expected hash {expected_hash[:12]} (another suite version or seed count)"
            )
        listed = set()
        for cell_id, entry in manifest["cells"].items():
            path = self.root / entry["file"]
            listed.add(path.name)
            if not path.is_file():
                raise TamperedResultsError(f"cell {cell_id}: file {entry['file']} is missing (deleted?)")
            data = path.read_bytes()
            if _sha256(data) != entry["sha256"]:
                raise TamperedResultsError(
                    f"cell {cell_id}: {entry['file']} does not match its sha256 in the manifest "
                    "(edited by hand or truncated)"
                )
            record = json.loads(data)
            for row in record["rows"]:
                if row.get("suite_hash") != suite.hash:
                    bad = row.get("suite_hash")
                    raise TamperedResultsError(f"cell {cell_id}: a row carries suite hash {bad!r}")
        if self.cells_dir.is_dir():
            extra = sorted(p.name for p in self.cells_dir.glob("*.json") if p.name not in listed)
            if extra:
                raise TamperedResultsError(
                    f"{self.cells_dir}: files not in the manifest: {extra[:5]} (an interrupted run: "
                    "resume it with the same `run` command, or a file added by hand)"
                )
        return suite

    def records(self) -> list[dict[str, Any]]:
        """All cell records listed in the manifest (call :meth:`verify` first to trust them)."""
        manifest = self.read_manifest()
        return [json.loads((self.root / e["file"]).read_bytes()) for e in manifest["cells"].values()]

    def rows(self) -> list[dict[str, Any]]:
        return [row for record in self.records() for row in record["rows"]]
