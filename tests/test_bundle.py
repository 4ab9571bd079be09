"""Submission bundles: packing, hostile archives, verification by re-running (each forgery), publishing."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from hbgym.leaderboards.bundle import (
    BundleError,
    _bundle_digest,
    _escape_probability,
    board_collections,
    board_lock,
    code_hash,
    compare_rows,
    make_bundle,
    open_bundle,
    publish,
    verify_bundle,
)
from hbgym.leaderboards.runner import execute, plan
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import Setting, Suite

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_agent.py"

TINY = Suite(
    "bundletest",
    1,
    "online",
    (
        Setting(
            "HierGaussianMAB-v0",
            {"num_tasks": 2, "num_actions": 3, "tasks_per_round": 2},
            6,
            ("HG",),
            oracle="optimal",
        ),
    ),
    num_seeds=2,
    chunk=2,
    log_points=4,
)

FIXED = """
import numpy as np


class Fixed:
    def reset(self, seed=None):
        pass

    def act(self, obs):
        return np.zeros(len(obs["task"]), dtype=np.int64)

    def update(self, obs, action, reward):
        pass


def make_agent(env):
    return Fixed()
"""


def verify(path, **kwargs):
    """:func:`verify_bundle` with the runner's sandbox."""
    return verify_bundle(path, **kwargs)


def lookup(name: str) -> Suite:
    if name != TINY.name:
        raise ValueError(f"no suite {name!r}")
    return TINY


def _run(agent_file: Path, out: Path, suite: Suite = TINY) -> str:
    spec = f"{agent_file}:make_agent"
    store = ResultStore(out)
    store.open(suite)
    cells, _ = plan(suite, [spec])
    execute(cells, store, jobs=1, progress=False)
    return spec


def _rewrite(src: Path, dst: Path, edit) -> None:
    """A results directory with every record passed through ``edit`` (written through the store's API)."""
    old = ResultStore(src)
    suite = old.verify()
    new = ResultStore(dst)
    new.open(suite)
    for rec in old.records():
        new.add(edit(rec))


def _recompute_checksums(root: Path) -> None:
    from hbgym.leaderboards.bundle import _write_checksums

    _write_checksums(root)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("genuine")
    agent = tmp / "my_agent.py"
    shutil.copy(EXAMPLE, agent)
    spec = _run(agent, tmp / "results")
    bundle = make_bundle(tmp / "results", spec, tmp / "b.tar.gz")
    return tmp, spec, bundle


def test_sb3_code_hash_names_the_model_and_algorithm_not_its_path(tmp_path):
    from hbgym.leaderboards.specs import code_hash as spec_code_hash

    packaged = Path(__file__).resolve().parent.parent / "leaderboards" / "baselines" / "ppo.zip"
    (tmp_path / "a").mkdir()
    copy = tmp_path / "a" / "ppo.zip"
    shutil.copy(packaged, copy)
    assert spec_code_hash(f"sb3:PPO:{copy}") == spec_code_hash(f"sb3:PPO:{packaged}")
    assert spec_code_hash(f"sb3:A2C:{copy}") != spec_code_hash(f"sb3:PPO:{copy}")
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert spec_code_hash(f"sb3:PPO:{copy}") != spec_code_hash(f"sb3:PPO:{packaged}")


