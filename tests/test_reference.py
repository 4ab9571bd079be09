"""The README's reference tables are current, and every family's model has the common attributes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import pytest

import hbgym
from hbgym import models, reference

README = Path(__file__).resolve().parents[1] / "README.md"
REGENERATE = "run: python -m hbgym.reference --write README.md"
COMMON = ("num_tasks", "num_actions", "tasks_per_round", "num_rounds", "dim", "horizon", "noise_std")


def test_readme_models_block_is_current():
    text = README.read_text()
    assert reference.update(text, ("models",)) == text, REGENERATE


@pytest.mark.slow
def test_readme_observations_block_is_current():
    text = README.read_text()
    assert reference.update(text, ("observations",)) == text, REGENERATE


def test_every_family_model_has_the_common_attributes_and_consistent_rounds():
    for cls in reference.FAMILIES:
        assert {f.name for f in dataclasses.fields(cls)} >= set(COMMON)
    for env_id, kwargs in [("HierGaussian-v0", {"horizon": 5}), ("MixedEffect-v0", {"horizon": 7}),
                           ("MultiBandit-v0", {"horizon": 3}),
                           ("PartialContext-v0", {"num_batches": 3, "batch_size": 4, "steps_per_user": 2})]:
        model = gym.make(env_id, **kwargs).unwrapped.model
        assert model.num_rounds * model.tasks_per_round == model.num_tasks * model.horizon, env_id
    assert gym.make("HierGaussian-v0", horizon=5).unwrapped.model.num_rounds == 10  # per task, not rounds


def test_partial_context_old_names_are_read_only_aliases():
    model = gym.make("PartialContext-v0").unwrapped.model
    assert model.sigma == model.noise_std == 0.1 and model.feature_dim == model.dim == 2
    with pytest.raises(AttributeError):
        model.sigma = 1.0


def test_undocumented_field_is_reported():
    @dataclasses.dataclass(frozen=True)
    class Bad(models.BanditModel):
        """A model.

        Attributes:
            documented: yes.
        """

        documented: int = 0
        secret: int = 0

    assert reference.model_attributes(Bad) == {"documented": "yes."}
    reference.FAMILIES[Bad] = ("Bad-v0",)
    try:
        with pytest.raises(ValueError, match=r"Bad does not document \['secret'\]"):
            reference.models_table()
    finally:
        del reference.FAMILIES[Bad]


def test_update_needs_exactly_one_block():
    with pytest.raises(ValueError, match="reference:models"):
        reference.update("no markers here", ("models",))
    assert hbgym.ENV_IDS  # the observations table covers every registered id
