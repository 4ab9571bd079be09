"""RL baselines: train stable-baselines3 models on hbgym envs and score them as ordinary agents.

A model sees :class:`hbgym.wrappers.SufficientStatsObservation` vectors (per-task counts and mean
rewards, pooled over tasks, and the episode progress) through :class:`hbgym.wrappers.DiscreteAction`
(``L == 1`` settings). :class:`SB3Agent` rebuilds the same vectors from the runner's
``act``/``update`` calls with :class:`hbgym.wrappers.SufficientStats`, so a trained model plugs into
the leaderboard like any agent (spec ``sb3:PPO:path/to/model.zip``).

Seeds: training env ``i`` (of ``n_envs``) is seeded with ``TRAIN_SEED_OFFSET + 1000 * seed + i``
(``TRAIN_SEED_OFFSET = 10**6``) and every later training episode continues that env's random
stream; evaluation suites use seeds below ``10**6``, so training and evaluation instances never
share a seed.

Command line (also ``python -m hbgym.leaderboards train-rl``)::

    python -m hbgym.leaderboards.rl --algo all            # the four baselines -> ./rl_models/<algo>.zip
    python -m hbgym.leaderboards.rl --algo PPO --timesteps 300000 --out my_ppo.zip \\
        --env-id HierGaussianMAB-v0 --env-kwargs '{"schedule": "sequential", "horizon": 20}'

Training writes only to ``--out`` (default :data:`DEFAULT_OUT_DIR` under the current directory),
never into an installed package (a target inside ``site-packages`` is refused). Every sidecar
records the model file's sha256, checked by :func:`load_sb3_agent`; the packaged baselines must
have it, so an edited or replaced ``leaderboards/baselines/*.zip`` is refused, not scored.

stable-baselines3 and sb3-contrib (RecurrentPPO) are optional dependencies (``pip install
hbgym[rl]``); they are imported only when a model is trained or loaded.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import hbgym  # noqa: F401  (registers the env ids)
from hbgym.wrappers import DiscreteAction, SufficientStats, SufficientStatsObservation

__all__ = [
    "ALGOS",
    "BASELINE_DIR",
    "BASELINE_ENV_ID",
    "BASELINE_ENV_KWARGS",
    "DEFAULT_HYPERPARAMS",
    "DEFAULT_TIMESTEPS",
    "SB3Agent",
    "TRAIN_SEED_OFFSET",
    "add_train_arguments",
    "DEFAULT_OUT_DIR",
    "baseline_path",
    "output_path",
    "verify_checksum",
    "write_checksum",
    "load_sb3_agent",
    "make_training_env",
    "train",
    "train_from_args",
]

#: algorithm name -> (module, class, policy)
ALGOS: dict[str, tuple[str, str, str]] = {
    "PPO": ("stable_baselines3", "PPO", "MlpPolicy"),
    "A2C": ("stable_baselines3", "A2C", "MlpPolicy"),
    "DQN": ("stable_baselines3", "DQN", "MlpPolicy"),
    "RecurrentPPO": ("sb3_contrib", "RecurrentPPO", "MlpLstmPolicy"),
}

TRAIN_SEED_OFFSET = 10**6

#: The setting of the committed baselines (and of benchmarks/rl_baselines.py): HierGaussianMAB-v0
#: (K = 10 Gaussian arms, sigma_q = 1, sigma_0 = 0.1, sigma = 0.5) with one task per round, m = 5
#: tasks and n = 20 interactions per task: 100 rounds per episode.
BASELINE_ENV_ID = "HierGaussianMAB-v0"
BASELINE_ENV_KWARGS: dict[str, Any] = {"schedule": "sequential", "num_tasks": 5, "horizon": 20}
BASELINE_DIR = Path(__file__).resolve().parent / "baselines"
#: where ``train-rl`` writes without ``--out`` (relative to the current directory)
DEFAULT_OUT_DIR = Path("rl_models")

#: Default hyper-parameters (``n_envs`` = parallel training envs; the rest go to the SB3 class).
#: SB3 defaults except: smaller nets (64-64), an entropy bonus of 0.01 for the on-policy methods,
#: shorter rollouts, and an exploration schedule over 30 % of the budget for DQN.
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "PPO": {"n_envs": 8, "n_steps": 128, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4,
            "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01, "policy_kwargs": {"net_arch": [64, 64]}},
    "A2C": {"n_envs": 8, "n_steps": 16, "learning_rate": 7e-4, "gamma": 0.99, "gae_lambda": 0.95,
            "ent_coef": 0.01, "policy_kwargs": {"net_arch": [64, 64]}},
    "DQN": {"n_envs": 1, "learning_rate": 5e-4, "buffer_size": 50_000, "learning_starts": 1_000,
            "batch_size": 64, "train_freq": 4, "target_update_interval": 1_000, "gamma": 0.99,
            "exploration_fraction": 0.3, "exploration_final_eps": 0.02,
            "policy_kwargs": {"net_arch": [64, 64]}},
    "RecurrentPPO": {"n_envs": 8, "n_steps": 128, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4,
                     "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01,
                     "policy_kwargs": {"net_arch": [64], "lstm_hidden_size": 64}},
}

#: Default training budgets (environment steps), sized so the four together train in about
#: 16 minutes on one CPU thread (measured on a shared 2-core machine: PPO 279 s, A2C 76 s, DQN 133 s,
#: RecurrentPPO 480 s; see each model's JSON sidecar).
DEFAULT_TIMESTEPS: dict[str, int] = {"PPO": 300_000, "A2C": 200_000, "DQN": 100_000, "RecurrentPPO": 100_000}


def _check_algo(algo: str) -> tuple[str, str, str]:
    if algo not in ALGOS:
        raise ValueError(f"algo={algo!r} is unknown; allowed: {', '.join(ALGOS)}")
    return ALGOS[algo]


def _algo_class(algo: str) -> tuple[type, str]:
    import importlib

    module, cls, policy = _check_algo(algo)
    try:
        return getattr(importlib.import_module(module), cls), policy
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(f"{algo} needs {module}: pip install 'hbgym[rl]'") from err


def baseline_path(algo: str) -> Path:
    """Path of the committed baseline model of ``algo`` (``leaderboards/baselines/<algo>.zip``)."""
    _check_algo(algo)
    return BASELINE_DIR / f"{algo.lower()}.zip"


# --------------------------------------------------------------------------- the agent adapter


class SB3Agent:
    """Agent protocol around a trained SB3 model's ``predict`` (DESIGN.md sec. 4).

    ``act`` turns the observation into :class:`SufficientStats` vectors ``(B, D)`` and asks the model
    for actions, returned as ``(B, L)`` (``(L,)`` for an unbatched observation); ``update`` feeds
    the statistics. Recurrent models keep their LSTM state per replicate, restarted by ``reset``.
    ``deterministic=False`` samples from the policy: a categorical policy (PPO, A2C) and DQN's
    epsilon-greedy draw from per-replicate streams (:class:`~hbgym.agents.random.ReplicateStreams`,
    replicate ``b`` of ``reset(seed=s)`` uses seed ``s + b``), so a seed's actions do not depend on its
    chunk; other models (recurrent) sample through torch's global generator, seeded at ``reset(seed)``.
    """

    oracle = False

    def __init__(self, model: Any, stats: SufficientStats, num_envs: int = 1, deterministic: bool = True,
                 name: str = "SB3") -> None:
        self.model, self.stats, self.num_envs = model, stats, int(num_envs)
        self.deterministic, self.name = deterministic, name
        self.recurrent = hasattr(model.policy, "lstm_actor")
        from hbgym.agents.random import ReplicateStreams

        self._streams = ReplicateStreams(self.num_envs)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.stats.reset(self.num_envs)
        self._state: Any = None
        self._start = np.ones(self.num_envs, dtype=bool)
        self._streams.seed(None if seed is None else int(seed))
        if seed is not None and not self.deterministic:  # SB3's own sampling (recurrent models)
            import torch

            torch.manual_seed(int(seed))

    def _sample(self, vectors: np.ndarray) -> np.ndarray | None:
        """Sampled actions ``(B,)`` from the per-replicate streams, or None for a policy whose
        distribution is not one categorical (then SB3's own sampling is used)."""
        import torch

        policy = self.model.policy
        obs_t, _ = policy.obs_to_tensor(vectors)
        with torch.no_grad():
            if hasattr(policy, "get_distribution"):  # actor-critic: sample the categorical policy
                dist = policy.get_distribution(obs_t).distribution
                if not isinstance(dist, torch.distributions.Categorical):
                    return None
                return self._streams.categorical(dist.probs.double().cpu()).numpy()
            if hasattr(policy, "q_net") and hasattr(self.model, "exploration_rate"):  # DQN: epsilon-greedy
                greedy = policy.q_net(obs_t).argmax(-1).cpu()
                explore = self._streams.uniform((1,))[:, 0] < float(self.model.exploration_rate)
                uniform = self._streams.randint(int(self.model.action_space.n), ())
                return torch.where(explore, uniform, greedy).numpy()
        return None

    def _batch(self, obs: Mapping[str, np.ndarray]) -> tuple[bool, dict[str, np.ndarray]]:
        batched = np.ndim(obs["task"]) == 2
        out = {key: np.asarray(value) if batched else np.asarray(value)[None] for key, value in obs.items()}
        if out["task"].shape[0] != self.num_envs:
            raise ValueError(
                f"observation has B={out['task'].shape[0]} but the agent has num_envs={self.num_envs}")
        return batched, out

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        batched, obs = self._batch(obs)
        vectors = self.stats.observe(obs)
        if self.recurrent:
            actions, self._state = self.model.predict(
                vectors, state=self._state, episode_start=self._start, deterministic=self.deterministic)
            self._start[:] = False
        else:
            sampled = None if self.deterministic else self._sample(vectors)
            if sampled is None:
                sampled = self.model.predict(vectors, deterministic=self.deterministic)[0]
            actions = sampled
        actions = np.asarray(actions, dtype=np.int64).reshape(obs["task"].shape)
        return actions if batched else actions[0]

    def update(self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: np.ndarray) -> None:
        batched, obs = self._batch(obs)
        shape = obs["task"].shape
        self.stats.update(obs, np.asarray(action).reshape(shape), np.asarray(reward).reshape(shape))


def load_sb3_agent(algo: str, path: str | Path, env: Any, num_envs: int = 1, device: str = "cpu",
                   deterministic: bool = True) -> SB3Agent:
    """Load a model saved by :func:`train` (or any SB3 model trained on the wrapped env).

    Args:
        algo: one of :data:`ALGOS` (``PPO``, ``A2C``, ``DQN``, ``RecurrentPPO``).
        path: the ``.zip`` file (the suffix may be omitted).
        env: the hbgym env (single or vector) the agent will play; its public model and observation
            space define the statistics, which must match the model's observation size.
        num_envs: ``B`` replicates played in lockstep.
        device: torch device of the policy.
    """
    cls, _ = _algo_class(algo)
    file = Path(path)
    if not file.is_file() and file.suffix != ".zip" and Path(f"{file}.zip").is_file():
        file = Path(f"{file}.zip")
    if not file.is_file():
        raise ValueError(f"no {algo} model file at {str(path)!r}; "
                         "train one with `python -m hbgym.leaderboards.rl`")
    verify_checksum(file)
    unwrapped = getattr(env, "unwrapped", env)
    space = getattr(unwrapped, "single_observation_space", None) or unwrapped.observation_space
    stats = SufficientStats(unwrapped.model, space)
    model = cls.load(str(file), device=device)
    if model.observation_space.shape != (stats.size,):
        raise ValueError(
            f"{file} expects observations of shape {model.observation_space.shape}, but "
            f"SufficientStats of this env give ({stats.size},): was it trained on another env setting?")
    n = getattr(model.action_space, "n", None)
    if n is not None and n != unwrapped.model.num_actions:
        raise ValueError(f"{file} has {n} actions but the env has K={unwrapped.model.num_actions}")
    return SB3Agent(model, stats, num_envs=num_envs, deterministic=deterministic, name=f"sb3:{algo}")


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(file: Path) -> None:
    """Check ``file`` against the ``sha256`` of its JSON sidecar (``<file>.json``).

    A packaged baseline (inside :data:`BASELINE_DIR`) must have a sidecar with a ``sha256``; any
    other model is checked when its sidecar records one. Raises ValueError on a mismatch.
    """
    sidecar = file.with_suffix(".json")
    packaged = file.resolve().parent == BASELINE_DIR
    expected = json.loads(sidecar.read_text()).get("sha256") if sidecar.is_file() else None
    if expected is None:
        if packaged:
            raise ValueError(f"packaged baseline {file} has no sha256 in {sidecar.name}: refusing to load it")
        return
    actual = _sha256(file)
    if actual != expected:
        raise ValueError(
            f"{file} does not match the sha256 in {sidecar.name} (expected {expected[:12]}..., got "
            f"{actual[:12]}...): the model was changed after training; restore or retrain it")


def write_checksum(file: Path) -> str:
    """Record ``file``'s sha256 in its JSON sidecar (created if missing); return the digest."""
    sidecar = file.with_suffix(".json")
    info = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    info["sha256"] = _sha256(file)
    sidecar.write_text(json.dumps(info, indent=2) + "\n")
    return info["sha256"]


# --------------------------------------------------------------------------- training


def output_path(algo: str, out: str | Path | None) -> Path:
    """Where :func:`train` saves ``algo``: ``out`` (``.zip`` added), else ``./rl_models/<algo>.zip``.

    Raises ValueError for a target inside an installed package (``site-packages``/``dist-packages``).
    """
    _check_algo(algo)
    path = DEFAULT_OUT_DIR / f"{algo.lower()}.zip" if out is None else Path(out)
    if path.suffix != ".zip":
        path = Path(f"{path}.zip")
    installed = {"site-packages", "dist-packages"} & set(path.resolve().parts)
    if installed:
        raise ValueError(f"--out {path} is inside an installed package ({installed.pop()}); "
                         "give a path in your own directory")
    return path


def make_training_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """``DiscreteAction(SufficientStatsObservation(gym.make(env_id, **env_kwargs)))`` (L must be 1)."""
    return DiscreteAction(SufficientStatsObservation(gym.make(env_id, **dict(env_kwargs or {}))))


def train(algo: str, env_id: str = BASELINE_ENV_ID, env_kwargs: Mapping[str, Any] | None = None,
          total_timesteps: int | None = None, seed: int = 0, out_path: str | Path | None = None,
          hyperparams: Mapping[str, Any] | None = None, verbose: int = 0) -> Path:
    """Train ``algo`` on the wrapped env and save ``model.zip`` plus a JSON sidecar; return the path.

    Training envs are seeded with ``TRAIN_SEED_OFFSET + 1000 * seed + i`` (``i < n_envs``), disjoint
    from the evaluation seeds (< 10**6) of the leaderboard suites and benchmarks. Defaults:
    ``env_kwargs`` :data:`BASELINE_ENV_KWARGS` when ``env_id`` is the baseline env,
    ``total_timesteps`` :data:`DEFAULT_TIMESTEPS`, ``hyperparams`` :data:`DEFAULT_HYPERPARAMS`
    (given keys override the defaults; ``n_envs`` is the number of training envs), ``out_path``
    :func:`output_path` (``./rl_models/<algo>.zip``; never inside an installed package). Torch uses
    one thread.

    The sidecar ``<out>.json`` records algo, env id and kwargs, timesteps, seed, training seeds,
    hyper-parameters, wall time, package versions and the model file's sha256.
    """
    import stable_baselines3
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    cls, policy = _algo_class(algo)
    if env_kwargs is None:
        env_kwargs = BASELINE_ENV_KWARGS if env_id == BASELINE_ENV_ID else {}
    total_timesteps = DEFAULT_TIMESTEPS[algo] if total_timesteps is None else int(total_timesteps)
    if total_timesteps < 1:
        raise ValueError(f"total_timesteps must be a positive integer, got {total_timesteps}")
    params = copy.deepcopy({**DEFAULT_HYPERPARAMS[algo], **dict(hyperparams or {})})
    n_envs = int(params.pop("n_envs"))
    out = output_path(algo, out_path)
    out.parent.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(1)
    train_seed = TRAIN_SEED_OFFSET + 1000 * int(seed)
    vec = DummyVecEnv([lambda: make_training_env(env_id, env_kwargs)] * n_envs)
    vec.seed(train_seed)
    model = cls(policy, vec, seed=int(seed), device="cpu", verbose=verbose, **copy.deepcopy(params))
    start = time.perf_counter()
    model.learn(total_timesteps=total_timesteps)
    seconds = time.perf_counter() - start
    model.save(str(out))
    sidecar = {
        "algo": algo, "policy": policy, "env_id": env_id, "env_kwargs": dict(env_kwargs),
        "wrappers": ["SufficientStatsObservation", "DiscreteAction"],
        "total_timesteps": total_timesteps, "seed": int(seed),
        "train_env_seeds": [train_seed, train_seed + n_envs - 1], "n_envs": n_envs,
        "hyperparams": params, "train_seconds": round(seconds, 1),
        "versions": _versions(stable_baselines3.__version__, torch.__version__),
    }
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    write_checksum(out)
    return out


def _versions(sb3: str, torch_version: str) -> dict[str, str]:
    versions = {"stable_baselines3": sb3, "torch": torch_version, "gymnasium": gym.__version__,
                "numpy": np.__version__}
    try:
        import sb3_contrib

        versions["sb3_contrib"] = sb3_contrib.__version__
    except ImportError:  # pragma: no cover
        pass
    return versions


# --------------------------------------------------------------------------- command line


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``train-rl`` (also ``python -m hbgym.leaderboards.rl``)."""
    parser.add_argument("--algo", required=True, choices=[*ALGOS, "all"],
                        help=f"SB3 algorithm; 'all' trains the four baselines into --out (a directory, "
                             f"default ./{DEFAULT_OUT_DIR}/)")
    parser.add_argument("--env-id", default=BASELINE_ENV_ID, help=f"env id (default {BASELINE_ENV_ID})")
    parser.add_argument("--env-kwargs", type=json.loads, default=None,
                        help=f"env kwargs as JSON (baseline env default: {json.dumps(BASELINE_ENV_KWARGS)})")
    parser.add_argument("--timesteps", type=int, default=None,
                        help=f"training env steps (default per algo: {json.dumps(DEFAULT_TIMESTEPS)})")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"training seed; training envs use seeds {TRAIN_SEED_OFFSET} + 1000 * seed + i")
    parser.add_argument("--out", default=None,
                        help=f"output .zip and its JSON sidecar (default ./{DEFAULT_OUT_DIR}/<algo>.zip); "
                             "with --algo all, a directory")
    parser.add_argument("--hyperparams", type=json.loads, default=None,
                        help="JSON overriding the default hyper-parameters, e.g. '{\"learning_rate\": 1e-3}'")
    parser.add_argument("--verbose", type=int, default=0, help="SB3 verbosity (0, 1, 2)")
    return parser


def train_from_args(args: argparse.Namespace) -> list[Path]:
    """Run the training described by :func:`add_train_arguments`' arguments; print and return paths."""
    algos = list(ALGOS) if args.algo == "all" else [args.algo]
    paths = []
    for algo in algos:
        out = args.out
        if out is not None and len(algos) > 1:  # --algo all: --out is a directory
            out = Path(out) / f"{algo.lower()}.zip"
        path = train(algo, args.env_id, args.env_kwargs, args.timesteps, args.seed, out,
                     args.hyperparams, verbose=args.verbose)
        info = json.loads(path.with_suffix(".json").read_text())
        print(f"{algo}: {info['total_timesteps']} steps in {info['train_seconds']} s -> {path}")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hbgym.leaderboards.rl",
        description="Train stable-baselines3 baselines on hbgym envs (SufficientStats observations).")
    train_from_args(add_train_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    main()
