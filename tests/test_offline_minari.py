"""Minari export: id validated before touching disk, overwrite=, spaces that map onto the env's."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest

from hbgym import offline
from hbgym.offline.minari import check_dataset_id, slot_space

minari = pytest.importorskip("minari")
pytest.importorskip("h5py")

KWARGS = {"num_tasks": 3, "num_actions": 4, "dim": 2, "horizon": 5, "action_set": "resampled"}  # L = 5 > 1


@pytest.fixture
def store(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture(scope="module")
def logs():
    sizes = ((30, 0), (20, 1))
    return [offline.collect("HierGaussian-v0", n, seed=seed, env_kwargs=KWARGS) for n, seed in sizes]


def _listing(root) -> list[str]:
    """Every file and directory below ``root``."""
    return sorted(os.path.relpath(os.path.join(d, name), root)
                  for d, dirs, files in os.walk(root) for name in [*dirs, *files])


@pytest.mark.parametrize("bad", ["hbgym/hiergaussian/uniform", "no version", "a/b-v", "", "/x-v0", 3])
def test_malformed_id_raises_before_touching_disk(bad, logs, store):
    with pytest.raises(ValueError, match=r"malformed.*name-vN"):
        offline.to_minari(logs[0], bad)
    assert not store.exists() or _listing(store) == []
    assert minari.list_local_datasets() == {}


def test_good_ids_pass_the_check():
    for good in ("x-v0", "hbgym/hiergaussian/uniform-v12", "a_b/c-d-v3"):
        assert check_dataset_id(good) == good


def test_existing_id_raises_unless_overwrite(logs, store):
    dataset_id = "hbgym/test/replace-v0"
    offline.to_minari(logs[0], dataset_id)
    with pytest.raises(ValueError, match=r"already exists.*overwrite=True"):
        offline.to_minari(logs[1], dataset_id)
    assert offline.from_minari(dataset_id) == [logs[0]]  # the refused call changed nothing
    offline.to_minari(logs[1], dataset_id, overwrite=True)
    assert offline.from_minari(dataset_id) == [logs[1]]
    assert list(minari.list_local_datasets()) == [dataset_id]  # no leftover (hidden or not)
    assert [p.name for p in (store / "hbgym" / "test").iterdir() if p.is_dir()] == ["replace-v0"]


def test_failed_overwrite_restores_the_old_dataset(logs, store, monkeypatch):
    dataset_id = "hbgym/test/keep-v0"
    offline.to_minari(logs[0], dataset_id)

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        offline.to_minari(logs[1], dataset_id, overwrite=True)
    monkeypatch.undo()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    assert offline.from_minari(dataset_id) == [logs[0]]
    assert [p.name for p in (store / "hbgym" / "test").iterdir() if p.is_dir()] == ["keep-v0"]


def test_dataset_spaces_are_the_env_spaces_cut_to_one_slot(logs, store):
    exported = offline.to_minari(logs, "hbgym/test/spaces-v0")
    env = exported.recover_environment()
    assert env.unwrapped.model.tasks_per_round == 5
    env_space, ds_space = env.observation_space, exported.observation_space
    assert set(ds_space.spaces) == set(env_space.spaces) == {"task", "features"}
    for key in env_space.spaces:
        assert ds_space[key] == slot_space(env_space[key])
    assert ds_space["features"].shape == (1, 4, 2) and env_space["features"].shape == (5, 4, 2)
    np.testing.assert_array_equal(ds_space["features"].low, env_space["features"].low[:1])
    # the documented mapping: slot j of an env observation is a valid dataset step observation
    obs, _ = env.reset(seed=0)
    for j in range(5):
        assert ds_space.contains({key: obs[key][j : j + 1] for key in obs})
    # and every stored step observation lies in the dataset space
    episode = next(exported.iterate_episodes())
    assert ds_space.contains({key: np.asarray(value)[0] for key, value in episode.observations.items()})


def test_slot_space_rejects_other_spaces():
    with pytest.raises(ValueError, match="only Box and MultiDiscrete"):
        slot_space(gym.spaces.Discrete(3))
