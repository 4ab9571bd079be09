"""Registry-driven contract tests: every registered id and documented variant gets the same checks.

A new env family is covered automatically once it is added to ``hbgym.envs._ENVS`` (and its
variants to ``hbgym.envs.VARIANTS``).
"""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import hbgym
from tests.conftest import CASES, case_id, make_env, make_vec, rollout


@pytest.fixture(params=CASES, ids=[case_id(c) for c in CASES])
def case(request):
    return request.param


def test_gymnasium_check_env(case):
    env = make_env(case)
    check_env(env.unwrapped, skip_render_check=True)


def test_sb3_check_env(case):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sb3_checker.check_env(make_env(case).unwrapped, warn=False)


def test_spaces_and_info_contract(case):
    env = make_env(case)
    model = env.unwrapped.model
    obs, info = env.reset(seed=3)
    assert obs["task"].shape == (model.tasks_per_round,)
    assert env.observation_space.contains(obs)
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    L = model.tasks_per_round
    for key in ("rewards", "expected_rewards", "optimal_actions", "regret"):
        assert info[key].shape == (L,), key
    assert info["round"] == 0
    assert reward == pytest.approx(info["rewards"].sum())
    assert not truncated
    assert env.observation_space.contains(obs)


def test_same_seed_same_rollout_and_different_seed_differs(case):
    a = rollout(make_env(case), seed=11, rounds=15)
    b = rollout(make_env(case), seed=11, rounds=15)
    c = rollout(make_env(case), seed=12, rounds=15)
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1]), "different seeds gave identical rewards"


def test_pickle_round_trip_mid_episode(case):
    env = make_env(case).unwrapped
    env.reset(seed=5)
    env.action_space.seed(0)
    for _ in range(3):
        env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    action = env.action_space.sample()
    out1, out2 = env.step(action), clone.step(action)
    for x, y in zip(out1, out2, strict=False):
        if isinstance(x, dict):
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
        else:
            assert x == y


def test_full_episode_terminates_with_nonnegative_regret(case):
    env = make_env(case)
    model = env.unwrapped.model
    env.reset(seed=0)
    env.action_space.seed(0)
    for t in range(model.num_rounds):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.all(info["regret"] >= 0)
        assert terminated == (t == model.num_rounds - 1)
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(env.action_space.sample())


def test_optimal_actions_have_zero_regret(case):
    """Replaying a twin env's ``optimal_actions`` (same seed, same round) gives zero regret."""
    twin, env = make_env(case), make_env(case)
    twin.reset(seed=1)
    env.reset(seed=1)
    for _ in range(min(10, env.unwrapped.model.num_rounds)):
        _, _, _, _, info = twin.step(twin.action_space.sample())
        _, _, _, _, best = env.step(info["optimal_actions"])
        np.testing.assert_allclose(best["regret"], 0.0, atol=1e-12)
        assert np.all(best["expected_rewards"] >= info["expected_rewards"] - 1e-12)


def test_common_random_numbers(case):
    """The reward of action a in round t does not depend on the actions taken before."""
    env1, env2 = make_env(case), make_env(case)
    env1.reset(seed=21)
    env2.reset(seed=21)
    rng = np.random.default_rng(0)
    K, L = env1.unwrapped.model.num_actions, env1.unwrapped.model.tasks_per_round
    for _ in range(min(8, env1.unwrapped.model.num_rounds - 1)):  # different histories
        env1.step(rng.integers(K, size=L))
        env2.step(rng.integers(K, size=L))
    probe = rng.integers(K, size=L)
    _, r1, _, _, i1 = env1.step(probe)
    _, r2, _, _, i2 = env2.step(probe)
    np.testing.assert_array_equal(i1["rewards"], i2["rewards"])


def test_bad_actions_raise_and_leave_env_unchanged(case):
    env, ref = make_env(case).unwrapped, make_env(case).unwrapped
    env.reset(seed=2)
    ref.reset(seed=2)
    K, L = env.model.num_actions, env.model.tasks_per_round
    bad = [
        np.full(L, K),  # out of range
        np.full(L, -1),
        np.zeros(L + 1, dtype=np.int64),  # wrong shape
        np.zeros(L, dtype=np.float64),  # wrong dtype
        np.zeros((2, L), dtype=np.int64),
    ]
    for action in bad:
        with pytest.raises(ValueError) as err:
            env.step(action)
        assert str(K - 1) in str(err.value) or "shape" in str(err.value)
    good = np.zeros(L, dtype=np.int64)
    out, expected = env.step(good), ref.step(good)
    np.testing.assert_array_equal(out[4]["rewards"], expected[4]["rewards"])
    np.testing.assert_array_equal(out[0]["task"], expected[0]["task"])


