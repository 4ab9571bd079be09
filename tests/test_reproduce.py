"""The `paper` suites and the reproduce report: claims decided from paired seeds, end to end."""

from __future__ import annotations

import numpy as np
import pytest
from hbgym.leaderboards import reproduce
from hbgym.leaderboards.reproduce import CLAIMS, Claim, check, final_by_seed
from hbgym.leaderboards.suites import PAPER, PAPER_OFFLINE, Setting, Suite


def finals(**sides: list[float]) -> dict[tuple[str, str], dict[int, float]]:
    return {("t", agent): dict(enumerate(values)) for agent, values in sides.items()}


def test_a_clearly_lower_left_side_holds_and_a_reversed_one_does_not():
    data = finals(a=[1.0, 2.0, 3.0, 4.0], b=[5.0, 6.5, 7.0, 8.0])
    assert check(Claim("p", "fig", ("t", "a"), ("t", "b")), data).status == "held"
    reversed_ = check(Claim("p", "fig", ("t", "b"), ("t", "a")), data)
    assert reversed_.status == "not held" and "reversed" in reversed_.reason
    assert reversed_.diff_ci[0] > 0 and reversed_.num_seeds == 4


def test_pairing_by_seed_decides_a_claim_that_unpaired_means_could_not():
    # large between-seed spread, constant paired gap of 1: only pairing shows a < b
    base = [10.0, 100.0, 1000.0, 50.0, 500.0]
    data = finals(a=base, b=[x + 1.0 for x in base])
    verdict = check(Claim("p", "fig", ("t", "a"), ("t", "b")), data)
    assert verdict.status == "held"
    np.testing.assert_allclose(verdict.diff_ci, (-1.0, -1.0))


def test_noise_without_a_difference_is_not_significant_and_approx_holds():
    rng = np.random.default_rng(0)
    a = rng.normal(100, 10, 30)
    b = a + rng.normal(0, 5, 30)
    data = finals(a=list(a), b=list(b))
    lt = check(Claim("p", "fig", ("t", "a"), ("t", "b")), data)
    assert lt.status == "not held" and "not significant" in lt.reason
    assert check(Claim("p", "fig", ("t", "a"), ("t", "b"), "~"), data).status == "held"
    far = finals(a=list(a), b=list(2 * a))
    assert check(Claim("p", "fig", ("t", "a"), ("t", "b"), "~"), far).status == "not held"


def test_factor_scales_the_right_side_and_missing_results_are_not_run():
    data = finals(a=[30.0, 29.0, 31.0], b=[20.0, 22.0, 21.0])
    assert check(Claim("p", "fig", ("t", "a"), ("t", "b")), data).status == "not held"
    assert check(Claim("p", "fig", ("t", "a"), ("t", "b"), factor=10.0), data).status == "held"
    assert check(Claim("p", "fig", ("t", "a"), ("t", "c")), data).status == "not run"
    with pytest.raises(ValueError, match="relation"):
        Claim("p", "fig", ("t", "a"), ("t", "b"), relation=">")


def test_every_claim_names_a_setting_tag_and_agent_of_the_paper_suites():
    settings = {t: s for suite in (PAPER, PAPER_OFFLINE) for s in suite.settings for t in s.tags}
    for claim in CLAIMS:
        for tag, agent in (claim.left, claim.right):
            assert tag in settings, claim
            suite = PAPER if settings[tag] in PAPER.settings else PAPER_OFFLINE
            assert agent in (settings[tag].agents or suite.agents), claim
    mets = [s for s in PAPER.settings if "mets-fig1-linear" in s.tags][0]
    assert mets.horizon == 5000 and PAPER.num_seeds == 50 and mets.kwargs == {}
    coco = [s for s in PAPER.settings if s.family == "PartialContext"]
    assert len(coco) == 4 and {PAPER.num_seeds_of(s) for s in coco} == {10}  # the CoCo paper's 10 seeds
    assert all(PAPER.num_seeds_of(s) == 50 for s in PAPER.settings if s not in coco)


def test_failed_rows_are_ignored():
    rows = [
        {"tags": ["F", "t"], "agent": "a", "seed": 1, "final_regret": 3.0, "status": "ok"},
        {"tags": ["F", "t"], "agent": "a", "seed": 2, "status": "failed"},
    ]
    assert final_by_seed(rows) == {("F", "a"): {1: 3.0}, ("t", "a"): {1: 3.0}}


def test_reproduce_end_to_end_on_a_tiny_run(tmp_path, monkeypatch):
    """A small suite tagged like the paper's HierTS Fig. 2(a) runs through the runner and the report."""
    from hbgym.leaderboards.cli import main
    from hbgym.leaderboards.runner import execute, plan
    from hbgym.leaderboards.store import ResultStore

    setting = Setting(
        "HierGaussian-v0",
        {"sigma_q": 0.5, "num_tasks": 3},
        10,
        ("HierGaussian", "hierts-fig2a"),
        agents=("HierTS", "FlatTS"),
    )
    suite = Suite(
        "tiny-paper", 1, "online", (setting,), num_seeds=3, chunk=3, agents=("HierTS", "FlatTS", "LinTS")
    )
    cells, skipped = plan(suite, list(suite.agents))
    assert ("LinTS", setting.key, "not in this setting's paper comparison (Setting.agents)") in skipped
    assert {c.agent_name for c in cells} == {"Uniform", "OracleTS", "HierTS", "FlatTS"}
    store = ResultStore(tmp_path / "res")
    store.open(suite)
    execute(cells, store, jobs=1, progress=False)
    assert main(["reproduce", str(tmp_path / "res"), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "REPRODUCE.md").read_text()
    assert "HierTS < FlatTS (hierts-fig2a)" in text and "3 seeds" in text
    assert "not run" in text  # the other papers' settings are absent from this run
    path, verdicts = reproduce.write_report([tmp_path / "res"], tmp_path / "again")
    assert path.exists() and {v.status for v in verdicts} >= {"not run"}
    assert main(["reproduce", str(tmp_path / "missing")]) == 2
