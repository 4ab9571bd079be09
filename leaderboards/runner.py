"""The runner: cells = (agent, env setting, seed chunk), run locally, on Ray or on Dask.

Every online cell plays one episode per seed on ``gym.make_vec(env_id, num_envs=B)`` reset with the
chunk's first seed (slot ``i`` is the single env reset with seed ``s + i``) through the one play loop
:func:`hbgym.leaderboards.play.play`: a batched agent (the zoo, SB3 models, factories marked
``batched = True``) acts on the batch, a per-env third-party agent gets one instance per slot. All see
exactly the same instances and reward noise per seed (common random numbers). The runner strips
``info`` (agents see observations and their own per-slot rewards only) and checks every action with
the env's own check; anything else fails the cell.

A cell's ``mode`` is ``"trusted"`` (``run``: the agent is built in this process) or ``"sandboxed"``
(``submit``: the agent runs in a child process, :mod:`hbgym.leaderboards.sandbox`, and this side keeps
the env and writes the record). Third-party cells carry the agent's code hash in their id, so changed
code never reuses old cells.

Cells are scheduled by :mod:`hbgym.leaderboards.cluster`: ``loky`` processes by default (``--jobs``), or
a Ray / Dask cluster (``--backend ray|dask``, ``--address`` attaches to a running one). Completed cells
stream back to the parent, which is the only writer of the store, so a killed run resumes where it
stopped.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from hbgym.leaderboards.cluster import BACKENDS, resolve_address, run_cells
from hbgym.leaderboards.play import InvalidAgentOutput, build_slot_agents, checked_actions, play, public_view
from hbgym.leaderboards.records import make_record
from hbgym.leaderboards.specs import ResolvedAgent, applicable, code_hash, resolve, spec_kind, spec_name
from hbgym.leaderboards.store import ResultStore
from hbgym.leaderboards.suites import Setting, Suite

__all__ = ["BACKENDS", "Cell", "InvalidAgentOutput", "plan", "run_cell", "lost_record", "execute",
           "log_steps", "environment_info"]


@dataclass(frozen=True)
class Cell:
    """One unit of work: ``agent`` on ``setting`` for seeds ``seed_start .. seed_start + num_seeds - 1``."""

    agent_spec: str
    agent_name: str
    setting: dict[str, Any]  # Setting.spec()
    setting_key: str
    config_hash: str
    seed_start: int
    num_seeds: int
    suite_name: str
    suite_hash: str
    kind: str
    log_points: int
    device: str = "cpu"
    dtype: str | None = None
    role: str = "agent"  # "agent" | "uniform" | "oracle" (reference agents of the suite)
    cost: float = 0.0  # scheduling hint (rounds x observation size x seeds); not part of the results
    mode: str = "trusted"  # "trusted" (run, in-process) | "sandboxed" (submit, child process)
    code_hash: str = ""  # sha256 of the agent's source and factory name (specs.code_hash)
    agent_kind: str = "zoo"  # "zoo" | "sb3" | "file" | "module" (specs.spec_kind)

    @property
    def id(self) -> str:
        """``<agent>__<setting>__s<seed>``; third-party and sandboxed cells add ``@<code hash 12>-<mode>``."""
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.agent_name)
        if self.agent_kind != "zoo" or self.mode != "trusted":
            slug += f"@{self.code_hash[:12]}-{self.mode}"
        return f"{slug}__{self.setting_key}__s{self.seed_start}"


def log_steps(num_rounds: int, points: int) -> np.ndarray:
    """Log-spaced rounds ``1 .. num_rounds`` (1-based, unique, always ending at ``num_rounds``)."""
    steps = np.unique(np.round(np.geomspace(1, num_rounds, max(points, 2))).astype(np.int64))
    return steps


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_info() -> dict[str, Any]:
    """Package versions, Python, platform and git commit recorded with every row."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for pkg in ("hbgym", "numpy", "torch", "gymnasium", "scipy", "stable-baselines3"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {"versions": versions, "git_commit": _git_commit(), "host": platform.node()}


