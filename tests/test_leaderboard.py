"""Leaderboard: scoring on hand-made arrays, suite hashes, store/resume, report, backends, CLI errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from hbgym.leaderboards import cli
from hbgym.leaderboards.report import build_report
from hbgym.leaderboards.runner import check_actions, execute, log_steps, plan, run_cell
from hbgym.leaderboards.scoring import iqm, iqm_ci, normalized_score, probability_of_improvement, score_rows
from hbgym.leaderboards.store import ResultStore, TamperedResultsError
from hbgym.leaderboards.suites import SUITES, Setting, Suite

TINY = Suite(
    name="tiny",
    version=1,
    kind="online",
    num_seeds=4,
    chunk=2,
    log_points=5,
    agents=("HierTS", "EbmTS"),
    settings=(
        Setting("HierGaussian-v0", {"num_tasks": 3, "num_actions": 4}, 5, ("HG", "linear")),
        Setting("MultiBandit-v0", {"num_tasks": 2, "num_actions": 3, "dim": 2}, 5, ("MB",), oracle="optimal"),
    ),
)


@pytest.fixture
def tiny_registered(monkeypatch):
    monkeypatch.setitem(SUITES, "tiny", TINY)
    return TINY


def _finals(store: ResultStore) -> dict[tuple[str, str, int], float]:
    return {(r["agent"], r["setting"], r["seed"]): r["final_regret"] for r in store.rows()}


# --------------------------------------------------------------------------- scoring


def test_normalized_score_references():
    np.testing.assert_allclose(normalized_score([10.0, 2.0, 6.0, 12.0], 10.0, 2.0), [0.0, 1.0, 0.5, -0.25])
    with pytest.raises(ValueError, match="must exceed"):
        normalized_score([1.0], 2.0, 2.0)


def test_iqm_known_values():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # trims 1, 2 and 7, 8
    assert iqm(np.array([[1.0, np.nan], [3.0, 5.0]])) == pytest.approx(3.0)  # NaN (not played) dropped
    point, lo, hi = iqm_ci(np.full((6, 3), 0.7))
    assert (point, lo, hi) == pytest.approx((0.7, 0.7, 0.7))


def test_iqm_ci_deterministic_and_covers_point():
    x = np.random.default_rng(0).normal(size=(20, 3))
    a, b = iqm_ci(x), iqm_ci(x)
    assert a == b
    assert a[1] <= a[0] <= a[2]
    assert iqm_ci(x, random_state=1) != a


def test_probability_of_improvement_paired():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([[0.0, 2.0], [5.0, 1.0]])
    # env 0: 1 > 0, 3 < 5 -> 0.5; env 1: tie (0.5), 4 > 1 -> 0.75; mean 0.625
    assert probability_of_improvement(x, y) == pytest.approx(0.625)
    assert probability_of_improvement(y, x) == pytest.approx(0.375)
    with pytest.raises(ValueError, match="same shape"):
        probability_of_improvement(x, y[:1])


def test_score_rows_uses_stored_references():
    def row(agent, setting, seed, regret):
        return {"agent": agent, "setting": setting, "seed": seed, "final_regret": regret, "status": "ok"}

    settings = [
        {"key": "a", "tags": ["F"], "oracle": "OracleTS", "uniform": "Uniform"},
        {"key": "b", "tags": ["G"], "oracle": "optimal", "uniform": "Uniform"},
    ]
    rows = [
        row("Uniform", "a", 0, 9.0),
        row("Uniform", "a", 1, 11.0),
        row("OracleTS", "a", 0, 2.0),
        row("OracleTS", "a", 1, 2.0),
        row("X", "a", 0, 6.0),
        row("X", "a", 1, 2.0),
        row("Uniform", "b", 0, 10.0),
        row("Uniform", "b", 1, 10.0),
        row("X", "b", 0, 5.0),
        {**row("X", "b", 1, 0.0), "status": "failed", "reason": "boom"},
    ]
    table = score_rows(rows, settings)
    assert table.references == {"a": {"uniform": 10.0, "oracle": 2.0}, "b": {"uniform": 10.0, "oracle": 0.0}}
    np.testing.assert_allclose(table.scores["X"], [[0.5, 0.5], [1.0, 0.0]])  # failed: scores 0 (uniform)
    assert table.failures["X"] == ["b seed 1: boom"] and table.failed_cells["X"] == 1
    np.testing.assert_allclose(table.columns("X", "G"), [[0.5], [0.0]])


def test_log_steps_and_action_checks():
    steps = log_steps(100, 10)
    assert steps[0] == 1 and steps[-1] == 100 and np.all(np.diff(steps) > 0)
    assert check_actions(np.array([[1, 2]], dtype=np.int32), (1, 2), 3).dtype == np.int64
    for bad, match in [
        (np.array([[0, 3]]), "out of range"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.array([0, 1, 2]), "shape"),
        (np.array([["a", "b"]]), "dtype"),
        (np.array([[0.5, 1.0]]), "dtype float64"),
        (np.array([[1.0, 2.0]]), "dtype float64"),  # integral floats: rejected exactly as the env does
    ]:
        with pytest.raises(ValueError, match=match):
            check_actions(bad, (1, 2), 3)


# --------------------------------------------------------------------------- suites


def test_suite_hash_stable_across_processes_and_sensitive_to_every_field():
    code = "from tests.test_leaderboard import TINY; print(TINY.hash)"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == TINY.hash
    s0 = TINY.settings[0]
    variants = [
        dataclasses.replace(TINY, version=2),
        dataclasses.replace(TINY, num_seeds=5),
        dataclasses.replace(TINY, chunk=4),
        dataclasses.replace(TINY, log_points=6),
        dataclasses.replace(TINY, settings=(dataclasses.replace(s0, horizon=6), TINY.settings[1])),
        dataclasses.replace(
            TINY, settings=(dataclasses.replace(s0, kwargs={"num_tasks": 4}), TINY.settings[1])
        ),
        dataclasses.replace(TINY, settings=(dataclasses.replace(s0, tags=("HG",)), TINY.settings[1])),
        dataclasses.replace(TINY, settings=(dataclasses.replace(s0, oracle="optimal"), TINY.settings[1])),
        dataclasses.replace(
            TINY, settings=(dataclasses.replace(s0, env_id="HierGaussianMAB-v0"), TINY.settings[1])
        ),
        dataclasses.replace(TINY, settings=TINY.settings[:1]),
    ]
    hashes = {v.hash for v in variants}
    assert TINY.hash not in hashes and len(hashes) == len(variants)
    same = dataclasses.replace(TINY, settings=(dataclasses.replace(s0, note="doc only"), TINY.settings[1]))
    assert same.hash == TINY.hash
    assert Suite.from_spec(TINY.spec()).hash == TINY.hash


def test_registered_suites_are_valid():
    for suite in SUITES.values():
        suite.validate()
    assert SUITES["standard"].num_seeds >= 50
    families = {
        s.env_id.split("-")[0].replace("MAB", "").replace("Logistic", "") for s in SUITES["quick"].settings
    }
    assert {"HierGaussian", "MixedEffect", "MultiBandit"} <= families


def test_unknown_env_id_and_kwargs_listed():
    bad = dataclasses.replace(TINY, settings=(Setting("HierGaussian-v0", {"bogus": 1}, 5),))
    with pytest.raises(ValueError, match=r"unknown env kwargs \['bogus'\].*num_tasks"):
        plan(bad, ["HierTS"])
    bad = dataclasses.replace(TINY, settings=(Setting("Nope-v0", {}, 5),))
    with pytest.raises(ValueError, match="unknown env id 'Nope-v0'.*HierGaussian-v0"):
        plan(bad, ["HierTS"])


# --------------------------------------------------------------------------- runner, store, resume


def test_plan_references_and_applicability():
    cells, skipped = plan(TINY, ["HierTS", "EbmTS"])
    by = {(c.agent_name, c.setting_key) for c in cells}
    hg, mb = (s.key for s in TINY.settings)
    assert {("Uniform", hg), ("OracleTS", hg), ("HierTS", hg), ("Uniform", mb), ("EbmTS", mb)} == by
    assert {(a, k) for a, k, _ in skipped} == {("EbmTS", hg), ("HierTS", mb)}
    assert len(cells) == 5 * len(TINY.chunks)


def test_setting_with_its_own_seed_count_plays_only_those_seeds(tmp_path):
    """``Setting.num_seeds`` (e.g. CoCo's 10 seeds in the paper suite): fewer cells, no 'incomplete'."""
    hg, mb = TINY.settings
    few = dataclasses.replace(mb, num_seeds=1)
    suite = dataclasses.replace(TINY, name="tiny-few", settings=(hg, few))
    assert "num_seeds" not in hg.spec() and few.spec()["num_seeds"] == 1
    assert few.config_hash != mb.config_hash and suite.hash != TINY.hash
    assert Suite.from_spec(suite.spec()).hash == suite.hash
    assert suite.seeds_of(few) == [suite.seeds[0]] and suite.chunks_of(few) == [(suite.seeds[0], 1)]
    assert suite.chunks_of(hg) == TINY.chunks == [(10_000, 2), (10_002, 2)]
    assert "(MultiBandit-v0-" in suite.seeds_text() and ": 1)" in suite.seeds_text()
    assert suite.with_seeds(1).chunks_of(hg) == [(10_000, 1)]  # --seeds caps every setting
    assert dataclasses.replace(suite, num_seeds=1).num_seeds_of(dataclasses.replace(few, num_seeds=5)) == 1
    cells, _ = plan(suite, ["HierTS", "EbmTS"])
    seeds_on = {k: sorted({c.seed_start + i for c in cells if c.setting_key == k for i in range(c.num_seeds)})
                for k in (hg.key, few.key)}
    assert seeds_on == {hg.key: [10_000, 10_001, 10_002, 10_003], few.key: [10_000]}
    store = ResultStore(tmp_path)
    store.open(suite)
    execute([c for c in cells if c.setting_key == few.key], store, progress=False)
    text, _ = build_report(tmp_path, plots=False)
    assert f"EbmTS on {few.key}" not in text and "Incomplete" not in text  # complete with its one seed
    for bad in (0, -2, True):
        with pytest.raises(ValueError, match="num_seeds must be None or an int >= 1"):
            dataclasses.replace(mb, num_seeds=bad)


def test_paired_seeds_batched_equals_single(tmp_path):
    """A seed's row (final regret and the whole curve) does not depend on its chunk (issue 19)."""
    cells, _ = plan(TINY, [])
    store = ResultStore(tmp_path)
    store.open(TINY)
    execute(cells, store, progress=False)
    rows = store.rows()
    assert len(rows) == len(cells) * 2 and len({(r["agent"], r["setting"], r["seed"]) for r in rows}) == len(
        rows
    )
    row = rows[0]
    for key in (
        "suite_hash",
        "config_hash",
        "steps",
        "cum_regret",
        "final_regret",
        "cell_wall_time",
        "device",
        "dtype",
        "versions",
        "git_commit",
    ):
        assert key in row
    for cell in cells:  # every agent (references included): the chunk's 2nd seed run alone
        one = dataclasses.replace(cell, num_seeds=1, seed_start=cell.seed_start + 1)
        single = run_cell(one)["rows"][0]
        assert single["status"] == "ok"
        chunked = next(r for r in rows if (r["agent"], r["setting"], r["seed"]) ==
                       (cell.agent_name, cell.setting_key, one.seed_start))
        for key in ("steps", "cum_regret", "final_regret"):
            assert single[key] == chunked[key], (cell.agent_name, key, single[key], chunked[key])


class _Killed(BaseException):
    pass


def test_resume_after_kill_no_loss_no_duplicates(tmp_path):
    cells, _ = plan(TINY, ["HierTS"])
    reference = ResultStore(tmp_path / "full")
    reference.open(TINY)
    execute(cells, reference, progress=False)

    store = ResultStore(tmp_path / "killed")
    store.open(TINY)
    calls = []

    def dying(cell):
        calls.append(cell.id)
        if len(calls) == 4:
            record = run_cell(cell)  # file reaches the disk, the manifest does not: killed in between
            (store.cells_dir / f"{cell.id}.json").write_text(json.dumps(record))
            raise _Killed
        return run_cell(cell)

    with pytest.raises(_Killed):
        execute(cells, store, progress=False, worker=dying)
    assert len(store.completed()) == 3
    with pytest.raises(TamperedResultsError, match="not in the index"):
        store.verify()
    execute(cells, store, progress=False)
    assert store.completed() == {c.id for c in cells}
    store.verify(TINY.hash)
    assert _finals(store) == _finals(reference)
    assert len(store.rows()) == len(reference.rows())
    assert execute(cells, store, progress=False) == []  # nothing left


def test_report_and_tamper_detection(tmp_path):
    cells, _ = plan(TINY, ["HierTS"])
    store = ResultStore(tmp_path)
    store.open(TINY)
    execute(cells, store, progress=False)
    text, ranks = build_report(tmp_path, expected_hash=TINY.hash)
    assert "| rank | agent |" in text and (tmp_path / "LEADERBOARD.md").exists()
    assert len(list(tmp_path.glob("*.png"))) == len(TINY.settings)
    assert ranks[0]["agent"] == "OracleTS" and ranks[-1]["agent"] == "Uniform"
    with pytest.raises(TamperedResultsError, match="expected hash"):
        build_report(tmp_path, expected_hash=dataclasses.replace(TINY, version=9).hash)
    with pytest.raises(TamperedResultsError, match="holds results of suite"):
        store.open(dataclasses.replace(TINY, num_seeds=6))
    # hand edit of one cell file
    path = next(store.cells_dir.glob("HierTS*.json"))
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"final_regret":', b'"final_regret":0.0,"x":', 1))
    with pytest.raises(TamperedResultsError, match="sha256"):
        build_report(tmp_path)
    path.write_bytes(original[: len(original) // 2])  # truncated
    with pytest.raises(TamperedResultsError, match="sha256"):
        build_report(tmp_path)
    path.unlink()
    with pytest.raises(TamperedResultsError, match="missing"):
        build_report(tmp_path)
    path.write_bytes(original)
    build_report(tmp_path)
    manifest = json.loads(store.manifest_path.read_text())
    manifest["suite"]["num_seeds"] = 3  # the spec no longer matches its hash
    store.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(TamperedResultsError, match="hashes to"):
        build_report(tmp_path)


@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_distributed_backends_give_the_same_rows(tmp_path, backend):
    pytest.importorskip("distributed" if backend == "dask" else "ray")
    cells, _ = plan(TINY, [])
    cells = cells[:4]
    local = ResultStore(tmp_path / "local")
    local.open(TINY)
    execute(cells, local, progress=False)
    remote = ResultStore(tmp_path / backend)
    remote.open(TINY)
    # no address: each backend starts (and stops) its own local cluster, never a stale one
    execute(cells, remote, jobs=1 if backend == "ray" else 2, backend=backend, progress=False)

    def strip(rows):
        drop = {"cell_wall_time", "seconds", "host", "pid"}
        return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in rows)

    assert strip(remote.rows()) == strip(local.rows())


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["repair"], ["submit"], ["list"]])
def test_cli_help_is_complete(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    words = {
        (): ["run", "report", "repair", "submit", "list"],
        ("run",): ["--agent", "--suite", "--seeds", "--out", "--jobs", "--backend", "--address", "--device",
                   "sb3:ALGO"],
        ("report",): ["DIR", "--export"],
        ("repair",): ["DIR", "quarantine"],
        ("submit",): ["--timeout", "--memory"],
        ("list",): [],
    }[tuple(command)]
    for w in words:
        assert w in out


def test_cli_errors_list_what_exists(capsys, tmp_path):
    assert cli.main(["run", "--suite", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown suite 'nope'; available suites: quick, standard, coco, offline" in capsys.readouterr().err
    assert cli.main(["run", "--agent", "NoSuchAgent", "--suite", "quick", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "unknown agent spec 'NoSuchAgent'" in err and "HierTS" in err and "sb3:ALGO" in err
    assert cli.main(["run", "--agent", "no/such/file.py:f", "--out", str(tmp_path / "b")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["run", "--agent", "sb3:PPO", "--out", str(tmp_path / "c")]) == 2
    assert "sb3:ALGO:path/to/model.zip" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "suite quick" in out and "HierTS" in out


def test_offline_suite_scores_learners(tmp_path):
    suite = Suite(
        name="tiny-offline",
        version=1,
        kind="offline",
        num_seeds=2,
        chunk=2,
        settings=(
            Setting(
                "HierGaussian-v0", {"num_tasks": 3, "num_actions": 3, "dim": 2}, 30, ("HG",), oracle="optimal"
            ),
        ),
    )
    cells, skipped = plan(suite, ["HierOPO", "FlatOPO", "HierTS"])
    assert {c.agent_name for c in cells} == {"HierOPO", "FlatOPO"}  # no online reference runs offline
    assert [s[0] for s in skipped] == ["HierTS"]
    store = ResultStore(tmp_path)
    store.open(suite)
    execute(cells, store, progress=False)
    rows = store.rows()
    assert all(r["status"] == "ok" and r["score"] <= 1.0 and r["uniform_suboptimality"] > 0 for r in rows)
    for r in rows:  # score = 1 - suboptimality / uniform suboptimality (uniform 0, optimal 1)
        assert r["score"] == pytest.approx(1 - r["final_regret"] / r["uniform_suboptimality"])
    text, ranks = build_report(tmp_path)
    assert {e["agent"] for e in ranks} == {"HierOPO", "FlatOPO"} and "suboptimality" in text


def test_cli_rejects_bad_device_and_seeds(capsys, tmp_path):
    import torch

    if not torch.cuda.is_available():
        assert cli.main(["run", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert cli.main(["run", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err


def test_report_lists_incomplete_cells(tmp_path):
    cells, _ = plan(TINY, ["HierTS"])
    store = ResultStore(tmp_path)
    store.open(TINY)
    execute(cells[:-1], store, progress=False)  # the last chunk never ran (killed run)
    text, _ = build_report(tmp_path, plots=False)
    assert "## Incomplete" in text and f"{cells[-1].agent_name} on {cells[-1].setting_key}: 2/4 seeds" in text


def test_cli_report_warns_on_an_incomplete_directory(tmp_path, capsys):
    cells, _ = plan(TINY, [])
    store = ResultStore(tmp_path)
    store.open(TINY)
    execute(cells[:1], store, progress=False)
    assert cli.main(["report", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "is incomplete" in err


def test_sb3_baseline_through_the_runner(tmp_path):
    pytest.importorskip("stable_baselines3")
    from hbgym.leaderboards.suites import SB3_BASELINES

    rl_setting = next(s for s in SUITES["quick"].settings if "rl" in s.tags)
    suite = Suite("tiny-rl", 1, "online", (rl_setting, TINY.settings[0]), num_seeds=2, chunk=2, log_points=4)
    cells, skipped = plan(suite, [SB3_BASELINES[0]])
    assert {(c.agent_name, c.setting_key) for c in cells if c.role == "agent"} == {
        ("sb3-PPO", rl_setting.key)
    }
    assert [(a, k) for a, k, _ in skipped] == [("sb3-PPO", TINY.settings[0].key)]
    store = ResultStore(tmp_path)
    store.open(suite)
    execute(cells, store, progress=False)
    rows = [r for r in store.rows() if r["agent"] == "sb3-PPO"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)


def test_zoo_token_picks_up_every_online_agent_but_the_slow_and_offline_ones(monkeypatch):
    from hbgym.leaderboards.suites import ZOO, expand_agents, get_suite

    from hbgym import agents

    names = expand_agents((ZOO, "HierTS", "sb3:PPO:x.zip"))
    assert "HierTS" in names and "MTTS" in names and names.count("HierTS") == 1
    assert names[-1] == "sb3:PPO:x.zip"
    assert not {"NPM-TS", "GIDS", "HierOPO", "Uniform"} & set(names)  # slow, offline, reference
    assert {"NPM-TS", "GIDS"} <= set(get_suite("coco").agents)

    class NewAgent(agents.HierTS):  # an agent added to the zoo joins `--agent all` without a suite edit
        name = "NewAgent"

    monkeypatch.setitem(agents.AGENTS, "NewAgent", NewAgent)
    assert "NewAgent" in expand_agents((ZOO,))