def test_vector_env_slot_equals_single_env(case):
    num_envs, seed, rounds = 3, 100, 12
    vec = make_vec(case, num_envs)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = vec.reset(seed=seed)
    singles = [make_env(case) for _ in range(num_envs)]
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    rng = np.random.default_rng(7)
    K, L = singles[0].unwrapped.model.num_actions, singles[0].unwrapped.model.tasks_per_round
    for _ in range(min(rounds, vec.unwrapped.model.num_rounds)):
        for i in range(num_envs):
            for key in obs:
                np.testing.assert_array_equal(obs[key][i], single_obs[i][key])
        actions = rng.integers(K, size=(num_envs, L))
        obs, rewards, terminated, truncated, info = vec.step(actions)
        for i, env in enumerate(singles):
            single_obs[i], reward, term, _, single_info = env.step(actions[i])
            assert rewards[i] == pytest.approx(reward, abs=1e-12)
            assert terminated[i] == term
            np.testing.assert_allclose(info["regret"][i], single_info["regret"], atol=1e-12)


def test_vector_env_runs_full_episode_and_autoresets(case):
    vec = make_vec(case, 2)
    vec.reset(seed=0)
    model = vec.unwrapped.model
    actions = np.zeros((2, model.tasks_per_round), dtype=np.int64)
    for _t in range(model.num_rounds):
        _, _, terminated, _, _ = vec.step(actions)
    assert terminated.all()
    obs, rewards, terminated, truncated, info = vec.step(actions)  # next-step autoreset
    assert not terminated.any() and np.all(rewards == 0) and info == {}
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros((3, model.tasks_per_round), dtype=np.int64))


def test_import_hbgym_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, hbgym, gymnasium as gym; gym.make('HierGaussian-v0'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_id_is_registered_and_documented():
    for env_id in hbgym.ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.vector_entry_point is not None
        env = gym.make(env_id).unwrapped
        doc = type(env).__doc__ or ""
        for section in ("Description", "Generative model", "Action Space", "Observation Space",
                        "Rewards", "Regret", "Episode End", "Arguments", "Version History"):
            assert f"## {section}" in doc, f"{env_id}: docstring lacks '## {section}'"
    # gym.make("hbgym:ID") imports the package itself
    assert gym.make("hbgym:HierGaussian-v0").unwrapped.model.num_tasks == 10


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _mnist_means(env, obs) -> np.ndarray | None:
    """p_pos / p_neg per offered image, found by its pixels in the simulator's image table (None if a
    feature row is shared by images of different classes)."""
    sim, inst = env.simulator, env.instance
    flat = obs["features"].reshape(-1, obs["features"].shape[-1])
    labels = []
    for row in flat:
        found = np.unique(sim.labels[np.all(sim.features == row, axis=1)])
        if len(found) != 1:
            return None
        labels.append(found[0])
    positive = np.array(labels).reshape(obs["features"].shape[:-1]) == int(inst.digit)
    return np.where(positive, sim.p_pos, sim.p_neg)


def independent_means(env, obs) -> np.ndarray | None:
    """Expected rewards ``(L, K)`` of the round offered in ``obs``, computed here from the sampled
    truth ``env.instance`` and the observation (each family's generative model, not its code)."""
    name, inst, model = type(env).__name__, env.instance, env.model
    task = obs["task"]
    if name in ("HierGaussianEnv", "MovieLensMultiEnv"):
        theta = inst.task_params[task]  # (L, d)
        if getattr(model, "action_set", None) == "one_hot":
            return theta  # K = d, action k pays theta_k
        return np.einsum("lkd,ld->lk", obs["features"], theta)
    if name in ("MixedEffectEnv", "MovieLensEffectsEnv"):
        logits = np.einsum("kd,kd->k", obs["features"][0], inst.action_params)[None]
        return _sigmoid(logits) if model.reward == "logistic" else logits
    if name == "MultiBanditEnv":
        return (inst.task_params[task[0]] @ obs["context"][0])[None]  # beta_{s,k}^T x
    if name == "PartialContextEnv":
        return inst.mu[task]
    if name == "MNISTMultiEnv":
        return _mnist_means(env, obs)
    raise AssertionError(f"no independent regret for {name}: add its generative model here")


def test_regret_matches_an_independent_computation_from_the_instance(case):
    """``info['regret']`` = best expected reward - the chosen one, recomputed from the instance; and
    random play has positive regret (a regret stuck at 0 or with a flipped sign fails here)."""
    env = make_env(case).unwrapped
    obs, _ = env.reset(seed=4)
    rng = np.random.default_rng(1)
    K, L = env.model.num_actions, env.model.tasks_per_round
    total, checked = 0.0, 0
    for _ in range(min(12, env.model.num_rounds)):
        means = independent_means(env, obs)
        action = rng.integers(K, size=L)
        next_obs, _, _, _, info = env.step(action)
        if means is not None:
            expected = means.max(-1) - means[np.arange(L), action]
            np.testing.assert_allclose(info["regret"], expected, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(info["expected_rewards"], means[np.arange(L), action], rtol=1e-9)
            total += float(expected.sum())
            checked += 1
        obs = next_obs
    assert checked > 0 and total > 0
