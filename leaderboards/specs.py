"""Agent specs: how the leaderboard turns a ``--agent`` string into agents.

Accepted forms:

* a zoo name (``HierTS``; ``hbgym.agents.AGENTS``) - batched torch agents built with
  ``Cls.from_env(vec_env, num_envs=B, device=, dtype=, seed=)``;
* ``package.module:factory`` or ``path/to/file.py:factory`` - a third-party factory called as
  ``factory(view)`` once per seed slot, where ``view`` is a
  :class:`~hbgym.leaderboards.play.PublicEnv` of one slot (public model copy, spaces, spec; never
  the env); it returns an object with ``reset(seed)``, ``act(obs)`` and
  ``update(obs, action, reward)`` (DESIGN.md sec. 4). A factory with the attribute
  ``batched = True`` is instead called as ``factory(view, num_envs=B, seed=s)`` with the batched
  view and must act on batched observations ``(B, L)``. Offline learners are factories
  ``factory(env, dataset) -> policy`` marked ``offline = True``;
* ``sb3:ALGO:path/to/model.zip`` - a stable-baselines3 model through :mod:`hbgym.leaderboards.rl`.

Specs are plain strings so that they travel to worker processes; :func:`resolve` runs there (for
``submit``: in the sandboxed child only). :func:`code_hash` ties results to the source unimported.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ResolvedAgent", "resolve", "zoo", "applicable", "spec_name", "spec_kind", "code_hash",
           "source_files"]


def zoo() -> dict[str, type]:
    from hbgym.agents import AGENTS

    return dict(AGENTS)


@dataclass
class ResolvedAgent:
    """A resolved spec.

    Attributes:
        name: the name on the leaderboard (zoo name, factory name, or ``sb3-ALGO-file``).
        spec: the original string.
        kind: ``"zoo"``, ``"factory"`` or ``"sb3"``.
        batched: runs a seed chunk in one vector env.
        oracle: reads the sampled truth (labelled on the leaderboard).
        offline: an offline learner (``fit(dataset)``), for ``offline`` suites only.
        target: the class or factory.
    """

    name: str
    spec: str
    kind: str
    batched: bool
    oracle: bool
    offline: bool
    target: Any

    def build(self, env: Any, num_envs: int, device: str = "cpu", dtype: str | None = None,
              seed: int | None = None) -> Any:
        """An online agent for ``env`` (a vector env of ``num_envs`` if batched, else a single env)."""
        if self.kind == "zoo":
            return self.target.from_env(env, num_envs=num_envs, device=device, dtype=dtype, seed=seed)
        if self.kind == "sb3":
            from hbgym.leaderboards.rl import load_sb3_agent

            algo, path = self.target
            return load_sb3_agent(algo, path, env, num_envs, device)
        if self.batched:
            return self.target(env, num_envs=num_envs, seed=seed)
        return self.target(env)


#: the directory holding the ``leaderboards`` package: ``sb3:PPO:leaderboards/baselines/ppo.zip``
#: finds the packaged baselines from any working directory
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _sb3_file(where: str) -> Path | None:
    for path in (Path(where), PACKAGE_ROOT / where):
        if path.is_file():
            return path
        if path.suffix != ".zip" and path.with_name(path.name + ".zip").is_file():
            return path.with_name(path.name + ".zip")
    return None


def _load_module_file(path: Path) -> Any:
    name = f"_hbgym_user_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _spec_error(spec: str) -> ValueError:
    names = ", ".join(zoo())
    return ValueError(
        f"unknown agent spec {spec!r}; use a zoo name ({names}), 'all', 'package.module:factory', "
        "'path/to/file.py:factory' or 'sb3:ALGO:path/to/model.zip'"
    )


def spec_name(spec: str) -> str:
    """The leaderboard name of a spec, without importing anything (zoo name, factory name, sb3-ALGO-file)."""
    if spec.startswith("sb3:"):
        parts = spec.split(":", 2)
        if len(parts) != 3:
            return spec
        stem = Path(parts[2]).stem
        return f"sb3-{parts[1]}" if stem.lower() == parts[1].lower() else f"sb3-{parts[1]}-{stem}"
    if ":" not in spec:
        return spec
    where, _, attr = spec.rpartition(":")
    stem = Path(where).stem if where.endswith(".py") else where.rpartition(".")[2]
    return f"{stem}.{attr}"


def spec_kind(spec: str) -> str:
    """``"zoo"``, ``"sb3"``, ``"file"`` (``path.py:factory``) or ``"module"`` (``pkg.mod:factory``)."""
    if spec.startswith("sb3:"):
        return "sb3"
    if ":" not in spec:
        return "zoo"
    where = spec.rpartition(":")[0]
    return "file" if where.endswith(".py") or "/" in where or "\\" in where else "module"


def source_files(spec: str) -> list[Path]:
    """The files whose bytes define the agent of ``spec``, found without importing anything.

    A file spec: the file; a module spec: every ``.py`` file of its top-level package (the module's
    source tree); an SB3 spec: the model zip; a zoo name: the ``hbgym.agents`` source tree.

    Raises:
        ValueError: if the source cannot be found (naming the spec).
    """
    kind = spec_kind(spec)
    if kind == "sb3":
        parts = spec.split(":", 2)
        path = _sb3_file(parts[2]) if len(parts) == 3 and parts[2] else None
        if path is None:
            raise ValueError(f"sb3 spec {spec!r}: no model file (use 'sb3:ALGO:path/to/model.zip')")
        return [path]
    if kind == "file":
        path = Path(spec.rpartition(":")[0])
        if not path.is_file():
            raise ValueError(f"agent spec {spec!r}: file {str(path)!r} does not exist")
        return [path]
    if kind == "zoo":
        return sorted((PACKAGE_ROOT / "agents").rglob("*.py"))
    location = module_location(spec)
    if location.is_dir():
        return sorted(location.rglob("*.py"))
    return [location]


def module_location(spec: str) -> Path:
    """The top-level package directory (or single module file) of a ``pkg.mod:factory`` spec.

    Found by asking the import system's finders for the top-level name only: located, not imported,
    and never taken from ``sys.modules`` (an earlier import may have come from another copy).

    Raises:
        ValueError: if it cannot be found or has no source on disk (naming the spec).
    """
    top = spec.rpartition(":")[0].split(".")[0]
    found = next((spec for finder in sys.meta_path if hasattr(finder, "find_spec")
                  for spec in [finder.find_spec(top, None)] if spec is not None), None)
    if found is None:
        raise ValueError(f"agent spec {spec!r}: cannot find module {top!r}")
    if found.submodule_search_locations:
        locations = list(found.submodule_search_locations)
        if len(locations) != 1:
            raise ValueError(f"agent spec {spec!r}: {top!r} is a namespace package spread over "
                             f"{len(locations)} directories; make it a regular package (__init__.py)")
        return Path(locations[0])
    if found.origin is None or not Path(found.origin).is_file():
        raise ValueError(f"agent spec {spec!r}: module {top!r} has no source file")
    return Path(found.origin)


def code_hash(spec: str) -> str:
    """sha256 over the agent's source (:func:`source_files`) and its factory name (SB3: the algorithm),
    as hex; it does not depend on where the source lies.

    Computed without importing the agent, so the trusted side can tie results to code it never runs.
    """
    import hashlib

    digest = hashlib.sha256()
    files = source_files(spec)
    root = Path(os.path.commonpath(files)) if len(files) > 1 else files[0].parent
    for path in files:
        name = str(path.relative_to(root))
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    # the factory: an SB3 spec's algorithm (its last field is the model's path, which says nothing about
    # the code: the same zip anywhere hashes the same), else the name after the last colon
    factory = spec.split(":", 2)[1] if spec_kind(spec) == "sb3" else spec.rpartition(":")[2]
    digest.update(b"factory:" + factory.encode())
    return digest.hexdigest()


def resolve(spec: str) -> ResolvedAgent:
    """Resolve one spec string (``all`` is expanded by the CLI, not here)."""
    table = zoo() if spec_kind(spec) == "zoo" else {}  # third-party specs never import the zoo (torch)
    if spec in table:
        cls = table[spec]
        return ResolvedAgent(spec, spec, "zoo", True, bool(getattr(cls, "oracle", False)),
                             bool(getattr(cls, "offline", False)), cls)
    if spec.startswith("sb3:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ValueError(f"sb3 spec must be 'sb3:ALGO:path/to/model.zip', got {spec!r}")
        try:
            importlib.import_module("hbgym.leaderboards.rl")
        except ImportError as err:
            raise ValueError(
                f"{spec!r}: SB3 agents need hbgym.leaderboards.rl and stable-baselines3 "
                f"(pip install -e '.[rl]'): {err}"
            ) from err
        path = _sb3_file(parts[2])
        if path is None:
            raise ValueError(f"{spec!r}: model file {parts[2]!r} does not exist (nor under {PACKAGE_ROOT})")
        return ResolvedAgent(spec_name(spec), spec, "sb3", True, False, False, (parts[1], str(path)))
    if ":" not in spec:
        raise _spec_error(spec)
    where, _, attr = spec.rpartition(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"agent spec {spec!r}: file {where!r} does not exist")
        module = _load_module_file(path)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise ValueError(f"agent spec {spec!r}: cannot import module {where!r}: {err}") from err
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise ValueError(f"agent spec {spec!r}: {where!r} has no {attr!r}; callables there: {public}")
    target = getattr(module, attr)
    if not callable(target):
        raise ValueError(f"agent spec {spec!r}: {attr!r} is not callable")
    return ResolvedAgent(spec_name(spec), spec, "factory", bool(getattr(target, "batched", False)),
                         bool(getattr(target, "oracle", False)), bool(getattr(target, "offline", False)),
                         target)


def applicable(agent: ResolvedAgent, env_id: str, env_kwargs: dict[str, Any], env: Any = None) -> str | None:
    """``None`` if the agent can play this env setting, else the reason it cannot.

    Zoo agents declare their scope by raising ``ValueError`` in ``from_env`` or at the first ``act``
    (e.g. ``EbmTS`` needs a MultiBandit model, the MultiBandit baselines need ``obs['context']``);
    the probe builds the agent on a one-seed env, resets and asks for one action. SB3 models apply
    where they were trained (the sidecar's env id) and where their observation size fits (probed).
    Third-party agents are assumed applicable (a failure shows as a failed cell). ``env``: a
    one-seed vector env of the setting to reuse across probes (made here if None).
    """
    if agent.kind not in ("zoo", "sb3") or agent.offline:
        return None
    if agent.kind == "sb3":  # the sidecar of a packaged baseline names the env it was trained on
        sidecar = Path(agent.target[1]).with_suffix(".json")
        if sidecar.is_file():
            import json

            trained = json.loads(sidecar.read_text()).get("env_id")
            if trained is not None and trained != env_id:
                return f"{agent.name} was trained on {trained}, not {env_id}"
    own = env is None
    if own:
        import gymnasium as gym

        import hbgym  # noqa: F401

        env = gym.make_vec(env_id, num_envs=1, **env_kwargs)
    try:
        obs, _ = env.reset(seed=0)
        policy = agent.build(env, 1, seed=0)
        policy.reset(seed=0)
        policy.act(obs)
    except ValueError as err:
        return str(err)
    finally:
        if own:
            env.close()
    return None