# --------------------------------------------------------------------------- planning


def _unresolved(spec: str) -> ResolvedAgent:
    """A third-party agent to be run sandboxed: known by its spec only (its code is never imported here)."""
    return ResolvedAgent(spec_name(spec), spec, "sandboxed", False, False, False, None)



def plan(
    suite: Suite,
    agent_specs: Iterable[str],
    device: str = "cpu",
    dtype: str | None = None,
    with_references: bool = True,
    log: Callable[[str], None] | None = None,
    mode: str = "trusted",
    names: dict[str, str] | None = None,
) -> tuple[list[Cell], list[tuple[str, str, str]]]:
    """The cells of ``agent_specs`` on ``suite`` (plus the suite's reference agents).

    ``mode="sandboxed"``: the agents' cells run in a child process (``submit``; the parent never
    imports third-party code, so third-party agents are assumed applicable); references stay trusted.
    ``names``: spec -> leaderboard name (``--name``), instead of the derived one.

    Returns:
        ``(cells, skipped)``; ``skipped`` lists ``(agent, setting key, reason)`` for zoo agents that
        do not apply to a setting (their ``from_env`` or first ``act`` raised ``ValueError``).
    """
    if mode not in ("trusted", "sandboxed"):
        raise ValueError(f"mode must be 'trusted' or 'sandboxed', got {mode!r}")
    names = dict(names or {})
    resolved = [_unresolved(s) if mode == "sandboxed" and spec_kind(s) != "zoo" else resolve(s)
                for s in agent_specs]
    for r in resolved:
        r.name = names.get(r.spec, r.name)
    labels = [r.name for r in resolved]
    if len(set(labels)) != len(labels):
        raise ValueError(f"agent names must be unique, got {labels}; use --name to tell them apart")
    hashes = {r.spec: code_hash(r.spec) for r in resolved}
    cells: list[Cell] = []
    skipped: list[tuple[str, str, str]] = []
    suite.validate()
    for setting in suite.settings:
        todo: list[tuple[ResolvedAgent, str]] = []
        if with_references and suite.kind == "online":
            todo.append((resolve(setting.uniform), "uniform"))
            if setting.oracle != "optimal":
                todo.append((resolve(setting.oracle), "oracle"))
        for r in resolved:
            if setting.agents and r.name not in setting.agents:
                reason = "not in this setting's paper comparison (Setting.agents)"
                skipped.append((r.name, setting.key, reason))
            elif r.name not in {t.name for t, _ in todo}:
                todo.append((r, "agent"))
        probe_env, cost = None, 0.0
        if suite.kind == "online":
            import gymnasium as gym

            import hbgym  # noqa: F401

            probe_env = gym.make_vec(setting.env_id, num_envs=1, **setting.env_kwargs)
            obs, _ = probe_env.reset(seed=0)
            cost = probe_env.unwrapped.model.num_rounds * sum(np.asarray(v).size for v in obs.values())
        for agent, role in todo:
            if suite.kind == "offline" and not agent.offline:
                skipped.append((agent.name, setting.key, "online agent; offline suite needs fit()"))
                continue
            if suite.kind == "online" and agent.offline:
                skipped.append((agent.name, setting.key, "an offline learner; see the offline suite"))
                continue
            if agent.spec not in hashes:
                hashes[agent.spec] = code_hash(agent.spec)
            reason = (applicable(agent, setting.env_id, setting.env_kwargs, probe_env)
                      if suite.kind == "online" else None)
            if reason is not None:
                skipped.append((agent.name, setting.key, reason))
                continue
            cell_mode = mode if role == "agent" else "trusted"
            for start, n in suite.chunks_of(setting):
                cells.append(Cell(agent.spec, agent.name, setting.spec(), setting.key, setting.config_hash,
                                  start, n, suite.name, suite.hash, suite.kind, suite.log_points, device,
                                  dtype, role, cost * n, cell_mode, hashes[agent.spec],
                                  spec_kind(agent.spec)))
        if probe_env is not None:
            probe_env.close()
    if log is not None:
        for name, key, reason in skipped:
            log(f"skip {name} on {key}: {reason.splitlines()[0][:120]}")
    return cells, skipped


