"""Leaderboard guards that must fail loudly when broken (issue 19's surviving mutants).

Each test targets one bug that the older tests let through: the IQM computed as a plain mean, the
Uniform reference taken as a median, a row of another suite accepted by ``verify``, a negative action
accepted by the runner, a seed's regret mixed with its chunk, and no memory limit in ``submit``.
Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hbgym.leaderboards import cli
from hbgym.leaderboards.runner import plan, run_cell
from hbgym.leaderboards.scoring import iqm, iqm_ci, score_rows
from hbgym.leaderboards.store import ResultStore, TamperedResultsError
from hbgym.leaderboards.suites import SUITES, Setting, Suite

_HG = {"num_tasks": 2, "num_actions": 3, "tasks_per_round": 2}
SMALL = Suite(
    name="guards",
    version=1,
    kind="online",
    num_seeds=2,
    chunk=2,
    log_points=3,
    settings=(Setting("HierGaussian-v0", _HG, 3, ("HG",)),),
)


# --------------------------------------------------------------------------- scoring


def test_iqm_trims_a_skewed_tail():
    # 8 values; the IQM drops 2 each side: mean(2, 3, 4, 5) = 3.5 (the plain mean is 1115 / 8)
    x = np.array([5.0, 1.0, 2.0, 3.0, 4.0, 100.0, 1000.0, 0.0])
    assert iqm(x) == pytest.approx(3.5)
    scores = np.array([[0.0], [1.0], [2.0], [10.0]])  # 4 seeds x 1 env: trims 0 and 10 -> 1.5 (mean 3.25)
    assert iqm_ci(scores)[0] == pytest.approx(1.5)


def test_uniform_and_oracle_references_are_means_over_several_skewed_seeds():
    def row(agent: str, seed: int, regret: float) -> dict:
        return {"agent": agent, "setting": "a", "seed": seed, "final_regret": regret, "status": "ok"}

    uniform = [10.0, 10.0, 10.0, 30.0]  # mean 15, median 10
    oracle = [1.0, 1.0, 1.0, 5.0]  # mean 2, median 1
    rows = [row("Uniform", s, u) for s, u in enumerate(uniform)]
    rows += [row("OracleTS", s, o) for s, o in enumerate(oracle)]
    rows += [row("X", s, 8.5) for s in range(4)]
    table = score_rows(rows, [{"key": "a", "tags": ["F"], "oracle": "OracleTS", "uniform": "Uniform"}])
    assert table.references == {"a": {"uniform": 15.0, "oracle": 2.0}}
    np.testing.assert_allclose(table.scores["X"][:, 0], [0.5] * 4)  # (15 - 8.5) / (15 - 2)


# --------------------------------------------------------------------------- store


def test_verify_rejects_a_consistently_checksummed_row_of_another_suite(tmp_path):
    """A cell produced for another suite version, appended through the public API (so its checksum is
    right), must still be refused: every row carries its suite hash."""
    store = ResultStore(tmp_path)
    store.open(SMALL)
    other = dataclasses.replace(SMALL, version=2)
    cells, _ = plan(other, ["Uniform"], with_references=False)
    record = run_cell(cells[0])
    assert record["rows"][0]["suite_hash"] == other.hash != SMALL.hash
    with pytest.raises(TamperedResultsError, match="suite hash"):
        store.add(record)
        store.verify()


# --------------------------------------------------------------------------- runner


NEGATIVE = """
import numpy as np


class Negative:
    def __init__(self, env):
        pass

    def reset(self, seed=None):
        pass

    def act(self, obs):
        return np.full(np.shape(obs["task"]), -1)

    def update(self, obs, action, reward):
        pass


def make(env):
    return Negative(env)
"""


def test_a_negative_action_fails_the_cell(tmp_path):
    agent = tmp_path / "negative.py"
    agent.write_text(NEGATIVE)
    cells, _ = plan(SMALL, [f"{agent}:make"], with_references=False)
    record = run_cell(cells[0])
    assert record["status"] == "failed"
    assert "out of range" in record["reason"] and "-1" in record["reason"]


def test_each_seed_keeps_its_own_regret():
    """A seed's regret in a 2-seed chunk is the regret of that seed alone, not the chunk's sum."""
    cells, _ = plan(SMALL, ["Uniform"], with_references=False)
    pair = run_cell(cells[0])["rows"]
    alone = [run_cell(dataclasses.replace(cells[0], seed_start=r["seed"], num_seeds=1))["rows"][0]
             for r in pair]
    assert [r["final_regret"] for r in pair] == [r["final_regret"] for r in alone]
    assert pair[0]["final_regret"] != pair[1]["final_regret"]


# --------------------------------------------------------------------------- submit memory limit


HOG = """
import numpy as np


class Hog:
    def __init__(self, env):
        self.k = env.unwrapped.model.num_actions

    def reset(self, seed=None):
        pass

    def act(self, obs):
        self.block = np.ones(2**32, dtype=np.uint8)  # 4 GiB, touched: beyond a 3 GiB address space
        return np.zeros(np.shape(obs["task"]), dtype=np.int64)

    def update(self, obs, action, reward):
        pass


def make(env):
    return Hog(env)
"""


def test_submit_memory_limit_fails_the_cell_with_the_reason(monkeypatch, tmp_path: Path):
    monkeypatch.setitem(SUITES, "guards", SMALL)
    agent = tmp_path / "hog.py"
    agent.write_text(HOG)
    out = tmp_path / "res"
    code = cli.main(["submit", "--agent", f"{agent}:make", "--suite", "guards", "--out", str(out), "--quiet",
                     "--memory", "3", "--timeout", "120"])
    assert code == 1
    records = {r["cell"]["agent_name"]: r for r in ResultStore(out).records()}
    hog = records["hog.make"]
    assert hog["status"] == "failed" and "memory" in hog["reason"].lower(), hog["reason"]
    assert records["Uniform"]["status"] == "ok"  # the limit itself leaves room for a normal cell
