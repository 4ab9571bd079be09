"""hbgym.leaderboards.rl: tiny SB3 models trained in the test, loaded and played through the adapter."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from hbgym.agents.base import Agent  # noqa: E402
from hbgym.leaderboards import rl  # noqa: E402

from hbgym.wrappers import SufficientStatsObservation  # noqa: E402

ENV_ID = "HierGaussianMAB-v0"
ENV_KWARGS = {"schedule": "sequential", "num_tasks": 2, "horizon": 5, "num_actions": 4}
TINY = {
    "PPO": {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "A2C": {"n_envs": 2, "n_steps": 8},
    "DQN": {"learning_starts": 32, "buffer_size": 500, "batch_size": 16},
    "RecurrentPPO": {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Each algorithm trained for 256 steps on a 10-round setting (seconds each)."""
    out = tmp_path_factory.mktemp("models")
    return {algo: rl.train(algo, ENV_ID, ENV_KWARGS, 256, seed=1, out_path=out / algo.lower(),
                           hyperparams=TINY[algo]) for algo in rl.ALGOS}


def test_train_writes_model_and_sidecar(models):
    for algo, path in models.items():
        assert path.suffix == ".zip" and path.is_file()
        info = json.loads(path.with_suffix(".json").read_text())
        assert info["algo"] == algo and info["env_id"] == ENV_ID and info["env_kwargs"] == ENV_KWARGS
        assert info["total_timesteps"] == 256 and info["seed"] == 1
        assert min(info["train_env_seeds"]) >= rl.TRAIN_SEED_OFFSET  # disjoint from evaluation seeds
        assert "stable_baselines3" in info["versions"]
        for key, value in TINY[algo].items():
            if key != "n_envs":
                assert info["hyperparams"][key] == value


@pytest.mark.parametrize("algo", list(rl.ALGOS))
def test_adapter_plays_batched_rounds_end_to_end(models, algo):
    num_envs = 3
    vec = gym.make_vec(ENV_ID, num_envs=num_envs, **ENV_KWARGS)
    agent = rl.load_sb3_agent(algo, models[algo], vec, num_envs=num_envs)
    assert isinstance(agent, Agent)
    obs, _ = vec.reset(seed=0)
    agent.reset(seed=0)
    played = []
    for _ in range(vec.unwrapped.model.num_rounds):
        action = agent.act(obs)
        assert action.shape == (num_envs, 1) and action.dtype == np.int64
        assert action.min() >= 0 and action.max() < ENV_KWARGS["num_actions"]
        after, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        played.append(action)
        obs = after
    # deterministic policy: a reset replays the same actions on the same seeds
    obs, _ = vec.reset(seed=0)
    agent.reset(seed=0)
    for expected in played:
        action = agent.act(obs)
        np.testing.assert_array_equal(action, expected)
        after, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        obs = after


@pytest.mark.parametrize("algo", ["PPO", "RecurrentPPO"])
def test_adapter_reproduces_the_wrapper_observation_stream(models, algo):
    """Same (obs, action, reward) stream -> the adapter feeds predict exactly the wrapper's vectors."""
    env = gym.make(ENV_ID, **ENV_KWARGS)
    wrapped = SufficientStatsObservation(gym.make(ENV_ID, **ENV_KWARGS))
    agent = rl.load_sb3_agent(algo, models[algo], env, num_envs=1)
    seen = []
    predict = agent.model.predict

    def spy(observation, *args, **kwargs):
        seen.append(np.array(observation))
        return predict(observation, *args, **kwargs)

    agent.model.predict = spy
    obs, _ = env.reset(seed=5)
    vector, _ = wrapped.reset(seed=5)
    agent.reset(seed=5)
    done = False
    while not done:
        action = agent.act(obs)  # unbatched obs -> (L,) action
        assert action.shape == (1,)
        np.testing.assert_array_equal(seen[-1][0], vector)
        after, _, done, _, info = env.step(action)
        vector, *_ = wrapped.step(action)
        agent.update(obs, action, info["rewards"])
        obs = after
    assert len(seen) == env.unwrapped.model.num_rounds


