"""Results store: O(1) append-only index, one-pass checks naming damaged files, repair, old format, export."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from hbgym.leaderboards import cli
from hbgym.leaderboards.runner import execute, plan
from hbgym.leaderboards.store import ResultStore, TamperedResultsError
from hbgym.leaderboards.suites import Setting, Suite

SUITE = Suite(
    name="storetest", version=1, kind="online", num_seeds=4, chunk=2, log_points=3, agents=("HierTS",),
    settings=(Setting("HierGaussian-v0", {"num_tasks": 5, "num_actions": 3}, 4, ("HG",)),),
)


def _record(i: int, suite_hash: str = SUITE.hash, status: str = "ok") -> dict:
    """A hand-made cell record with two seed rows."""
    rows = [{"agent": f"A{i}", "setting": "s", "seed": 10_000 + j, "suite_hash": suite_hash, "status": status,
             "final_regret": float(i + j), "steps": [1, 2], "cum_regret": [0.5, float(i + j)]}
            for j in range(2)]
    return {"cell": {"id": f"cell{i}"}, "status": status, "rows": rows}


def _filled(tmp_path, n: int = 6) -> ResultStore:
    store = ResultStore(tmp_path / "r")
    store.open(SUITE)
    for i in range(n):
        store.add(_record(i))
    store.close()
    return store


def test_add_appends_one_checksummed_line_and_never_rewrites(tmp_path):
    store = _filled(tmp_path, 3)
    manifest = store.manifest_path.read_bytes()
    lines = store.index_path.read_bytes().splitlines()
    assert len(lines) == 3 and [json.loads(x)["id"] for x in lines] == ["cell0", "cell1", "cell2"]
    entry = json.loads(lines[1])
    data = (store.cells_dir / "cell1.json").read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    store.add(_record(1, status="failed"))  # a listed cell is never rewritten
    store.add(_record(3))
    store.close()
    assert (store.cells_dir / "cell1.json").read_bytes() == data
    assert store.index_path.read_bytes().splitlines()[:3] == lines  # appended, earlier lines untouched
    assert store.manifest_path.read_bytes() == manifest  # the manifest is written once, not per cell
    assert ResultStore(store.root).completed() == {"cell0", "cell1", "cell2", "cell3"}
    assert store.verify(SUITE.hash).hash == SUITE.hash


def test_verify_names_every_damaged_file(tmp_path):
    store = _filled(tmp_path)
    edited = store.cells_dir / "cell0.json"
    edited.write_bytes(edited.read_bytes().replace(b'"final_regret":0.0', b'"final_regret":9.0'))
    truncated = store.cells_dir / "cell1.json"
    truncated.write_bytes(truncated.read_bytes()[:20])
    (store.cells_dir / "cell2.json").unlink()
    (store.cells_dir / "stray.json").write_text("{}")
    store.add(_record(9, suite_hash="f" * 64))  # consistent checksums, rows of another suite
    lines = store.index_path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"status":"ok"', b'"status":"failed"')  # an edited index line
    store.index_path.write_bytes(b"".join(lines))
    store.close()
    _, damage = store.check()
    found = {d.path: d.reason for d in damage}
    assert "sha256" in found["cells/cell0.json"] and "sha256" in found["cells/cell1.json"]
    assert "missing" in found["cells/cell2.json"] and "not in the index" in found["cells/stray.json"]
    assert "suite hash 'fff" in found["cells/cell9.json"]
    assert "checksum" in found["index.jsonl line 4"]
    # cell3's line is damaged, so its file is unlisted too: 7 problems in one pass
    assert len(damage) == 7 and "cells/cell3.json" in found
    with pytest.raises(TamperedResultsError, match=r"7 damaged file\(s\): cells/cell0.json.*repair"):
        store.verify()
    with pytest.raises(TamperedResultsError, match="cells/cell0.json"):
        ResultStore(store.root).open(SUITE)  # `run` refuses too, naming the files


def test_row_of_another_suite_alone_is_rejected(tmp_path):
    store = _filled(tmp_path, 2)
    record = _record(5)
    record["rows"][1]["suite_hash"] = "0" * 64  # only the second row: the per-row check must see it
    store.add(record)
    store.close()
    with pytest.raises(TamperedResultsError, match="cell5: a row carries suite hash '000"):
        store.verify()


def test_unlisted_files_alone_point_to_resuming(tmp_path):
    store = _filled(tmp_path, 2)
    (store.cells_dir / "cell7.json").write_text("{}")
    with pytest.raises(TamperedResultsError, match="interrupted run: resume it"):
        store.verify()
    store.open(SUITE)  # `run` accepts them: the resumed run rewrites the cells it plans


def _executed(root, cells) -> ResultStore:
    store = ResultStore(root)
    store.open(SUITE)
    execute(cells, store, progress=False)
    return store


def test_repair_moves_damage_aside_and_run_redoes_exactly_those_cells(tmp_path):
    cells, _ = plan(SUITE, ["HierTS"])
    reference = _executed(tmp_path / "ref", cells)
    store = _executed(tmp_path / "run", cells)
    victims = [cells[0].id, cells[-1].id]
    edited = store.cells_dir / f"{victims[0]}.json"
    original = edited.read_bytes()
    edited.write_bytes(original.replace(b'"status":"ok"', b'"status":"OK"'))
    (store.cells_dir / f"{victims[1]}.json").unlink()
    (store.cells_dir / "orphan.json").write_text("late write")
    assert cli.main(["report", str(store.root)]) == 2
    assert cli.main(["repair", str(store.root)]) == 0
    qdirs = list((store.root / "quarantine").iterdir())
    assert len(qdirs) == 1
    moved = qdirs[0]
    assert (moved / "cells" / f"{victims[0]}.json").read_bytes() != original  # kept as it was found
    assert (moved / "cells" / "orphan.json").read_text() == "late write"
    assert (moved / "index.jsonl").exists() and "missing" in (moved / "REASONS.txt").read_text()
    store = ResultStore(store.root)
    assert store.completed() == {c.id for c in cells} - set(victims)
    new = execute(cells, store, progress=False)
    assert sorted(r["cell"]["id"] for r in new) == sorted(victims)
    store.verify(SUITE.hash)

    def finals(s):
        return sorted((r["agent"], r["seed"], r["final_regret"]) for r in s.rows())

    assert finals(store) == finals(reference)
    assert cli.main(["repair", str(store.root)]) == 0  # nothing left to repair


def test_torn_last_line_is_dropped_and_its_cell_recomputed(tmp_path):
    store = _filled(tmp_path, 3)
    data = store.index_path.read_bytes()
    store.index_path.write_bytes(data + data.splitlines(keepends=True)[0][:25])  # killed mid-append
    fresh = ResultStore(store.root)
    assert fresh.completed() == {"cell0", "cell1", "cell2"}
    fresh.add(_record(3))
    fresh.close()
    after = fresh.index_path.read_bytes()
    assert after.startswith(data) and len(after.splitlines()) == 4
    fresh.verify()


def test_reads_and_converts_first_format_directories(tmp_path):
    root = tmp_path / "old"
    (root / "cells").mkdir(parents=True)
    cells = {}
    for i in range(3):
        data = json.dumps(_record(i)).encode()
        (root / "cells" / f"cell{i}.json").write_bytes(data)
        cells[f"cell{i}"] = {"file": f"cells/cell{i}.json", "sha256": hashlib.sha256(data).hexdigest(),
                             "status": "ok"}
    manifest = {"format": 1, "suite": SUITE.spec(), "suite_hash": SUITE.hash, "cells": cells}
    (root / "manifest.json").write_text(json.dumps(manifest))
    old = ResultStore(root)
    assert old.verify(SUITE.hash).name == "storetest" and len(old.rows()) == 6
    (root / "cells" / "cell1.json").write_text("{}")
    with pytest.raises(TamperedResultsError, match="cells/cell1.json: cell cell1 does not match its sha256"):
        old.verify()
    (root / "cells" / "cell1.json").write_text(json.dumps(_record(1)))
    old.open(SUITE)  # converted to the index layout
    assert json.loads(old.manifest_path.read_text())["format"] == 2 and "cells" not in old.read_manifest()
    old.add(_record(3))
    old.close()
    assert ResultStore(root).completed() == {"cell0", "cell1", "cell2", "cell3"}
    ResultStore(root).verify()
    (root / "manifest.json").write_text(json.dumps({**manifest, "format": 7}))
    with pytest.raises(TamperedResultsError, match="unknown results format 7.*new --out"):
        ResultStore(root).verify()


def test_export_csv_and_parquet(tmp_path):
    store = _filled(tmp_path, 3)
    assert store.export(tmp_path / "rows.csv") == 6
    with open(tmp_path / "rows.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and rows[5]["agent"] == "A2" and json.loads(rows[5]["cum_regret"]) == [0.5, 3.0]
    with pytest.raises(ValueError, match=r"'rows.txt': use a .csv or .parquet"):
        store.export("rows.txt")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(ValueError, match="needs pyarrow: pip install"):
            store.export(tmp_path / "rows.parquet")
        assert not (tmp_path / "rows.parquet").exists()
    else:
        assert store.export(tmp_path / "rows.parquet") == 6
        assert pq.read_table(tmp_path / "rows.parquet").column("final_regret").to_pylist()[5] == 3.0


def test_cli_report_export_rejects_bad_suffix_before_work(tmp_path, capsys):
    store = _filled(tmp_path, 1)
    assert cli.main(["report", str(store.root), "--export", str(tmp_path / "x.xlsx")]) == 2
    assert "use a .csv or .parquet" in capsys.readouterr().err

