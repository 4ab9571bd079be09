"""Per-seed determinism: a seed's row does not depend on the chunk of seeds it runs in.

Every zoo agent (one short setting per family) runs the same seeds with chunk sizes 1, 2, 7 and 50
through the runner's public ``plan`` + ``run_cell``; each seed's ``final_regret`` and whole curve must
be bit-identical across chunkings (CPU, float64).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hbgym.agents import AGENTS, GIDS, NPMTS
from hbgym.agents.random import ReplicateStreams
from hbgym.leaderboards.runner import plan, run_cell
from hbgym.leaderboards.suites import EVAL_SEED_BASE, SB3_BASELINES, Setting, Suite

_COCO_SMALL = {"num_particles": 8, "num_components": 6, "mu_grid_size": 4, "context_grid_size": 3}


def small_npmts(env: Any, num_envs: int = 1, seed: int | None = None) -> NPMTS:
    """NPM-TS with tiny hyper-parameters (for a fast test)."""
    return NPMTS.from_env(env, num_envs=num_envs, seed=seed, **_COCO_SMALL)


def small_gids(env: Any, num_envs: int = 1, seed: int | None = None) -> GIDS:
    """GIDS with tiny hyper-parameters (for a fast test)."""
    return GIDS.from_env(env, num_envs=num_envs, seed=seed, **_COCO_SMALL)


small_npmts.batched = True  # type: ignore[attr-defined]
small_gids.batched = True  # type: ignore[attr-defined]

_PC_KWARGS = {"scenario": "mixture", "num_batches": 2, "batch_size": 2, "steps_per_user": 2}
_PC = Setting("PartialContext-v0", _PC_KWARGS, None, ("PC",), oracle="optimal")
_SETTINGS = (
    Setting("HierGaussian-v0", {"num_tasks": 5, "num_actions": 4}, 2, ("HG",)),
    Setting("MixedEffect-v0", {"num_actions": 5}, 4, ("ME",)),
    Setting("MixedEffectLogistic-v0", {"num_actions": 5}, 4, ("MEL",), oracle="optimal"),
    Setting("MultiBandit-v0", {"num_tasks": 2, "num_actions": 3, "dim": 2}, 4, ("MB",), oracle="optimal"),
    _PC,
)
_ONLINE = tuple(name for name, cls in AGENTS.items()
                if not getattr(cls, "offline", False) and name not in ("NPM-TS", "GIDS"))  # CoCo: below
_COCO = ("tests.test_determinism:small_npmts", "tests.test_determinism:small_gids")
#: the packaged SB3 baselines' training setting, shortened (they act with a deterministic predict)
_RL = Setting("HierGaussianMAB-v0", {"schedule": "sequential", "num_tasks": 2}, 5, ("RL",))
#: long enough for the empirical-Bayes refits with cross-validated thresholds (random splits)
_EB_CV = Setting("MultiBandit-v0", {"num_tasks": 6, "num_actions": 2, "dim": 2}, 15, ("EB",),
                 oracle="optimal")
_NUM_SEEDS = 7


def _rows(chunk: int, num_seeds: int) -> dict[tuple[str, str, int], dict[str, Any]]:
    cells = []
    groups = ((_SETTINGS, _ONLINE), ((_PC,), _COCO), ((_RL,), SB3_BASELINES),
              ((_EB_CV,), ("EbmTS", "EbmUCB")))
    for settings, agents in groups:
        suite = Suite(name="determinism", version=1, kind="online", num_seeds=num_seeds, chunk=chunk,
                      log_points=4, settings=settings)
        cells += plan(suite, agents, with_references=False)[0]
    out = {}
    for cell in cells:
        for row in run_cell(cell, catch=False)["rows"]:
            out[row["agent"], row["setting"], row["seed"]] = row
    return out


@pytest.fixture(scope="module")
def by_chunk() -> dict[int, dict[tuple[str, str, int], dict[str, Any]]]:
    out = {chunk: _rows(chunk, _NUM_SEEDS) for chunk in (1, 2, 7)}
    fifty = _rows(50, 50)
    out[50] = {k: v for k, v in fifty.items() if k[2] < EVAL_SEED_BASE + _NUM_SEEDS}
    return out


def test_every_online_zoo_agent_is_covered(by_chunk):
    agents = {agent for agent, _, _ in by_chunk[1]}
    missing = set(_ONLINE) - agents
    assert not missing, f"no determinism setting applies to {sorted(missing)}"
    assert len(agents - set(_ONLINE)) == 2 + len(SB3_BASELINES), agents - set(_ONLINE)  # CoCo, SB3


@pytest.mark.parametrize("chunk", [2, 7, 50])
def test_seed_rows_do_not_depend_on_the_chunk(by_chunk, chunk):
    alone, chunked = by_chunk[1], by_chunk[chunk]
    assert alone.keys() == chunked.keys()
    differ = []
    for key, row in alone.items():
        other = chunked[key]
        assert row["status"] == other["status"] == "ok", (key, row.get("error"), other.get("error"))
        if row["final_regret"] != other["final_regret"] or row["cum_regret"] != other["cum_regret"]:
            differ.append((key, row["final_regret"], other["final_regret"]))
    assert not differ, f"chunk {chunk} changes these seeds' rows: {differ[:5]}"


def test_agent_randomness_varies_with_the_seed(by_chunk):
    """A random agent's regret is not the same for every seed (the streams are really seeded)."""
    finals = {row["final_regret"] for (agent, _, _), row in by_chunk[1].items() if agent == "Uniform"}
    assert len(finals) > 1


