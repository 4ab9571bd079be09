"""hbgym.offline: logged datasets (collect, save/load, Minari), exact evaluation, bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import hbgym  # noqa: F401  (registers the ids)
from hbgym import offline, rng
from hbgym.offline import LoggedDataset, slots

SYNTH = {"num_tasks": 6, "num_actions": 5, "dim": 4, "sigma_q": 1.0, "sigma_0": 0.5,
         "action_set": "resampled", "horizon": 20}


class GreedyOracle:
    """The optimal per-task policy of a HierGaussian instance: argmax_a x_a^T theta_s."""

    num_envs = 1

    def __init__(self, theta: np.ndarray) -> None:
        self.theta = theta

    def act(self, obs):
        return np.einsum("lkd,ld->lk", obs["features"], self.theta[obs["task"]]).argmax(axis=1)


class Recorder:
    """A deterministic logging agent that records what it was shown and fed back."""

    name = "Recorder"

    def __init__(self) -> None:
        self.updates: list[tuple] = []
        self.seeds: list = []

    def reset(self, seed=None):
        self.seeds.append(seed)

    def act(self, obs):
        return obs["features"][..., 0].argmax(axis=-1)  # best first coordinate

    def update(self, obs, action, reward):
        self.updates.append((obs["task"].copy(), np.array(action), np.array(reward)))


@pytest.fixture(scope="module")
def dataset() -> LoggedDataset:
    return offline.collect("HierGaussian-v0", 400, seed=7, env_kwargs=SYNTH)


def test_collect_shapes_metadata_and_uniform_logging(dataset):
    n, m, k = 400, SYNTH["num_tasks"], SYNTH["num_actions"]
    assert len(dataset) == n and dataset.num_tasks == m and dataset.num_actions == k
    assert dataset.features.shape == (n, k, SYNTH["dim"]) and dataset.context is None
    assert dataset.tasks.dtype == np.int64 and dataset.actions.dtype == np.int64
    np.testing.assert_allclose(dataset.propensities, 1.0 / k)
    assert dataset.env_id == "HierGaussian-v0" and dataset.env_kwargs == SYNTH and dataset.seed == 7
    assert dataset.metadata["model"]["dim"] == 4 and dataset.metadata["task_sampling"] == "uniform"
    # uniform tasks and actions: every value appears, frequencies plausible
    assert dataset.task_counts().min() > 0.5 * n / m
    assert np.bincount(dataset.actions, minlength=k).min() > 0.5 * n / k
    assert np.all(np.abs(dataset.features) <= 0.5)
    np.testing.assert_array_equal(dataset.logged_features, dataset.features[np.arange(n), dataset.actions])


def test_collect_is_deterministic_and_seed_dependent(dataset):
    again = offline.collect("HierGaussian-v0", 400, seed=7, env_kwargs=SYNTH)
    assert again == dataset
    other = offline.collect("HierGaussian-v0", 400, seed=8, env_kwargs=SYNTH)
    assert not np.array_equal(other.rewards, dataset.rewards)
    assert other.metadata["instance_fingerprint"] != dataset.metadata["instance_fingerprint"]


def test_every_sample_is_the_simulators_slot_and_reward(dataset):
    """Regenerate each logged sample from its provenance: same task, context, mean and noise."""
    env = dataset.make_env()  # also checks the instance fingerprint
    base = env.unwrapped
    sim, inst = base.simulator, base.instance
    key0 = slots.seed_key(dataset.seed, slots.STREAM_LOG_CONTEXTS)
    for i in [0, 1, 57, 399]:
        episode, t, slot = dataset.provenance[i]
        keys = rng.hash_words(key0, np.array([episode]))
        tiled = slots.tile_instance(inst, 1)
        obs, means = sim.observe(keys, tiled, sim.prepare(keys, tiled), int(t))
        assert obs["task"][0, slot] == dataset.tasks[i]
        np.testing.assert_array_equal(obs["features"][0, slot], dataset.features[i])
        actions = np.zeros(obs["task"].shape, dtype=np.int64)
        actions[0, slot] = dataset.actions[i]
        chosen = np.take_along_axis(means, actions[..., None], axis=-1)[..., 0]
        reward = sim.draw_rewards(keys, int(t), actions, chosen)[0, slot]
        assert reward == dataset.rewards[i]
        theta = inst.task_params[dataset.tasks[i]]
        assert np.isclose(chosen[0, slot], dataset.features[i, dataset.actions[i]] @ theta)
    # samples are distinct slots (independent contexts)
    assert len({tuple(p) for p in dataset.provenance}) == len(dataset)


def test_collect_leaves_env_on_the_dataset_instance():
    env = gym.make("HierGaussian-v0", **SYNTH)
    ds = offline.collect(env, 50, seed=1)
    fp = offline.instance_fingerprint(env.unwrapped.instance)
    assert fp == ds.metadata["instance_fingerprint"]
    assert offline.instance_fingerprint(ds.make_env().unwrapped.instance) == fp
    assert ds.env_kwargs == SYNTH  # read from the env's spec


def test_task_sampling_schedule_and_probabilities():
    meta = offline.collect("HierGaussian-v0", 30, seed=0, task_sampling="schedule",
                           env_kwargs={"schedule": "meta", "horizon": 10, "num_tasks": 4})
    np.testing.assert_array_equal(meta.tasks, np.repeat([0, 1, 2], 10))  # the env's own order
    assert [tuple(p[1:]) for p in meta.provenance[:3]] == [(0, 0), (1, 0), (2, 0)]
    # a task that acts rarely in the env's schedule is still served (more context episodes)
    probs = [0.7, 0.1, 0.1, 0.1]
    ds = offline.collect("HierGaussian-v0", 400, seed=0, task_sampling=probs,
                         env_kwargs={"schedule": "arrival", "horizon": 5, "num_tasks": 4,
                                     "arrival_probs": [0.97, 0.01, 0.01, 0.01]})
    assert abs(ds.task_counts()[0] / 400 - 0.7) < 0.1
    np.testing.assert_allclose(ds.metadata["task_sampling"], probs)


def test_collect_on_other_families_and_context_keys():
    ds = offline.collect("MixedEffect-v0", 60, seed=2, env_kwargs={"num_actions": 7, "horizon": 30})
    assert ds.num_tasks == 1 and ds.features.shape == (60, 7, 2)
    ds.check_compatible(gym.make("MixedEffect-v0", num_actions=7, horizon=30))


def test_logging_agent_acts_on_env_shaped_observations_and_can_learn():
    rec = Recorder()
    ds = offline.collect("HierGaussian-v0", 23, logging_policy=rec, seed=4, env_kwargs=SYNTH, learn=True)
    assert ds.propensities is None and ds.metadata["logging_policy"] == "Recorder"
    assert rec.seeds == [4]
    np.testing.assert_array_equal(ds.actions, ds.features[..., 0].argmax(axis=1))
    # shown in chunks of the env's L = 5 (last one shorter) and fed the logged rewards back
    assert [len(u[0]) for u in rec.updates] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([u[2] for u in rec.updates]), ds.rewards)
    # the rewards are the env's for those actions: the same as logging them any other way
    uni = offline.collect("HierGaussian-v0", 23, seed=4, env_kwargs=SYNTH)
    same = ds.actions == uni.actions
    np.testing.assert_array_equal(ds.rewards[same], uni.rewards[same])


def test_torch_agent_as_logging_policy():
    from hbgym.agents.base import UniformAgent

    env = gym.make("HierGaussian-v0", **SYNTH)
    ds = offline.collect(env, 40, logging_policy=UniformAgent.from_env(env), seed=0)
    assert ds.metadata["logging_policy"] == "Uniform" and ds.propensities is None


def test_save_load_round_trip_and_atomic_write(dataset, tmp_path):
    path = tmp_path / "log.npz"
    dataset.save(path)
    assert sorted(os.listdir(tmp_path)) == ["log.npz"]  # no temp file left behind
    loaded = offline.load(path)
    assert loaded == dataset
    assert loaded.head(10) == dataset.take(slice(0, 10))


def test_minari_round_trip_is_lossless(dataset, tmp_path, monkeypatch):
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    path = tmp_path / "log.npz"
    dataset.save(path)
    loaded = offline.load(path)
    other = offline.collect("HierGaussian-v0", 50, seed=9, env_kwargs=SYNTH)
    exported = offline.to_minari([loaded, other], "hbgym/hiergaussian/test-v0")
    assert exported.total_episodes == 2 and exported.total_steps == 450
    back = offline.from_minari("hbgym/hiergaussian/test-v0")
    assert back[0] == dataset and back[1] == other
    # the Minari dataset recovers the env with the dataset's kwargs
    env = exported.recover_environment()
    assert env.unwrapped.model.num_actions == SYNTH["num_actions"]
    # an agent-logged dataset (no propensities) round-trips too
    rec = offline.collect("HierGaussian-v0", 12, logging_policy=Recorder(), seed=1, env_kwargs=SYNTH)
    offline.to_minari(rec, "hbgym/hiergaussian/agent-v0")
    assert offline.from_minari("hbgym/hiergaussian/agent-v0") == [rec]


# --------------------------------------------------------------------------- evaluation


def test_optimal_policy_has_zero_and_uniform_positive_suboptimality(dataset):
    env = dataset.make_env()
    ctx = offline.evaluation_contexts(env, 300, seed=0)
    assert ctx.tasks.shape == (300 * SYNTH["num_tasks"],)
    oracle = GreedyOracle(env.unwrapped.instance.task_params)
    sub = ctx.suboptimality(oracle)
    np.testing.assert_allclose(sub, 0.0, atol=1e-12)
    np.testing.assert_allclose(ctx.suboptimality(oracle, width=5), 0.0, atol=1e-12)
    np.testing.assert_allclose(ctx.value_of_actions(ctx.mean_rewards.argmax(1)), ctx.optimal_value())
    uniform_gap = ctx.optimal_value() - ctx.uniform_value()
    assert np.all(uniform_gap > 0)
    # a random-action policy's Monte Carlo value agrees with the exact uniform value
    gen = np.random.default_rng(0)
    random_policy = lambda obs: gen.integers(SYNTH["num_actions"], size=len(obs["task"]))  # noqa: E731
    np.testing.assert_allclose(ctx.suboptimality(random_policy).mean(), uniform_gap.mean(), atol=0.05)
    # values are exact given the contexts: the true means of the chosen actions
    theta = env.unwrapped.instance.task_params
    np.testing.assert_allclose(ctx.mean_rewards, np.einsum("nkd,nd->nk", ctx.observations["features"],
                                                            theta[ctx.tasks]))


def test_evaluation_contexts_are_fixed_and_independent_of_the_log(dataset):
    env = dataset.make_env()
    a = offline.evaluation_contexts(env, 50, seed=0)
    b = offline.evaluation_contexts(env, 50, seed=0)
    np.testing.assert_array_equal(a.observations["features"], b.observations["features"])
    assert not np.isin(a.observations["features"][:, 0, 0], dataset.features[:, 0, 0]).any()


def test_evaluate_learner_with_a_plain_factory():
    score = offline.evaluate_learner(
        lambda env, ds: GreedyOracle(env.unwrapped.instance.task_params),
        "HierGaussian-v0", SYNTH, num_samples=20, seed=3, num_contexts=100)
    assert score.suboptimality == pytest.approx(0.0, abs=1e-12) and float(score) == score.suboptimality
    assert score.normalized_score == pytest.approx(1.0) and score.uniform_suboptimality > 0
    worst = offline.evaluate_learner(lambda env, ds: (lambda obs: np.zeros(len(obs["task"]), int)),
                                     "HierGaussian-v0", SYNTH, num_samples=20, seed=3, num_contexts=100)
    assert worst.suboptimality > 0 and worst.per_task.shape == (SYNTH["num_tasks"],)


# --------------------------------------------------------------------------- bad input


def _arrays(n=4, k=3, d=2):
    return dict(tasks=np.arange(n) % 2, actions=np.zeros(n, int), rewards=np.ones(n),
                observations={"features": np.zeros((n, k, d))}, num_tasks=2, num_actions=k)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rewards": np.array([1.0, np.nan, 0.0, 1.0])}, "rewards must be finite"),
        ({"tasks": np.array([0, 1, 2, 0])}, r"tasks must be in \[0, 1\]"),
        ({"tasks": np.array([0, -1, 1, 0])}, r"tasks must be in \[0, 1\]"),
        ({"actions": np.array([0, 3, 0, 0])}, r"actions must be in \[0, 2\]"),
        ({"tasks": np.array([0.0, 1.0, 0.0, 1.0])}, "tasks must be a 1-D integer array"),
        ({"rewards": np.ones(3)}, r"rewards must be a real array of shape \(4,\)"),
        ({"observations": {"features": np.zeros((4, 2, 2))}}, r"must have shape \(n, K=3, d\)"),
        ({"observations": {"features": np.full((4, 3, 2), np.nan)}}, "NaN or inf"),
        ({"observations": {}}, "non-empty dict"),
        ({"propensities": np.array([0.5, 0.0, 1.0, 1.0])}, r"propensities must be in \(0, 1\]"),
        ({"num_tasks": 0}, "num_tasks must be a positive integer"),
        ({"metadata": {"x": object()}}, "JSON-serialisable"),
    ],
)
def test_bad_dataset_raises_clear_errors(change, message):
    kwargs = {**_arrays(), **change}
    with pytest.raises(ValueError, match=message):
        LoggedDataset(**kwargs)


def test_dataset_not_matching_env_raises(dataset):
    with pytest.raises(ValueError, match="num_actions: dataset 5 vs env 10"):
        dataset.check_compatible(gym.make("HierGaussian-v0", num_tasks=6, dim=4))
    with pytest.raises(ValueError, match="feature dim d: dataset 4 vs env 2"):
        dataset.check_compatible(gym.make("HierGaussian-v0", num_tasks=6, num_actions=5))
    dataset.check_compatible(gym.make("HierGaussian-v0", **SYNTH))


def test_load_rejects_corrupt_and_foreign_files(dataset, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        offline.load(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.ones(3))
    with pytest.raises(ValueError, match="not an hbgym logged dataset"):
        offline.load(foreign)
    path = tmp_path / "old.npz"
    dataset.save(path)
    arrays = dict(np.load(path))
    text = str(arrays["metadata"])
    arrays["metadata"] = np.array(text.replace('"schema_version": 1', '"schema_version": 99'))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="schema_version 99"):
        offline.load(path)
    arrays["metadata"] = np.array('{"schema_version": 1}')
    arrays["rewards"] = np.full(len(dataset), np.nan)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="rewards must be finite"):
        offline.load(path)


def test_collect_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        offline.collect("HierGaussian-v0", 0)
    with pytest.raises(ValueError, match="logging_policy='greedy' is unknown"):
        offline.collect("HierGaussian-v0", 5, logging_policy="greedy")
    with pytest.raises(ValueError, match="task_sampling='round_robin' is unknown"):
        offline.collect("HierGaussian-v0", 5, task_sampling="round_robin")
    with pytest.raises(ValueError, match="probabilities must be 10 non-negative"):
        offline.collect("HierGaussian-v0", 5, task_sampling=[0.5, 0.5])
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        offline.collect("HierGaussian-v0", 5, seed=-1)
    with pytest.raises(ValueError, match="single env"):
        offline.collect(gym.make_vec("HierGaussian-v0", num_envs=2), 5)
    with pytest.raises(ValueError, match="outside"):
        offline.collect("HierGaussian-v0", 5, logging_policy=lambda obs: np.full(len(obs["task"]), 10))
    with pytest.raises(ValueError, match="expected integer actions of shape"):
        offline.collect("HierGaussian-v0", 5, logging_policy=lambda obs: np.zeros(len(obs["task"])))


def test_task_that_never_acts_raises(monkeypatch):
    monkeypatch.setattr(slots, "_MAX_CONTEXT_EPISODES", 8)
    with pytest.raises(ValueError, match=r"tasks \[1\] never"):
        offline.collect("HierGaussian-v0", 20, seed=0, task_sampling=[0.5, 0.5],
                        env_kwargs={"num_tasks": 2, "schedule": "arrival", "horizon": 5,
                                    "arrival_probs": [1.0, 0.0]})


def test_dataset_make_env_detects_a_different_instance(dataset):
    tampered = dataset.take(slice(None))
    tampered.metadata = {**dataset.metadata, "seed": dataset.seed + 1}
    with pytest.raises(ValueError, match="fingerprint mismatch"):
        tampered.make_env()


def test_offline_module_does_not_import_torch():
    code = ("import sys, hbgym.offline as o; o.collect('HierGaussian-v0', 5, seed=0); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "False"