# --------------------------------------------------------------------------- one cell


def check_actions(action: Any, shape: tuple[int, ...], num_actions: int) -> np.ndarray:
    """The action as int64 of ``shape`` by the env's own check, or :class:`InvalidAgentOutput`."""
    return checked_actions(action, shape, num_actions)


def _play_cell(agent: ResolvedAgent | None, cell: Cell, setting: Setting,
               limits: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """``(B, T)`` regret of the cell's seeds, and what the record says about the sandbox (or ``{}``)."""
    import gymnasium as gym

    import hbgym  # noqa: F401

    vec = gym.make_vec(setting.env_id, num_envs=cell.num_seeds, **setting.env_kwargs)
    try:
        if cell.mode == "sandboxed":
            from hbgym.leaderboards.sandbox import Limits, SandboxedAgent

            views = {b: public_view(vec, setting.env_id, setting.env_kwargs, batched=b)
                     for b in (True, False)}
            remote = SandboxedAgent(cell.agent_spec, views, cell.num_seeds, cell.seed_start,
                                    limits or Limits(), cell.device, cell.dtype)
            try:
                with remote:
                    return play(remote, vec, cell.seed_start), {"sandbox": remote.describe()}
            except Exception as err:
                raise SandboxFailure(remote.failure_reason(err), remote.describe()) from err
        if agent.kind in ("zoo", "sb3"):  # ours: built from the env itself, trusted
            policy = agent.build(vec, cell.num_seeds, cell.device, cell.dtype, seed=cell.seed_start)
        elif agent.batched:
            view = public_view(vec, setting.env_id, setting.env_kwargs, batched=True)
            policy = agent.build(view, cell.num_seeds, cell.device, cell.dtype, seed=cell.seed_start)
        else:
            view = public_view(vec, setting.env_id, setting.env_kwargs, batched=False)
            policy = build_slot_agents(agent.target, view, cell.num_seeds)
        return play(policy, vec, cell.seed_start), {}
    finally:
        vec.close()


class SandboxFailure(RuntimeError):
    """A sandboxed cell failed; the message is the full reason (what, exit status, output tail)."""

    def __init__(self, reason: str, sandbox: dict[str, Any]) -> None:
        super().__init__(reason)
        self.sandbox = sandbox


def _offline_rows(agent: ResolvedAgent, cell: Cell, setting: Setting) -> list[dict[str, Any]]:
    from hbgym import offline

    factory = agent.target
    rows = []
    for seed in range(cell.seed_start, cell.seed_start + cell.num_seeds):
        start = time.perf_counter()
        res = offline.evaluate_learner(factory, setting.env_id, dict(setting.kwargs),
                                       num_samples=setting.horizon, seed=seed)
        if not np.isfinite(res.suboptimality):
            raise InvalidAgentOutput(f"suboptimality is not finite ({res.suboptimality})")
        rows.append({"seed": seed, "steps": [setting.horizon], "cum_regret": [res.suboptimality],
                     "final_regret": res.suboptimality, "uniform_suboptimality": res.uniform_suboptimality,
                     "score": res.normalized_score, "seconds": time.perf_counter() - start})
    return rows


def run_cell(cell: Cell, catch: bool = True, limits: Any = None) -> dict[str, Any]:
    """Run one cell; returns the record stored as one file (``status`` ``ok`` or ``failed``).

    With ``catch=True`` an exception from the agent fails the cell (reason recorded) instead of the run.
    ``limits``: :class:`hbgym.leaderboards.sandbox.Limits` of a sandboxed cell (default limits if None).
    """
    start = time.perf_counter()
    setting = Setting.from_spec(cell.setting)
    env_info = environment_info()
    oracle, extra = False, {}
    try:
        if "torch" in sys.modules:  # one thread per cell: cells are the unit of parallelism
            sys.modules["torch"].set_num_threads(1)
        agent = None
        if cell.mode != "sandboxed":
            agent = resolve(cell.agent_spec)
            oracle = agent.oracle
        if cell.kind == "offline":
            if agent is None:
                raise ValueError("offline suites cannot be submitted sandboxed; use `run`")
            seed_rows = _offline_rows(agent, cell, setting)
        else:
            regret, extra = _play_cell(agent, cell, setting, limits)
            if not np.all(np.isfinite(regret)):
                raise InvalidAgentOutput("regret is not finite")
            cum = np.cumsum(regret, axis=1)
            steps = log_steps(cum.shape[1], cell.log_points)
            seconds = time.perf_counter() - start
            seed_rows = [
                {"seed": cell.seed_start + i, "steps": steps.tolist(),
                 "cum_regret": cum[i, steps - 1].tolist(), "final_regret": float(cum[i, -1]),
                 "seconds": seconds / cell.num_seeds}
                for i in range(cell.num_seeds)
            ]
        status, reason = "ok", None
    except Exception as err:  # noqa: BLE001 - an agent's failure fails its cell, not the run
        if not catch:
            raise
        reason = str(err) if isinstance(err, SandboxFailure) else f"{type(err).__name__}: {err}"
        extra = {"sandbox": err.sandbox} if isinstance(err, SandboxFailure) else extra
        status, reason = "failed", reason[:2000]
        seed_rows = [{"seed": cell.seed_start + i} for i in range(cell.num_seeds)]
    return make_record(cell, status, reason, seed_rows, time.perf_counter() - start, oracle, env_info,
                       os.getpid(), **extra)


def lost_record(cell: Cell, reason: str) -> dict[str, Any]:
    """The ``failed`` record of a cell whose worker process died each time it ran it (retries used up).

    Built on the driver: no worker returned anything, so its rows carry ``host``/``pid`` ``None``.
    """
    seeds = [{"seed": cell.seed_start + i} for i in range(cell.num_seeds)]
    record = make_record(cell, "failed", reason, seeds, 0.0, False, environment_info(), os.getpid())
    record["host"] = record["pid"] = None
    for row in record["rows"]:
        row["host"] = row["pid"] = None
    return record


# --------------------------------------------------------------------------- scheduling


def execute(
    cells: list[Cell],
    store: ResultStore,
    jobs: int = 1,
    backend: str = "local",
    progress: bool = True,
    worker: Callable[[Cell], dict[str, Any]] = run_cell,
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Run the cells not yet in ``store``, writing each as soon as it completes; returns the new records.

    ``backend``/``jobs``/``address`` choose where cells run (:func:`hbgym.leaderboards.cluster.run_cells`:
    local processes, or attach to a Ray / Dask cluster); this process stays the only writer of ``store``.
    """
    from tqdm.auto import tqdm

    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    resolve_address(backend, address)  # bad backend / address: an error before anything runs
    done = store.completed()
    # longest cells first (a stable sort: equal costs keep the plan's order), so workers finish together
    pending = sorted((c for c in cells if c.id not in done), key=lambda c: -c.cost)
    new: list[dict[str, Any]] = []
    if not pending:
        return new
    bar = tqdm(total=len(pending), desc=f"{cells[0].suite_name}", unit="cell", disable=not progress)
    try:
        stream = run_cells(pending, worker, jobs=jobs, backend=backend, address=address, lost=lost_record)
        for record in stream:
            store.add(record)
            new.append(record)
            bar.update(1)
    finally:
        bar.close()
        store.close()
    return new