# --------------------------------------------------------------------------- the streams themselves


def test_streams_match_the_env_hash_and_do_not_depend_on_batch():
    from hbgym import rng

    streams = ReplicateStreams(3)
    streams.seed(40)
    u = streams.uniform((6,))
    # replicate 2 is seed 42: the same SplitMix64 words as hbgym.rng, computed independently in NumPy
    key = rng.hash_words(np.uint64(42), 77)
    np.testing.assert_array_equal(u[2].numpy(), rng.uniform(key, np.arange(6)))
    z = streams.normal((4,))
    np.testing.assert_allclose(z[2].numpy(), rng.normal(key, np.arange(6, 10)), rtol=0, atol=1e-15)
    alone = ReplicateStreams(1)
    alone.seed(42)
    alone.uniform((6,))
    assert torch.equal(alone.normal((4,))[0], z[2])


def test_rows_draw_advances_only_those_counters():
    a, b = ReplicateStreams(3), ReplicateStreams(3)
    a.seed(5)
    b.seed(5)
    a.uniform((2,), rows=torch.tensor([1]))
    assert a.counters.tolist() == [0, 2, 0]
    assert torch.equal(a.uniform((1,))[0], b.uniform((1,))[0])


def test_categorical_and_randint_distributions():
    streams = ReplicateStreams(1)
    streams.seed(0)
    probs = torch.tensor([[0.0, 2.0, 1.0, 1.0]], dtype=torch.float64)  # unnormalised, one impossible
    draws = streams.categorical(probs, 40_000)[0]
    freq = torch.bincount(draws, minlength=4).double() / draws.numel()
    np.testing.assert_allclose(freq.numpy(), [0.0, 0.5, 0.25, 0.25], atol=0.01)
    ints = streams.randint(3, (30_000,))[0]
    assert ints.min() == 0 and ints.max() == 2
    np.testing.assert_allclose(torch.bincount(ints).double().numpy() / 30_000, [1 / 3] * 3, atol=0.01)
    normals = streams.normal((50_000,), torch.float32)[0]
    assert normals.dtype == torch.float32
    assert abs(float(normals.mean())) < 0.02 and abs(float(normals.std()) - 1) < 0.02


