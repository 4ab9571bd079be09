"""Agent zoo I on the HierGaussian and MixedEffect families: protocol, determinism, orderings."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hbgym.agents import AGENTS, Agent, FlatTS, HierTS, MeTS, OracleTS, UniformAgent

import hbgym  # noqa: F401
from tests.conftest import requires_cuda

HIER_AGENTS = ["HierTS", "OracleTS", "FlatTS", "HierUCB", "LinTS", "LinUCB"]
METS_AGENTS = ["meTS", "meTS-Fa", "HierTS", "LinTS", "LinUCB", "FlatTS", "OracleTS"]


def run_batched(env_id: str, agent_name: str, num_envs: int, seed: int = 0, **env_kwargs) -> np.ndarray:
    """Final cumulative regret ``(num_envs,)`` of an agent on a native vector env (paired seeds)."""
    vec = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)
    agent = AGENTS[agent_name].from_env(vec, seed=seed)
    obs, _ = vec.reset(seed=seed)
    agent.reset(seed=seed)
    regret = np.zeros(num_envs)
    for _ in range(vec.unwrapped.model.num_rounds):
        action = agent.act(obs)
        next_obs, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        obs = next_obs
        regret += info["regret"].sum(axis=1)
    return regret


@pytest.mark.parametrize("name", HIER_AGENTS + ["meTS", "meTS-Fa"])
def test_agents_follow_the_protocol(name):
    assert isinstance(AGENTS[name], type)
    env_id = "MixedEffect-v0" if name.startswith("meTS") else "HierGaussian-v0"
    env = gym.make(env_id)
    agent = AGENTS[name].from_env(env, seed=0)
    assert isinstance(agent, Agent)
    obs, _ = env.reset(seed=0)
    agent.reset(seed=0)
    action = agent.act(obs)  # unbatched observation -> unbatched action
    assert action.shape == env.action_space.shape and env.action_space.contains(action)
    _, _, _, _, info = env.step(action)
    agent.update(obs, action, info["rewards"])


@pytest.mark.parametrize("env_id", ["HierGaussian-v0", "HierGaussianMAB-v0", "MixedEffect-v0"])
def test_same_seed_same_actions(env_id):
    kwargs = {"horizon": 50} if env_id == "MixedEffect-v0" else {"horizon": 20}
    a = run_batched(env_id, "HierTS", 3, seed=4, **kwargs)
    b = run_batched(env_id, "HierTS", 3, seed=4, **kwargs)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("env_id", ["HierGaussian-v0", "HierGaussianMAB-v0"])
@pytest.mark.parametrize("name", HIER_AGENTS)
def test_every_agent_beats_uniform_on_hier_gaussian(env_id, name):
    kwargs = {"horizon": 40}
    regret = run_batched(env_id, name, 16, **kwargs)
    uniform = run_batched(env_id, "Uniform", 16, **kwargs)
    assert regret.mean() < 0.5 * uniform.mean()


@pytest.mark.parametrize("name", METS_AGENTS)
def test_every_agent_beats_uniform_on_mixed_effect(name):
    kwargs = {"num_actions": 20, "horizon": 150}
    regret = run_batched("MixedEffect-v0", name, 8, **kwargs)
    uniform = run_batched("MixedEffect-v0", "Uniform", 8, **kwargs)
    assert regret.mean() < 0.6 * uniform.mean()


def test_paper_ordering_oracle_hier_flat():
    """HierTS paper Fig. 2: OracleTS <= HierTS <= TS (paired seeds, HierGaussian-v0 defaults)."""
    seeds = 64
    oracle = run_batched("HierGaussian-v0", "OracleTS", seeds)
    hier = run_batched("HierGaussian-v0", "HierTS", seeds)
    flat = run_batched("HierGaussian-v0", "FlatTS", seeds)
    assert oracle.mean() < hier.mean() < flat.mean()
    # the HierTS-vs-TS gap is large and clearly significant on paired seeds
    diff = flat - hier
    assert diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(seeds)


def test_mets_beats_structure_agnostic_baselines():
    kwargs = {"num_actions": 30, "horizon": 300}
    mets = run_batched("MixedEffect-v0", "meTS", 24, **kwargs)
    lin = run_batched("MixedEffect-v0", "LinTS", 24, **kwargs)
    assert mets.mean() < lin.mean()


def test_oracle_reads_truth_and_is_labelled():
    env = gym.make("HierGaussian-v0")
    agent = OracleTS.from_env(env, seed=0)
    assert agent.oracle and not HierTS.oracle
    obs, _ = env.reset(seed=1)
    agent.reset()
    agent.act(obs)
    np.testing.assert_allclose(agent._hyper[0].numpy(), env.unwrapped.instance.hyper_param)
    with pytest.raises(RuntimeError, match="oracle"):
        OracleTS(env.unwrapped.model).act(obs)  # built without an env: no truth to read


def test_bad_inputs_are_rejected():
    env = gym.make("HierGaussian-v0")
    with pytest.raises(ValueError, match="mixed-effect"):
        MeTS.from_env(env)
    with pytest.raises(ValueError, match="num_envs"):
        HierTS.from_env(env, num_envs=0)
    with pytest.raises(ValueError, match="dtype"):
        FlatTS.from_env(env, dtype="int8")
    agent = HierTS.from_env(env, num_envs=2)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="num_envs"):
        agent.act(obs)  # an unbatched observation for a batched agent
    with pytest.raises(ValueError, match="hierarchy"):
        HierTS(object())


def test_uniform_agent_is_uniform():
    env = gym.make("HierGaussian-v0", tasks_per_round=1, schedule="sequential")
    agent = UniformAgent.from_env(env, num_envs=1, seed=0)
    obs = {"task": np.zeros((1, 1), dtype=np.int64)}
    counts = np.bincount(np.concatenate([agent.act(obs)[0] for _ in range(2000)]), minlength=10)
    assert counts.min() > 120


def test_float32_agent_learns():
    vec = gym.make_vec("HierGaussian-v0", num_envs=8, horizon=40)
    agent = HierTS.from_env(vec, dtype="float32", seed=0)
    assert agent.posterior.gram.dtype == torch.float32
    obs, _ = vec.reset(seed=0)
    regret = np.zeros(8)
    for _ in range(vec.unwrapped.model.num_rounds):
        action = agent.act(obs)
        next_obs, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        obs, regret = next_obs, regret + info["regret"].sum(1)
    uniform = run_batched("HierGaussian-v0", "Uniform", 8, horizon=40)
    assert regret.mean() < 0.5 * uniform.mean()


@requires_cuda
@pytest.mark.parametrize("name", ["HierTS", "meTS"])
def test_cuda_agent_matches_cpu_posterior(name):
    env_id = "MixedEffect-v0" if name == "meTS" else "HierGaussian-v0"
    vec = gym.make_vec(env_id, num_envs=4, horizon=30)
    cpu, gpu = (AGENTS[name].from_env(vec, device=dev, seed=0) for dev in ("cpu", "cuda"))
    obs, _ = vec.reset(seed=0)
    for _ in range(30):
        action = cpu.act(obs)
        next_obs, _, _, _, info = vec.step(action)
        cpu.update(obs, action, info["rewards"])
        gpu.update(obs, action, info["rewards"])
        obs = next_obs
    for a, b in zip(cpu.posterior.hyper_posterior(), gpu.posterior.hyper_posterior()):
        torch.testing.assert_close(a, b.cpu(), atol=1e-8, rtol=1e-8)


def test_action_unit_layout_broadcasts_over_several_slots():
    """With units = actions the posterior is queried once and shared by every slot of the round."""
    env = gym.make("MixedEffect-v0", num_actions=6)
    agent = AGENTS["LinUCB"].from_env(env, num_envs=2, seed=0)
    obs, _ = env.reset(seed=0)
    feats = np.broadcast_to(obs["features"], (2, 3, 6, 2)).copy()  # B=2, L=3 identical slots
    actions = agent.act({"task": np.zeros((2, 3), dtype=np.int64), "features": feats})
    assert actions.shape == (2, 3) and (actions == actions[:, :1]).all()  # UCB is deterministic


@pytest.mark.parametrize("batched", [False, True])
def test_update_with_acts_observation_equals_update_with_a_copy_and_sees_replaced_entries(batched):
    """``update`` reuses the tensors ``act`` made from the same observation arrays (no copy was made,
    so they are views of the same memory): the posterior equals that of an agent given fresh copies.
    An entry replaced in the dict between ``act`` and ``update`` is converted again."""
    env = gym.make_vec("HierGaussian-v0", num_envs=3) if batched else gym.make("HierGaussian-v0")
    same, copied = (HierTS.from_env(env, seed=1, num_envs=3 if batched else 1) for _ in range(2))
    obs, _ = env.reset(seed=1)
    for agent in (same, copied):
        agent.reset(seed=1)
    for _ in range(20):
        action = same.act(obs)
        np.testing.assert_array_equal(copied.act({k: v.copy() for k, v in obs.items()}), action)
        next_obs, _, _, _, info = env.step(action)
        same.update(obs, action, info["rewards"])
        copied.update({k: v.copy() for k, v in obs.items()}, action, info["rewards"])
        obs = next_obs
    assert torch.equal(same.posterior.stats, copied.posterior.stats)

    action = same.act(obs)
    moved = dict(obs)
    moved["features"] = obs["features"] + 1.0  # a new array under the same key
    same.update(moved, action, np.zeros(action.shape))
    copied.update({k: v.copy() for k, v in moved.items()}, action, np.zeros(action.shape))
    assert torch.equal(same.posterior.stats, copied.posterior.stats)
    obs["features"] = moved["features"]  # the same dict object, an entry replaced
    same.act(obs)
    obs["features"] = obs["features"] * 2.0
    same.update(obs, action, np.ones(action.shape))
    copied.update({k: v.copy() for k, v in obs.items()}, action, np.ones(action.shape))
    assert torch.equal(same.posterior.stats, copied.posterior.stats)