def test_sb3_agent_bundles_and_verifies_end_to_end(tmp_path, monkeypatch):
    """A packaged SB3 model: scored by `submit --bundle` (sandboxed), the zip travels in the bundle
    (hashed), and `verify` re-runs its cells from the zip and accepts; a swapped zip is rejected."""
    pytest.importorskip("stable_baselines3")
    from hbgym.leaderboards import cli
    from hbgym.leaderboards.suites import SUITES

    rl_setting = next(s for s in SUITES["quick"].settings if "rl" in s.tags)
    suite = Suite("bundle-rl", 1, "online", (rl_setting,), num_seeds=2, chunk=2, log_points=4)
    monkeypatch.setitem(SUITES, suite.name, suite)
    model = tmp_path / "ppo.zip"
    shutil.copy(Path(__file__).resolve().parent.parent / "leaderboards" / "baselines" / "ppo.zip", model)
    spec = f"sb3:PPO:{model}"
    bundle = tmp_path / "rl.tar.gz"
    assert cli.main(["submit", "--agent", spec, "--suite", suite.name, "--out", str(tmp_path / "res"),
                     "--quiet", "--no-compare", "--bundle", str(bundle)]) == 0
    with open_bundle(bundle) as (root, meta):
        assert meta["agent"]["kind"] == "sb3"
        (packed,) = [p for p in (root / "agent").rglob("*") if p.is_file()]
        assert packed.read_bytes() == model.read_bytes()
    result = verify(bundle, cells=1, suite_lookup=lambda name: suite)
    assert result.ok, result.reason
    with open_bundle(bundle) as (root, meta):  # another model under the same name: rejected
        (packed,) = [p for p in (root / "agent").rglob("*") if p.is_file()]
        packed.write_bytes(packed.read_bytes()[:-16] + bytes(16))
        _recompute_checksums(root)
        swapped = tmp_path / "swapped"
        shutil.copytree(root, swapped)
    assert not verify(swapped, cells=1, suite_lookup=lambda name: suite).ok


def test_bundle_holds_results_source_versions_and_checksums(genuine):
    tmp, spec, bundle = genuine
    with open_bundle(bundle) as (root, meta):
        assert (root / "agent" / "my_agent.py").read_bytes() == EXAMPLE.read_bytes()
        assert meta["agent"]["code_hash"] == code_hash(root / "agent")
        assert meta["suite"]["hash"] == TINY.hash
        assert {"python", "numpy", "torch", "hbgym"} <= set(meta["environment"]["versions"])
        assert meta["environment"]["machine"]["cores"] >= 1
        sums = json.loads((root / "CHECKSUMS.json").read_text())
        assert "bundle.json" in sums and any(k.startswith("results/") for k in sums)
    with pytest.raises(BundleError, match="exists"):
        make_bundle(tmp / "results", spec, bundle)
    with pytest.raises(BundleError, match="no cell of agent"):
        make_bundle(tmp / "results", "other.py:make_agent", tmp / "x.tar.gz")


def test_genuine_bundle_verifies_bit_identical(genuine):
    _, _, bundle = genuine
    result = verify(bundle, cells=None, suite_lookup=lookup)
    assert result.ok, result.reason
    assert result.exact and result.cells_total == 2 and len(result.cells_checked) == 2
    assert result.escape_probability == 0.0


def test_edited_regret_with_recomputed_checksums_is_rejected(genuine, tmp_path):
    tmp, spec, _ = genuine

    def forge(rec):
        if rec["cell"]["role"] == "agent":
            for r in rec["rows"]:
                r["final_regret"] *= 0.5
                r["cum_regret"] = [v * 0.5 for v in r["cum_regret"]]
        return rec

    _rewrite(tmp / "results", tmp_path / "forged", forge)
    bundle = make_bundle(tmp_path / "forged", spec, tmp_path / "forged.tar.gz")  # checksums all recomputed
    result = verify(bundle, cells=None, suite_lookup=lookup)
    assert not result.ok
    assert result.reason.startswith("cell my_agent.make_agent") and "does not reproduce" in result.reason
    assert "cum_regret claimed" in result.reason


def test_swapped_source_is_rejected(genuine, tmp_path):
    _, _, bundle = genuine
    with open_bundle(bundle) as (root, _):
        shutil.copytree(root, tmp_path / "b")
    (tmp_path / "b" / "agent" / "my_agent.py").write_text(FIXED)
    _recompute_checksums(tmp_path / "b")
    result = verify(tmp_path / "b", suite_lookup=lookup)
    assert not result.ok and "swapped source" in result.reason
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    meta["agent"]["code_hash"] = code_hash(tmp_path / "b" / "agent")  # a careful forger
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta))
    _recompute_checksums(tmp_path / "b")
    result = verify(tmp_path / "b", cells=None, suite_lookup=lookup)
    # the rows' own code hash (the runner's) ties them to the original source
    assert not result.ok and "swapped source" in result.reason, result.reason