def test_bad_seed_and_bad_probabilities_are_rejected():
    with pytest.raises(ValueError, match="seed"):
        ReplicateStreams(2).seed(-1)
    streams = ReplicateStreams(2)
    for bad in ([[1.0, 0.0], [0.0, 0.0]], [[1.0, float("nan")], [1.0, 1.0]], [[1.0, -0.5], [1.0, 1.0]]):
        with pytest.raises(ValueError, match="probs"):
            streams.categorical(torch.tensor(bad, dtype=torch.float64))


def test_batched_float64_linear_algebra_is_batch_size_independent():
    """The batched ops the posteriors use give each member the bits it gets alone (CPU float64)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 6, 6, generator=g, dtype=torch.float64)
    spd = a @ a.transpose(-1, -2) + 6 * torch.eye(6, dtype=torch.float64)
    rhs = torch.randn(50, 6, 3, generator=g, dtype=torch.float64)

    def ops(m: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        chol = torch.linalg.cholesky(m)
        return [chol, torch.cholesky_solve(r, chol), torch.linalg.solve_triangular(chol, r, upper=False),
                m @ r, (m @ r[..., :1])[..., 0], m.sum(-1), torch.logsumexp(r, -1), torch.softmax(r, -1)]

    full = ops(spd, rhs)
    for b in (0, 1, 17, 49):
        for size in (1, 2, 7):
            lo = max(0, min(b, 50 - size))
            part = ops(spd[lo:lo + size], rhs[lo:lo + size])
            for whole, piece in zip(full, part, strict=True):
                assert torch.equal(whole[b], piece[b - lo])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_elementwise_functions_of_the_agents_do_not_depend_on_position(dtype):
    """Each element's bits are the same whether computed alone or inside a longer tensor (CPU kernels
    round their vectorised body and scalar tail differently for some functions, e.g. torch.sigmoid)."""
    from hbgym.agents.posteriors.laplace import sigmoid

    x = torch.randn(203, generator=torch.Generator().manual_seed(1), dtype=dtype) * 3
    for f in (sigmoid, torch.exp, torch.cos, lambda v: torch.log(v.abs()), lambda v: torch.sqrt(v.abs()),
              torch.special.log_ndtr, lambda v: torch.expm1(-v.abs())):
        full = f(x)
        assert all(torch.equal(full[i], f(x[i:i + 1])[0]) for i in range(len(x)))


@pytest.mark.parametrize("algo", ["PPO", "A2C", "DQN"])
def test_sampled_sb3_actions_do_not_depend_on_the_chunk(algo):
    """SB3Agent(deterministic=False) draws from per-replicate streams: seed s + 3 has the same regret
    curve alone and as slot 3 of a 7-seed chunk."""
    import gymnasium as gym
    from hbgym.leaderboards.rl import load_sb3_agent
    from hbgym.leaderboards.specs import PACKAGE_ROOT

    from benchmarks.rl_baselines import play

    kwargs = {"schedule": "sequential", "num_tasks": 2, "horizon": 5}
    path = PACKAGE_ROOT / "leaderboards" / "baselines" / f"{algo.lower()}.zip"

    def curves(num_envs: int, seed: int) -> np.ndarray:
        vec = gym.make_vec("HierGaussianMAB-v0", num_envs=num_envs, **kwargs)
        agent = load_sb3_agent(algo, path, vec, num_envs, deterministic=False)
        return play(vec, agent, algo, seed).curves  # (B, rounds) cumulative regret

    chunk, alone = curves(7, 100), curves(1, 103)
    np.testing.assert_array_equal(chunk[3], alone[0])
    if algo != "DQN":  # a sampled policy differs from seed to seed (DQN explores rarely)
        assert len({tuple(row) for row in chunk}) > 1


def test_cross_validation_splits_are_per_replicate():
    """Bickel-Levina CV (random splits) gives replicate b the threshold it gets alone with seed s + b,
    and the threshold depends on the splits (a different seed changes it)."""
    from hbgym.agents.posteriors.empirical_bayes import bickel_levina_cv

    B = 6
    mix = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]], dtype=torch.float64)
    x = torch.randn(B, 12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) @ mix
    mask = torch.ones(B, 12, dtype=torch.bool)

    def lam(samples: torch.Tensor, m: torch.Tensor, seed: int) -> torch.Tensor:
        streams = ReplicateStreams(len(samples))
        streams.seed(seed)
        return bickel_levina_cv(samples, m, streams, num_splits=3, num_grid=50)

    batched = lam(x, mask, 10)
    for b in range(B):
        assert torch.equal(lam(x[b:b + 1], mask[b:b + 1], 10 + b)[0], batched[b])
    assert not torch.equal(lam(x, mask, 99), batched)


def test_block_draws_equal_direct_draws_and_counters_across_refills_and_rows():
    """Full-batch draws (served from the precomputed block, refilled as it runs out) give the same bits
    as ``rows`` draws over every replicate (the direct hashing path), interleaved in any order."""
    from hbgym.agents import random as streams_module

    blocked, direct = ReplicateStreams(3), ReplicateStreams(3)
    blocked.seed(9)
    direct.seed(9)
    every = torch.arange(3)
    sizes = [(5,), (2, 3), (70,), (1,), (200,), (4,)] * 3  # > the first block's 64 counters: refills
    for i, shape in enumerate(sizes):
        if i == 7:  # a rows draw in between drops the block; later blocks start at the new counters
            assert torch.equal(blocked.uniform((2,), rows=[1]), direct.uniform((2,), rows=[1]))
        assert torch.equal(blocked.normal(shape), direct.normal(shape, rows=every))
        assert torch.equal(blocked.uniform(shape, torch.float32), direct.uniform(shape, torch.float32, every))
        assert torch.equal(blocked.counters, direct.counters)
    big = streams_module.BLOCK_ELEMENTS  # more than a block may hold: the direct path
    assert torch.equal(blocked.uniform((big,))[:, -3:], direct.uniform((big,), rows=every)[:, -3:])
    wide = ReplicateStreams(streams_module.BLOCK_ELEMENTS // 8)  # so many replicates: short blocks
    wide.normal((3,))
    assert all(v.numel() <= streams_module.BLOCK_ELEMENTS for v in wide._derived.values())
    drawn = blocked.normal((4,))
    drawn.mul_(0)  # writing into a draw (a view of the block) does not change later draws
    assert torch.equal(blocked.normal((4,)), direct.normal((8,), rows=every)[:, 4:])


def test_torch_hashing_path_equals_the_numpy_path_used_on_cpu():
    """On CPU the streams hash in hbgym.rng's NumPy code; the torch path (CUDA) must give the same bits."""
    from hbgym.agents import random as streams_module

    keys = torch.tensor([-(2**62) + 12345, 7, 2**62 + 99])
    counters = torch.tensor([0, 5, 2**40])
    for n in (1, 5, 300):  # 5: hbgym.rng's Python-int path for one key; 300: arrays
        for rows in (slice(0, 1), slice(None)):
            hashed = streams_module._hash(keys[rows], counters[rows], n)  # NumPy (CPU)
            index = counters[rows][:, None] + torch.arange(1, n + 1)
            by_torch = streams_module._mix(index.mul_(streams_module._GOLDEN).add_(keys[rows][:, None]))
            assert torch.equal(hashed, by_torch)
            u1, u2 = (streams_module._to_uniform(streams_module._mix(by_torch ^ word), torch.float64)
                      for word in (streams_module._MUL1, streams_module._MUL2))
            normal = u1.log_().mul_(-2.0).sqrt_().mul_(u2.mul_(2.0 * np.pi).cos_())
            assert torch.equal(streams_module._values(hashed, "normal"), normal)
            uniform = streams_module._to_uniform(by_torch, torch.float64)
            assert torch.equal(streams_module._values(hashed, "u64"), uniform)
