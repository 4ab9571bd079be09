"""Packaging: the base install is the environments only (no torch), and the extras are named."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hbgym

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = [env_id for env_id in hbgym.ENV_IDS if not env_id.startswith(("MovieLens", "MNIST"))]

ENV_ONLY_SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys
    import gymnasium as gym
    import hbgym
    assert importlib.util.find_spec("torch") is None, "torch is installed"
    for env_id in {ids!r}:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=0)
        env.step(env.action_space.sample())
        frame = gym.make(env_id, render_mode="rgb_array")
        frame.reset(seed=0)
        assert frame.render().shape == (240, 320, 3)
    assert "torch" not in sys.modules
    try:
        import hbgym.agents
    except ImportError as exc:
        assert "hbgym[agents]" in str(exc) and "download.pytorch.org/whl/cpu" in str(exc), exc
    else:
        raise AssertionError("hbgym.agents imported without torch")
    print("ENV-ONLY OK", len({ids!r}))
    """
)


def test_base_dependencies_are_the_environments_only():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("[")[0] for dep in project["dependencies"]}
    assert names == {"numpy", "gymnasium", "scipy"}
    extras = project["optional-dependencies"]
    assert any(dep.startswith("torch") for dep in extras["agents"])
    for extra in ("agents", "leaderboard", "rl", "data", "offline", "distributed", "dev", "all"):
        assert extra in extras
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "cff-version:" in (ROOT / "CITATION.cff").read_text()


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    import importlib.util

    from hbgym.extras import require

    with pytest.raises(ImportError, match=r"needs not_a_module_xyz, .*hbgym\[leaderboard\]'$"):
        require("hbgym.leaderboards", ("numpy", "not_a_module_xyz"), "leaderboard")
    require("hbgym.agents", ("numpy",), "agents")  # present: no error
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    with pytest.raises(ImportError, match=r"needs torch, .*hbgym\[agents\].*--index-url .*whl/cpu"):
        require("hbgym.agents", ("torch",), "agents")


def _run_or_skip(command: list[str]) -> None:
    """Run a pip command; skip the test when PyPI cannot be reached, fail on any other error."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    offline = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution")
    if done.returncode and any(sign in done.stderr for sign in offline):
        pytest.skip("PyPI is unreachable: cannot fetch the build or base dependencies")
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_env_only_install_in_a_fresh_venv_has_no_torch(tmp_path):
    """Build the wheel, install it with its base dependencies (from PyPI) in a venv without system
    site-packages, then make, reset, step and render every synthetic id."""
    dist, venv, source = tmp_path / "dist", tmp_path / "venv", tmp_path / "source"
    skip = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "benchmarks", "docs", "tests")
    shutil.copytree(ROOT, source, ignore=skip)  # the build writes build/ and egg-info into its source
    pip = ["-m", "pip", "--disable-pip-version-check"]
    _run_or_skip([sys.executable, *pip, "wheel", "--quiet", "--no-deps", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("hbgym-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    _run_or_skip([str(python), *pip, "install", "--quiet", str(wheel)])
    run = subprocess.run(
        [str(python), "-c", ENV_ONLY_SCRIPT.format(ids=SYNTHETIC)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert f"ENV-ONLY OK {len(SYNTHETIC)}" in run.stdout