def test_other_suite_hash_is_rejected(tmp_path):
    agent = tmp_path / "my_agent.py"
    shutil.copy(EXAMPLE, agent)
    other = Suite(
        TINY.name,
        TINY.version,
        "online",
        (
            Setting(
                "HierGaussianMAB-v0", {"num_tasks": 2, "tasks_per_round": 1}, 6, ("HG",), oracle="optimal"
            ),
        ),
        2,
        2,
        4,
    )
    spec = _run(agent, tmp_path / "results", other)
    bundle = make_bundle(tmp_path / "results", spec, tmp_path / "b")
    result = verify(bundle, suite_lookup=lookup)
    assert not result.ok and "not a registered version of suite 'bundletest'" in result.reason
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["suite"]["hash"] = TINY.hash  # claim the registered hash: the results say otherwise
    (bundle / "bundle.json").write_text(json.dumps(meta))
    _recompute_checksums(bundle)
    result = verify(bundle, suite_lookup=lookup)
    assert not result.ok and "results were produced for" in result.reason


def test_edited_member_without_new_checksums_is_rejected(genuine, tmp_path):
    _, _, bundle = genuine
    with open_bundle(bundle) as (root, _):
        shutil.copytree(root, tmp_path / "b")
    (tmp_path / "b" / "agent" / "my_agent.py").write_text(FIXED)
    result = verify(tmp_path / "b", suite_lookup=lookup)
    assert not result.ok and "agent/my_agent.py does not match its checksum" in result.reason
    (tmp_path / "b" / "extra.txt").write_text("x")
    assert "not in CHECKSUMS.json" in verify(tmp_path / "b", suite_lookup=lookup).reason


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_hostile_archives_are_rejected_and_write_nothing_outside(tmp_path, kind):
    info = tarfile.TarInfo({"dotdot": "../evil.txt", "absolute": "/tmp/evil-hbgym.txt"}.get(kind, "evil.txt"))
    data: bytes | None = b"evil"
    info.size = 4
    if kind in ("symlink", "hardlink"):
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname, info.size, data = "/etc/passwd", 0, None
    elif kind == "device":
        info.type, info.size, data = tarfile.CHRTYPE, 0, None
    archive = _tar(tmp_path / "evil.tar.gz", [(info, data)])
    with pytest.raises(BundleError, match="unsafe member|link or special"), open_bundle(archive):
        pass
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil-hbgym.txt").exists()


def test_oversized_and_garbage_archives_are_rejected(tmp_path, monkeypatch):
    import hbgym.leaderboards.bundle as bundle_mod

    info = tarfile.TarInfo("big.bin")
    info.size = 2048
    archive = _tar(tmp_path / "big.tar.gz", [(info, b"0" * 2048)])
    monkeypatch.setattr(bundle_mod, "MAX_BUNDLE_BYTES", 1024)
    with pytest.raises(BundleError, match="more than 1024 bytes"), open_bundle(archive):
        pass
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(BundleError, match="not a readable"), open_bundle(tmp_path / "junk.tar.gz"):
        pass


def test_compare_rows_exact_and_tolerance():
    a = [{"seed": 3, "final_regret": 1.0, "cum_regret": [0.5, 1.0], "seconds": 9.0}]
    b = [{"seed": 3, "final_regret": 1.0 + 1e-12, "cum_regret": [0.5, 1.0], "seconds": 1.0}]
    assert compare_rows(a, a, exact=True) is None
    assert compare_rows(a, b, exact=True) == "seed 3: final_regret claimed 1.0, re-run gives 1.000000000001"
    assert compare_rows(a, b, exact=False) is None  # within rtol 1e-6; seconds are not compared
    c = [{**a[0], "cum_regret": [0.5, 1.1]}]
    assert "cum_regret" in compare_rows(a, c, exact=False)


def test_escape_probability_by_hand():
    assert _escape_probability(10, 5) == pytest.approx(0.5)  # C(9,5) / C(10,5) = 126 / 252
    assert _escape_probability(4, 2, forged=2) == pytest.approx(1 / 6)  # C(2,2) / C(4,2)
    assert _escape_probability(3, 3) == 0.0


