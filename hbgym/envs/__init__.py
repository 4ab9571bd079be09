"""Registration of every hbgym environment id (Gymnasium style: registration lines only here).

Each entry names the single env (``entry_point``) and its native vector env
(``vector_entry_point``, used by ``gym.make_vec(id, num_envs=B)``). ``ENV_IDS`` lists every id with
the documented variants that the registry-driven tests exercise.
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

#: id -> (module:class of the single env, default kwargs)
_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "HierGaussian-v0": ("hbgym.envs.hier_gaussian:HierGaussian", {}),
    "HierGaussianMAB-v0": ("hbgym.envs.hier_gaussian:HierGaussian", {"action_set": "one_hot"}),
    "MixedEffect-v0": ("hbgym.envs.mixed_effect:MixedEffect", {}),
    "MixedEffectLogistic-v0": ("hbgym.envs.mixed_effect:MixedEffect", {"reward": "logistic"}),
    "MultiBandit-v0": ("hbgym.envs.multi_bandit:MultiBandit", {}),
    "MultiBanditDataPoor-v0": ("hbgym.envs.multi_bandit:MultiBandit", {"arrival": "data_poor"}),
    "MultiBanditSparse-v0": ("hbgym.envs.multi_bandit:MultiBandit", {"heterogeneity": "sparse"}),
    "MultiBanditUniform-v0": ("hbgym.envs.multi_bandit:MultiBandit", {"context": "uniform"}),
    "MovieLensMulti-v0": ("hbgym.envs.movielens_multi:MovieLensMulti", {}),
    "MovieLensEffects-v0": ("hbgym.envs.movielens_effects:MovieLensEffects", {}),
    "MNISTMulti-v0": ("hbgym.envs.mnist_multi:MNISTMulti", {}),
    "PartialContext-v0": ("hbgym.envs.partial_context:PartialContext", {}),
}

#: id -> documented variants (kwargs) checked by the contract tests, besides the defaults
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "HierGaussian-v0": [
        {"action_set": "resampled", "schedule": "sequential", "horizon": 20},
        {"schedule": "meta", "horizon": 10},
        {"schedule": "arrival", "arrival_probs": [0.5] + [0.5 / 9] * 9, "horizon": 10},
        {"num_tasks": 4, "tasks_per_round": 2, "horizon": 5, "sigma_q": 0.5},
    ],
    "HierGaussianMAB-v0": [{"schedule": "sequential", "horizon": 10}],
    "MixedEffect-v0": [{"num_actions": 7, "num_effects": 2, "dim": 3, "horizon": 30}],
    "MixedEffectLogistic-v0": [{"num_actions": 5, "horizon": 30, "mixing_seed": 3}],
    "MultiBandit-v0": [
        {"num_tasks": 4, "num_actions": 3, "dim": 2, "horizon": 10, "features": True},
        {"arrival": [0.1, 0.2, 0.3, 0.4], "num_tasks": 4, "horizon": 10, "sigma": [0.1, 0.2, 0.3, 0.4, 0.5]},
        {"context": "uniform", "heterogeneity": "sparse", "sparsity": 2, "horizon": 10},
    ],
    "MultiBanditDataPoor-v0": [{"num_tasks": 3, "rare_prob": 0.1, "horizon": 10, "task_cov": 0.2}],
    "MultiBanditSparse-v0": [{"num_actions": 3, "dim": 8, "sparsity": 3, "horizon": 10, "features": True}],
    "MultiBanditUniform-v0": [{"num_tasks": 2, "horizon": 10}],
    # data envs: variants on small deterministic data generated in hbgym.datasets.synthetic
    "MovieLensMulti-v0": [
        {"dataset": "synthetic", "num_tasks": 8, "horizon": 10},
        {"dataset": "synthetic", "num_tasks": 6, "horizon": 5, "schedule": "sequential", "rank": 4},
    ],
    "MovieLensEffects-v0": [
        {"dataset": "synthetic", "num_actions": 20, "num_effects": 3, "horizon": 40, "min_ratings": 5},
        {"dataset": "synthetic", "num_actions": 12, "num_effects": 2, "horizon": 40, "min_ratings": 5,
         "reward": "logistic"},
    ],
    "MNISTMulti-v0": [
        {"dataset": "synthetic", "num_tasks": 4, "horizon": 10, "tasks_per_round": 2, "num_prior_draws": 40},
        {"dataset": "digits", "digit": 3, "horizon": 10, "num_actions": 12},
    ],
    "PartialContext-v0": [
        {"scenario": "partial_linear", "num_batches": 4},
        {"scenario": "lmm", "batch_size": 8},
        {"scenario": "lmm_mixture", "num_batches": 3, "steps_per_user": 2},
        {"scenario": "lmm_mixture", "theta_per_user": True, "num_batches": 2},
        {"scenario": "mixture", "num_batches": 6, "batch_size": 1, "steps_per_user": 3, "sigma": 0.5},
    ],
}


def _register_all() -> None:
    for env_id, (target, kwargs) in _ENVS.items():
        if env_id in registry:
            continue
        register(
            id=env_id,
            entry_point=target + "Env",
            vector_entry_point=target + "VectorEnv",
            kwargs=kwargs,
        )


_register_all()

ENV_IDS: tuple[str, ...] = tuple(_ENVS)
