"""Rendering (rgb_array / ansi), SB3's make_vec_env and Gymnasium's RecordVideo on every id."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import hbgym
from hbgym.envs.render import FRAME_SHAPE, EpisodeRecorder

#: every id; the data envs on their small synthetic data (no download, fast)
FAST: dict[str, dict[str, Any]] = {
    env_id: (hbgym.VARIANTS[env_id][0] if env_id.startswith(("MovieLens", "MNIST")) else {})
    for env_id in hbgym.ENV_IDS
}
#: one id per family (one env class each)
FAMILIES = ["HierGaussian-v0", "MixedEffect-v0", "MultiBandit-v0", "PartialContext-v0",
            "MovieLensMulti-v0", "MovieLensEffects-v0", "MNISTMulti-v0"]


@pytest.mark.parametrize("env_id", hbgym.ENV_IDS)
def test_render_modes_declared_and_frames_change(env_id):
    env = gym.make(env_id, render_mode="rgb_array", **FAST[env_id])
    assert set(env.metadata["render_modes"]) == {"rgb_array", "ansi"}
    assert env.metadata["render_fps"] > 0
    env.reset(seed=0)
    first = env.render()
    assert first.shape == FRAME_SHAPE and first.dtype == np.uint8
    for _ in range(3):
        env.step(env.action_space.sample())
    later = env.render()
    assert later.shape == FRAME_SHAPE
    assert not np.array_equal(first, later)  # the latest round and the progress bar are drawn


def test_render_off_records_nothing_and_returns_none():
    env = gym.make("HierGaussian-v0")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.unwrapped._recorder is None
    assert env.render() is None


def test_bad_render_mode_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'rgb'.*rgb_array.*ansi"):
        gym.make("HierGaussian-v0", render_mode="rgb")
    with pytest.raises(ValueError, match="vector env does not render"):
        gym.make_vec("HierGaussian-v0", num_envs=2, render_mode="rgb_array")


def test_ansi_shows_round_regret_and_optimal_action():
    env = gym.make("HierGaussianMAB-v0", render_mode="ansi", schedule="sequential", horizon=3)
    env.reset(seed=1)
    _, _, _, _, info = env.step(np.array([0]))
    text = env.render()
    assert text.startswith("round 1/30 ")
    assert f"cumulative regret {info['regret'][0]:.4g}" in text
    best = int(info["optimal_actions"][0])
    assert ("(optimal)" in text) == (best == 0)
    if best != 0:
        assert f"optimal {best}," in text


def test_recorder_per_task_regret_and_frame_panels():
    rec = EpisodeRecorder(num_tasks=3, num_actions=4, tasks_per_round=2, num_rounds=10)
    means = np.array([[0.0, 1.0, 0.5, 0.2], [0.3, 0.0, 0.9, 0.1]])
    rec.record(np.array([2, 0]), np.array([1, 0]), means, np.array([0.0, 0.6]))
    rec.record(np.array([2, 2]), np.array([0, 3]), means, np.array([1.0, 0.8]))
    np.testing.assert_allclose(rec.task_regret, [0.6, 0.0, 1.8])
    assert rec.total == pytest.approx(2.4)
    frame = rec.rgb_array()
    bars = frame[92:151, 4:316]
    orange = np.all(bars == [255, 127, 14], axis=-1)
    grey = np.all(bars == [150, 150, 150], axis=-1)
    # task 2 acted last (orange, tallest bar: 1.8), task 0 is grey at 1/3 of it, task 1 has no bar
    assert orange.sum(axis=0).max() == 58 and grey.sum(axis=0).max() == int(0.6 / 1.8 * 58)
    last = frame[160:228, 4:316]
    red = np.all(last == [214, 39, 40], axis=-1)
    green = np.all(last == [44, 160, 44], axis=-1)
    assert red[:, :78].any() and green[:, 78:156].any()  # slot 0: chose 0, best is 1
    assert red[:, 234:].any() and green[:, 156:234].any()  # slot 1: chose 3, best is 2
    # progress bar: 2 of 10 rounds
    assert np.all(frame[233, 4 : 4 + 62] == [31, 119, 180]) and np.all(frame[233, 70:316] == 150)


def test_recorder_bins_many_tasks_and_long_curves():
    rec = EpisodeRecorder(num_tasks=10_000, num_actions=2, tasks_per_round=1, num_rounds=5000)
    for t in range(5000):
        rec.record(np.array([t % 10_000]), np.array([0]), np.array([[0.0, 1.0]]), np.array([1.0]))
    assert len(rec.curve) <= 513 and 0 <= rec.total - rec.curve[-1] < rec.stride
    frame = rec.rgb_array()
    curve = np.all(frame[4:84, 4:316] == [31, 119, 180], axis=-1)
    assert curve[:, 1:].any(axis=0).all()  # the whole episode: the curve reaches the right edge
    assert curve[1, -1] and curve[-2, 1]  # from (0, 0) to (end, max)


@pytest.mark.parametrize("env_id", hbgym.ENV_IDS)
def test_sb3_make_vec_env_and_a_few_ppo_steps(env_id):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=FAST[env_id])
    assert vec.render_mode == "rgb_array"
    model = PPO("MultiInputPolicy", vec, n_steps=8, batch_size=8, n_epochs=1, device="cpu", seed=0)
    model.learn(total_timesteps=16)
    obs = vec.reset()
    action, _ = model.predict(obs)
    vec.step(action)
    frames = vec.get_images()
    assert len(frames) == 2 and frames[0].shape == FRAME_SHAPE
    vec.close()


@pytest.mark.parametrize("env_id", FAMILIES)
def test_record_video(env_id, tmp_path):
    moviepy = pytest.importorskip("moviepy")
    from gymnasium.wrappers import RecordVideo

    env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=6, **FAST[env_id])
    env = RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda episode: True, name_prefix="clip")
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    env.close()
    (video,) = (tmp_path / "videos").glob("clip-episode-0.mp4")
    clip = moviepy.VideoFileClip(str(video))
    try:
        frames = list(clip.iter_frames())
        assert tuple(clip.size) == (FRAME_SHAPE[1], FRAME_SHAPE[0])
        assert 6 <= len(frames) <= 7  # reset + 6 steps (the decoder may drop the last frame)
        assert frames[-1].shape == FRAME_SHAPE and frames[-1].std() > 0  # not a blank frame
        assert not np.array_equal(frames[0], frames[-1])
    finally:
        clip.close()


@pytest.mark.parametrize("render_mode", ["rgb_array", "ansi"])
@pytest.mark.parametrize("env_id", FAMILIES)
def test_check_env_with_render_mode(env_id, render_mode):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, render_mode=render_mode, **FAST[env_id])
    check_env(env.unwrapped)  # includes Gymnasium's render checks for this mode
    env.reset(seed=0)
    out = env.render()
    assert isinstance(out, str if render_mode == "ansi" else np.ndarray)