def test_publish_idempotent_append_only_and_superseding(genuine, tmp_path):
    tmp, _, bundle = genuine
    board = tmp_path / "board"
    with pytest.raises(BundleError, match="unverified"):
        publish(bundle, board, verify(tmp / "nope.tar.gz", suite_lookup=lookup))
    result = verify(bundle, cells=1, suite_lookup=lookup)
    entry, new = publish(bundle, board, result)
    assert new and (entry / "verification.json").exists()
    assert publish(bundle, board, result) == (entry, False)  # idempotent
    assert len((board / "history.jsonl").read_text().splitlines()) == 1
    # a newer version of the same agent (same file name, other code)
    v2 = tmp_path / "v2" / "my_agent.py"
    v2.parent.mkdir()
    v2.write_text(EXAMPLE.read_text().replace("np.sqrt(2 *", "np.sqrt(0.5 *"))
    spec2 = _run(v2, tmp_path / "v2" / "results")
    bundle2 = make_bundle(tmp_path / "v2" / "results", spec2, tmp_path / "v2.tar.gz")
    with pytest.raises(BundleError, match="belongs to another bundle"):
        publish(bundle2, board, result)  # the verification of bundle 1
    entry2, new2 = publish(bundle2, board, verify(bundle2, cells=1, suite_lookup=lookup))
    assert new2 and entry2 != entry and entry.is_dir()  # the old version stays
    history = [json.loads(line) for line in (board / "history.jsonl").read_text().splitlines()]
    assert [h["entry"] for h in history] == [
        entry.relative_to(board).as_posix(),
        entry2.relative_to(board).as_posix(),
    ]
    (col,) = board_collections(board)
    assert col.agents["my_agent.make_agent"]["code_hash"] == history[1]["code_hash"]
    assert [h["code_hash"] for h in col.superseded] == [history[0]["code_hash"]]
    agents = {rec["cell"]["agent_name"] for rec in col.records}
    assert agents == {"my_agent.make_agent", "Uniform"}
    assert len(col.records) == 2  # one agent cell (the newer) and one reference cell
    from hbgym.leaderboards.site import build_board_site

    site = build_board_site(board, tmp_path / "site")
    page = (site / "agents" / "my_agent.make_agent.html").read_text()
    assert history[1]["code_hash"] in page and "reproduced (bit-identical)" in page
    assert history[0]["code_hash"][:12] in (site / "index.html").read_text()  # superseded, in the history


def test_concurrent_publish_waits_for_the_board_lock(genuine, tmp_path):
    import threading

    _, _, bundle = genuine
    board = tmp_path / "board"
    result = verify(bundle, cells=1, suite_lookup=lookup)
    done: list[tuple[Path, bool]] = []
    with board_lock(board):  # another publish holds the board
        worker = threading.Thread(target=lambda: done.append(publish(bundle, board, result)))
        worker.start()
        worker.join(1.0)
        assert worker.is_alive() and not done and not (board / "history.jsonl").exists()
    worker.join(60)
    assert done and done[0][1] and len((board / "history.jsonl").read_text().splitlines()) == 1


def test_publish_rejects_forged_reference_rows(genuine, tmp_path):
    tmp, spec, bundle = genuine
    board = tmp_path / "board"
    publish(bundle, board, verify(bundle, cells=1, seed=0, suite_lookup=lookup))

    def forge(rec):
        if rec["cell"]["role"] == "uniform":
            for r in rec["rows"]:
                r["final_regret"] *= 2
        elif rec["cell"]["role"] == "agent":
            rec["cell"]["agent_name"] = "other.make_agent"
            rec["cell"]["id"] = rec["cell"]["id"].replace("my_agent", "other")
            for r in rec["rows"]:
                r["agent"] = "other.make_agent"
        return rec

    _rewrite(tmp / "results", tmp_path / "forged", forge)
    other = tmp_path / "other.py"
    shutil.copy(EXAMPLE, other)
    forged = make_bundle(tmp_path / "forged", f"{other}:make_agent", tmp_path / "f.tar.gz")
    from hbgym.leaderboards.bundle import Verification

    claimed = Verification(
        True,
        "pretend",
        agent="other.make_agent",
        code_hash=code_hash_of(forged),
        suite=TINY.name,
        suite_hash=TINY.hash,
        bundle_sha256=digest_of(forged),
    )
    with pytest.raises(BundleError, match="reference row .* differs from the board's"):
        publish(forged, board, claimed)