def test_recurrent_state_is_kept_per_replicate(models):
    vec = gym.make_vec(ENV_ID, num_envs=2, **ENV_KWARGS)
    agent = rl.load_sb3_agent("RecurrentPPO", models["RecurrentPPO"], vec, num_envs=2)
    assert agent.recurrent
    obs, _ = vec.reset(seed=0)
    agent.act(obs)
    hidden, _ = agent._state  # (layers, B, hidden) each
    assert hidden.shape[:2] == (1, 2) and not agent._start.any()
    agent.reset()
    assert agent._state is None and agent._start.all()


def test_clear_errors(models, tmp_path):
    env = gym.make(ENV_ID, **ENV_KWARGS)
    with pytest.raises(ValueError, match="PPO, A2C, DQN, RecurrentPPO"):
        rl.load_sb3_agent("SAC", models["PPO"], env)
    with pytest.raises(ValueError, match="no PPO model file"):
        rl.load_sb3_agent("PPO", tmp_path / "missing.zip", env)
    other = gym.make(ENV_ID, **{**ENV_KWARGS, "num_actions": 5})
    with pytest.raises(ValueError, match="another env setting"):
        rl.load_sb3_agent("PPO", models["PPO"], other)
    with pytest.raises(ValueError, match="algo='SAC' is unknown"):
        rl.train("SAC", ENV_ID, ENV_KWARGS, 10, out_path=tmp_path / "x")
    with pytest.raises(ValueError, match="L == 1"):
        rl.train("PPO", "HierGaussian-v0", {"horizon": 5}, 10, out_path=tmp_path / "x")


def test_train_from_args_and_standalone_help(tmp_path, capsys):
    import argparse

    parser = rl.add_train_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--algo", "A2C", "--timesteps", "32", "--out", str(tmp_path / "a2c.zip"),
                              "--env-kwargs", json.dumps(ENV_KWARGS), "--hyperparams", '{"n_envs": 1}'])
    [path] = rl.train_from_args(args)
    assert path.is_file() and "A2C: 32 steps" in capsys.readouterr().out
    done = subprocess.run([sys.executable, "-m", "hbgym.leaderboards.rl", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "--algo" in done.stdout and "--hyperparams" in done.stdout


def _tree_digest(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_train_rl_without_out_writes_under_cwd_and_leaves_package_data_identical(tmp_path, monkeypatch):
    from hbgym.leaderboards import cli

    before = _tree_digest(rl.BASELINE_DIR)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train-rl", "--algo", "A2C", "--timesteps", "16", "--env-kwargs", json.dumps(ENV_KWARGS),
                     "--hyperparams", '{"n_envs": 1}'])
    assert code == 0
    assert _tree_digest(rl.BASELINE_DIR) == before  # byte-identical packaged baselines
    model = tmp_path / "rl_models" / "a2c.zip"
    info = json.loads(model.with_suffix(".json").read_text())
    assert info["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


def test_out_inside_an_installed_package_is_refused(tmp_path):
    with pytest.raises(ValueError, match="inside an installed package"):
        rl.output_path("PPO", tmp_path / "lib" / "site-packages" / "hbgym" / "ppo.zip")
    assert rl.output_path("PPO", None) == rl.DEFAULT_OUT_DIR / "ppo.zip"
    assert rl.output_path("DQN", tmp_path / "m") == tmp_path / "m.zip"


def test_packaged_baselines_carry_checksums_that_match():
    for algo in rl.ALGOS:
        rl.verify_checksum(rl.baseline_path(algo))  # raises on a mismatch or a missing sha256


def test_tampered_model_is_refused(models, tmp_path):
    env = gym.make(ENV_ID, **ENV_KWARGS)
    copy = tmp_path / "ppo.zip"
    copy.write_bytes(models["PPO"].read_bytes())
    copy.with_suffix(".json").write_text(models["PPO"].with_suffix(".json").read_text())
    rl.load_sb3_agent("PPO", copy, env)  # intact: loads
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match the sha256 in ppo.json"):
        rl.load_sb3_agent("PPO", copy, env)


def test_packaged_baseline_without_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(rl, "BASELINE_DIR", tmp_path)
    model = tmp_path / "ppo.zip"
    model.write_bytes(b"not a model")
    model.with_suffix(".json").write_text("{}")
    with pytest.raises(ValueError, match="no sha256"):
        rl.verify_checksum(model)
