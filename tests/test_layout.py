"""The package layout (DESIGN.md sec. 1): no import cycles, layers point down only, and the wheel
installs only ``hbgym`` so that it coexists with other packages named ``agents`` (openai-agents).

The import graph is read from the INSTALLED package: every module of ``hbgym``, ``hbgym.agents`` and
``hbgym.leaderboards`` found with :func:`pkgutil.walk_packages`, each parsed with :mod:`ast` (every
import statement, also inside functions: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import shutil
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import pytest

ROOTS = ("hbgym", "hbgym.agents", "hbgym.leaderboards")
REPO = Path(__file__).resolve().parents[1]

#: the cycle there was (issue 15: submit imported cli's helpers); both now import leaderboards.console
KNOWN_CYCLE = frozenset({"hbgym.leaderboards.cli", "hbgym.leaderboards.submit"})


# --------------------------------------------------------------------------- the import graph


@cache
def module_files() -> dict[str, Path]:
    """Every module of the installed package: name -> source file."""
    found: dict[str, Path] = {}
    for root in ROOTS:
        package = importlib.import_module(root)
        found[root] = Path(package.__file__)
        errors: list[str] = []
        for info in pkgutil.walk_packages(package.__path__, root + ".", onerror=errors.append):
            spec = importlib.util.find_spec(info.name)
            assert spec is not None and spec.origin is not None, info.name
            found[info.name] = Path(spec.origin)
        assert not errors, f"modules that fail to import: {errors}"
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of the dotted ``name`` that is one of our modules (None: not ours)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``module`` imports anywhere in its source (relative imports resolved)."""
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            # `from pkg import sub` depends on the submodule when `sub` is one, else on pkg itself
            names = [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                targets.add(target)
    return targets


@cache
def import_graph() -> dict[str, frozenset[str]]:
    modules = module_files()
    return {name: frozenset(imports_of(name, modules)) for name in modules}


def strongly_connected(graph: dict[str, frozenset[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def cycle_path(graph: dict[str, frozenset[str]], component: frozenset[str]) -> list[str]:
    """One import cycle inside ``component``, as ``[a, b, ..., a]`` (breadth-first, shortest)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not a cycle")


def describe(graph: dict[str, frozenset[str]], components: list[frozenset[str]]) -> str:
    return "; ".join(" -> ".join(cycle_path(graph, c)) for c in components)


# --------------------------------------------------------------------------- tests of the helpers


def test_cycle_finder_finds_a_planted_cycle_and_nothing_else():
    graph = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a", "d"}),
        "d": frozenset(),
        "e": frozenset({"d"}),
    }
    components = strongly_connected(graph)
    assert components == [frozenset({"a", "b", "c"})]
    assert cycle_path(graph, components[0]) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_relative_and_from_imports_are_resolved(tmp_path):
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from p import sub\n")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\nfrom ..other import thing\n")
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from .. import other\n    import os\n")
    (pkg / "other.py").write_text("from p.sub.leaf import f\n")
    modules = {
        "p": pkg / "__init__.py",
        "p.sub": pkg / "sub" / "__init__.py",
        "p.sub.leaf": pkg / "sub" / "leaf.py",
        "p.other": pkg / "other.py",
    }
    assert imports_of("p", modules) == {"p.sub"}
    assert imports_of("p.sub", modules) == {"p.sub.leaf", "p.other"}
    assert imports_of("p.sub.leaf", modules) == {"p.other"}  # function-level import counts
    assert imports_of("p.other", modules) == {"p.sub.leaf"}


# --------------------------------------------------------------------------- the package


def test_the_walk_sees_every_layer():
    modules = module_files()
    for name in ("hbgym.envs.core", "hbgym.offline.dataset", "hbgym.fileio", "hbgym.agents.hierarchies",
                 "hbgym.agents.posteriors.gaussian", "hbgym.leaderboards.cli"):
        assert name in modules, name
    assert "hbgym.models" in import_graph()["hbgym.agents.hierarchies"]


def test_no_import_cycles():
    graph = import_graph()
    cycles = list(strongly_connected(graph))
    assert not cycles, "import cycles: " + describe(graph, cycles)


def test_no_cli_submit_cycle():
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if c >= KNOWN_CYCLE]
    assert not cycles, "import cycles: " + describe(graph, cycles)


def _violations(importers: str, forbidden: tuple[str, ...], exempt: tuple[str, ...] = ()) -> list[str]:
    def inside(name: str, prefixes: tuple[str, ...]) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    return sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if inside(module, (importers,)) and not inside(module, exempt)
        for target in targets
        if inside(target, forbidden)
    )


def test_layers_point_down_only():
    """benchmarks -> hbgym.leaderboards -> hbgym.agents -> hbgym (environments)."""
    upper = ("hbgym.agents", "hbgym.leaderboards")
    assert _violations("hbgym", upper, exempt=upper) == []
    assert _violations("hbgym.agents", ("hbgym.leaderboards",)) == []


def test_agents_read_models_not_env_modules():
    """Agents know an env through its public model (hbgym.models), never through an env module."""
    assert _violations("hbgym.agents", ("hbgym.envs",)) == []


def test_opo_needs_only_the_dataset_module():
    offline = {t for t in import_graph()["hbgym.agents.opo"] if t.startswith("hbgym.offline")}
    assert offline == {"hbgym.offline.dataset"}


def test_offline_flag_is_the_only_offline_marker():
    """Zoo learners are offline exactly when they declare ``offline = True`` (OfflinePolicy does)."""
    from hbgym.agents import AGENTS, OfflinePolicy

    offline = {name for name, cls in AGENTS.items() if getattr(cls, "offline", False)}
    assert offline == {"HierOPO", "OracleOPO", "FlatOPO"}
    assert all(issubclass(AGENTS[name], OfflinePolicy) for name in offline)


# --------------------------------------------------------------------------- the wheel


def _run(args: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


@pytest.mark.slow
def test_wheel_has_only_hbgym_and_coexists_with_openai_agents(tmp_path):
    """The wheel installs one top-level package; next to `openai-agents` (whose import name is
    `agents`) both work in one process, and so does the console script."""
    source = tmp_path / "src"  # build from a copy: setuptools writes build/ and *.egg-info next to the source
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "docs", "tests", "benchmarks"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                  "-w", str(tmp_path / "dist"), str(source)], timeout=120)
    if built.returncode != 0 and "No matching distribution found for setuptools" in built.stderr:
        pytest.skip("pip cannot get setuptools for the isolated wheel build (no package index here)")
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("hbgym-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"hbgym"}, sorted(top)
    assert all(t.startswith("hbgym-") for t in top if t.endswith(".dist-info")), sorted(top)
    # every source file of the three folders (and the packaged baselines) is inside, under hbgym/
    for folder, inside in [("hbgym", "hbgym"), ("agents", "hbgym/agents"),
                           ("leaderboards", "hbgym/leaderboards")]:
        expected = {f"{inside}/{p.relative_to(REPO / folder).as_posix()}" for p in (REPO / folder).rglob("*")
                    if p.suffix in (".py", ".zip", ".json") and "__pycache__" not in p.parts
                    and (p.suffix == ".py" or p.parent.name == "baselines")}
        assert expected and expected <= set(names), f"missing from the wheel: {sorted(expected - set(names))}"
    assert "hbgym/offline/dataset.py" in names and "hbgym/agents/hierarchies.py" in names

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], timeout=60)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    got = _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], timeout=120)
    assert got.returncode == 0, got.stderr[-3000:]
    theirs = _run([str(python), "-m", "pip", "install", "-q", "openai-agents"], timeout=180)
    if theirs.returncode != 0:
        pytest.skip("pip cannot install openai-agents here: " + theirs.stderr.strip()[-500:])
    code = (
        "import os, agents, hbgym, hbgym.agents\n"
        "theirs = os.path.dirname(agents.__file__)\n"
        "assert theirs != os.path.dirname(hbgym.agents.__file__) and os.path.basename(theirs) == 'agents'\n"
        "assert not hasattr(agents, 'AGENTS') and hasattr(agents, 'Agent') and hasattr(agents, 'Runner')\n"
        "from hbgym.leaderboards.cli import main\n"
        "assert main(['list']) == 0 and 'HierTS' in hbgym.agents.AGENTS\n"
        "print('OK', agents.__file__, hbgym.__file__)\n"
    )
    both = _run([str(python), "-c", code], timeout=120, cwd=tmp_path)
    assert both.returncode == 0 and "HierTS" in both.stdout, both.stdout[-2000:] + both.stderr[-3000:]
    ok = both.stdout.strip().splitlines()[-1].split()
    assert ok[0] == "OK" and str(venv) in ok[1] and str(venv) in ok[2], ok  # both from the fresh venv
    script = _run([str(venv / "bin" / "hbgym-leaderboard"), "list"], timeout=120, cwd=tmp_path)
    assert script.returncode == 0 and "HierTS" in script.stdout, script.stderr[-3000:]