def digest_of(bundle: Path) -> str:
    with open_bundle(bundle) as (root, _):
        return _bundle_digest(root)


def code_hash_of(bundle: Path) -> str:
    with open_bundle(bundle) as (_, meta):
        return meta["agent"]["code_hash"]


def test_package_agent_is_bundled_as_a_tree_and_verifies(tmp_path, monkeypatch):
    pkg = tmp_path / "src" / "webpkgagent"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "policy.py").write_text(EXAMPLE.read_text())
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"x")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    spec = "webpkgagent.sub.policy:make_agent"
    store = ResultStore(tmp_path / "results")
    store.open(TINY)
    execute(plan(TINY, [spec])[0], store, jobs=1, progress=False)
    bundle = make_bundle(tmp_path / "results", spec, tmp_path / "p.tar.gz")
    with open_bundle(bundle) as (root, meta):
        files = sorted(p.relative_to(root / "agent").as_posix() for p in (root / "agent").rglob("*.py"))
        assert files == [
            "webpkgagent/__init__.py",
            "webpkgagent/sub/__init__.py",
            "webpkgagent/sub/policy.py",
        ]
        assert not list((root / "agent").rglob("*.pyc"))
        assert meta["agent"]["kind"] == "package"
    shutil.rmtree(tmp_path / "src")  # the re-run must use the bundled copy
    result = verify(bundle, cells=None, suite_lookup=lookup)
    assert result.ok, result.reason


def test_cli_verify_and_publish_report_the_reason(genuine, tmp_path, capsys):
    from hbgym.leaderboards import cli

    _, _, bundle = genuine
    assert cli.main(["verify", str(bundle), "--cells", "0"]) == 2
    assert "--cells must be a positive integer or 'all', got '0'" in capsys.readouterr().err
    # the CLI checks against the registered suites, where "bundletest" does not exist
    assert cli.main(["publish", str(bundle), "--board", str(tmp_path / "board")]) == 1
    assert "REJECTED" in capsys.readouterr().out and "not a registered suite" in result_reason(bundle)
    assert not (tmp_path / "board").exists()


def result_reason(bundle: Path) -> str:
    return verify(bundle).reason


def test_source_size_cap(genuine, tmp_path, monkeypatch):
    import hbgym.leaderboards.bundle as bundle_mod

    tmp, spec, _ = genuine
    monkeypatch.setattr(bundle_mod, "MAX_SOURCE_BYTES", 100)
    size = Path(spec.rpartition(":")[0]).stat().st_size
    with pytest.raises(BundleError, match=f"is {size} bytes, over the 100 byte cap"):
        make_bundle(tmp / "results", spec, tmp_path / "big.tar.gz")
    assert not (tmp_path / "big.tar.gz").exists()


@pytest.mark.parametrize(
    "forgery, reason",
    [
        ("reference_spec", "a uniform reference cell must be the suite's 'Uniform'"),
        ("setting", "its setting differs from the suite's"),
        ("seeds", "are not a chunk of the suite"),
    ],
)
def test_cells_are_rebuilt_from_the_registered_suite(genuine, tmp_path, forgery, reason):
    tmp, spec, _ = genuine

    def forge(rec):
        cell = rec["cell"]
        if forgery == "reference_spec" and cell["role"] == "uniform":
            cell["agent_spec"] = spec  # "reproduce" a forged reference with the submitter's code
        elif forgery == "setting" and cell["role"] == "agent":
            cell["setting"]["kwargs"]["num_actions"] = 2  # an easier env under the same key
        elif forgery == "seeds" and cell["role"] == "agent":
            cell["seed_start"] += 1000
        return rec

    _rewrite(tmp / "results", tmp_path / "forged", forge)
    bundle = make_bundle(tmp_path / "forged", spec, tmp_path / "bundle")
    result = verify(bundle, cells=None, suite_lookup=lookup)
    assert not result.ok and reason in result.reason, result.reason
