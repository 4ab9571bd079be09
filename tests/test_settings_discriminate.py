"""Every online setting separates learning from not learning (DESIGN.md sec. 6): an agent that always
plays action a scores clearly below the learners, at most 0.5 on the normalised scale (uniform 0,
oracle 1). The quick suite runs at full size; the other suites at fewer seeds and capped horizons
(marked slow)."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from hbgym.leaderboards.runner import check_actions
from hbgym.leaderboards.scoring import normalized_score
from hbgym.leaderboards.specs import resolve
from hbgym.leaderboards.suites import SUITES, Setting

import hbgym  # noqa: F401

#: the bar of DESIGN.md sec. 6 ("clearly below the learners")
MAX_CONSTANT_SCORE = 0.5


class ConstantAgent:
    """Always plays ``action`` in every slot (a policy that does not learn)."""

    def __init__(self, action: int) -> None:
        self.action = action

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, obs):
        return np.full(np.asarray(obs["task"]).shape, self.action, dtype=np.int64)

    def update(self, obs, action, reward) -> None:
        return None


def final_regret(setting: Setting, agent, seeds: int) -> np.ndarray:
    """Cumulative pseudo-regret ``(seeds,)`` of a batched agent (or builder) on ``seeds`` paired seeds."""
    vec = gym.make_vec(setting.env_id, num_envs=seeds, **setting.env_kwargs)
    if callable(agent) and not hasattr(agent, "act"):
        agent = agent(vec)
    obs, _ = vec.reset(seed=10_000)
    agent.reset(seed=10_000)
    total = np.zeros(seeds)
    model = vec.unwrapped.model
    for _ in range(model.num_rounds):
        action = check_actions(agent.act(obs), obs["task"].shape, model.num_actions)
        next_obs, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        obs = next_obs
        total += info["regret"].sum(axis=1)
    vec.close()
    return total


def constant_scores(setting: Setting, seeds: int) -> dict[int, float]:
    """Mean normalised score of always-a for a in {0, 1, K - 1}."""

    def zoo(name: str):
        return lambda vec: resolve(name).build(vec, seeds, seed=10_000)

    uniform = final_regret(setting, zoo(setting.uniform), seeds).mean()
    oracle = 0.0 if setting.oracle == "optimal" else final_regret(setting, zoo(setting.oracle), seeds).mean()
    num_actions = gym.make(setting.env_id, **setting.env_kwargs).unwrapped.model.num_actions
    return {
        a: float(normalized_score(final_regret(setting, ConstantAgent(a), seeds), uniform, oracle).mean())
        for a in sorted({0, 1, num_actions - 1})
    }


#: the CoCo paper's own Fig. 2(a)/(b) scenarios, kept as published in the coco and paper suites: one arm
#: is (nearly) optimal for most users, so a constant policy is hard to beat on the normalised scale
#: (always-0 about 0.7 on C.1, always-1 about 0.96 on C.2); the quick and standard suites use C.3 instead
PAPER_AS_PUBLISHED = {
    "mixture": "CoCo App. C.1: arms 0 and 1 are near-optimal for both components",
    "partial_linear": "CoCo App. C.2: arm 1 is optimal for most users",
}


def _cases(suite_names: tuple[str, ...], max_horizon: int | None) -> list:
    cases = []
    for name in suite_names:
        suite = SUITES[name]
        if suite.kind != "online":
            continue
        for s in suite.settings:
            if max_horizon is not None and s.horizon is not None and s.horizon > max_horizon:
                s = dataclasses.replace(s, horizon=max_horizon)
            scenario = s.kwargs.get("scenario") if s.env_id == "PartialContext-v0" else None
            marks = (
                [pytest.mark.xfail(strict=True, reason=PAPER_AS_PUBLISHED[scenario])]
                if scenario in PAPER_AS_PUBLISHED
                else []
            )
            cases.append(pytest.param(s, id=f"{name}-{s.key}", marks=marks))
    return cases


def _check(setting: Setting, seeds: int) -> None:
    try:
        scores = constant_scores(setting, seeds)
    except (FileNotFoundError, ImportError) as err:  # a data env whose dataset is not installed here
        pytest.skip(f"{setting.env_id}: {err}")
    bad = {a: round(v, 3) for a, v in scores.items() if v > MAX_CONSTANT_SCORE}
    assert not bad, f"{setting.key} ({setting.note or setting.kwargs}): constant actions score {bad} > 0.5"


@pytest.mark.parametrize("setting", _cases(("quick",), None))
def test_constant_actions_score_at_most_half_on_the_quick_suite(setting):
    _check(setting, seeds=8)


@pytest.mark.slow
@pytest.mark.parametrize("setting", _cases(("standard", "coco", "paper"), 300))
def test_constant_actions_score_at_most_half_on_the_other_suites(setting):
    _check(setting, seeds=4)
