"""Submissions: sandboxed cells (crash, hang, invalid actions, NaN), tampered dirs, the example agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hbgym.leaderboards import cli
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import SUITES, Setting, Suite

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_agent.py"

MINI = Suite(
    name="mini",
    version=1,
    kind="online",
    num_seeds=2,
    chunk=2,
    log_points=4,
    agents=("HierTS",),
    settings=(
        Setting("HierGaussian-v0", {"num_tasks": 2, "num_actions": 3, "tasks_per_round": 2}, 4, ("HG",)),
    ),
)

BAD_AGENTS = """
import time
import numpy as np


class Base:
    def __init__(self, env):
        self.k = env.unwrapped.model.num_actions

    def reset(self, seed=None):
        pass

    def update(self, obs, action, reward):
        pass


class Crash(Base):
    def act(self, obs):
        raise RuntimeError("agent bug")


class Hang(Base):
    def act(self, obs):
        time.sleep(3600)


class OutOfRange(Base):
    def act(self, obs):
        return np.full(obs["task"].shape, self.k)


class NaNs(Base):
    def act(self, obs):
        return np.full(obs["task"].shape, np.nan)


def crash(env):
    return Crash(env)


def hang(env):
    return Hang(env)


def out_of_range(env):
    return OutOfRange(env)


def nans(env):
    return NaNs(env)
"""


@pytest.fixture
def mini(monkeypatch):
    monkeypatch.setitem(SUITES, "mini", MINI)
    return MINI


def _submit(spec: str, out: Path, *extra: str) -> int:
    return cli.main(["submit", "--agent", spec, "--suite", "mini", "--out", str(out), "--quiet", *extra])


def test_submit_marks_bad_agents_failed_and_continues(mini, tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text(BAD_AGENTS)
    out = tmp_path / "res"
    specs = [f"{bad}:crash", f"{bad}:hang", f"{bad}:out_of_range", f"{bad}:nans", f"{EXAMPLE}:make_agent"]
    args = [a for s in specs for a in ("--agent", s)]
    code = cli.main(["submit", *args, "--suite", "mini", "--out", str(out), "--quiet", "--timeout", "10"])
    assert code == 1
    records = {r["cell"]["agent_name"]: r for r in ResultStore(out).records()}
    assert records["bad.crash"]["status"] == "failed" and "agent bug" in records["bad.crash"]["reason"]
    assert "timeout" in records["bad.hang"]["reason"]
    assert "out of range" in records["bad.out_of_range"]["reason"]
    assert "NaN" in records["bad.nans"]["reason"]
    assert records["my_agent.make_agent"]["status"] == "ok"
    assert records["Uniform"]["status"] == "ok" and records["OracleTS"]["status"] == "ok"
    text = (out / "LEADERBOARD.md").read_text()
    assert "## Failed cells" in text and "agent bug" in text and "my_agent.make_agent" in text
    assert "FAILED" in capsys.readouterr().err


def test_submit_rejects_tampered_results(mini, tmp_path, capsys):
    out = tmp_path / "res"
    assert _submit(f"{EXAMPLE}:make_agent", out) == 0
    cell = next((out / "cells").glob("Uniform*.json"))
    record = json.loads(cell.read_text())
    record["rows"][0]["final_regret"] = 0.0
    cell.write_text(json.dumps(record))
    capsys.readouterr()
    assert _submit("HierTS", out) == 2
    assert "does not match its sha256" in capsys.readouterr().err
    assert cli.main(["report", str(out)]) == 2
    assert "sha256" in capsys.readouterr().err
    assert not list((out / "cells").glob("HierTS*"))  # nothing ran on the tampered directory


def test_submit_rejects_other_suite_directory(mini, monkeypatch, tmp_path, capsys):
    out = tmp_path / "res"
    assert _submit(f"{EXAMPLE}:make_agent", out) == 0
    monkeypatch.setitem(SUITES, "mini", Suite(**{**MINI.__dict__, "version": 2}))
    capsys.readouterr()
    assert _submit(f"{EXAMPLE}:make_agent", out) == 2
    assert "expected hash" in capsys.readouterr().err


def test_example_agent_runs_end_to_end(mini, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "run",
                "--agent",
                f"{EXAMPLE}:make_agent",
                "--agent",
                "HierTS",
                "--suite",
                "mini",
                "--out",
                str(out),
                "--quiet",
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "my_agent.make_agent" in printed and "HierTS" in printed and "IQM score" in printed
    assert (out / "LEADERBOARD.md").exists() and list(out.glob("*.png"))
    names = {r["agent"] for r in ResultStore(out).rows()}
    assert names == {"my_agent.make_agent", "HierTS", "Uniform", "OracleTS"}
