"""Optional dependencies: a clear ImportError naming the ``pip`` extra when one is missing.

``pip install hbgym`` installs the environments only (numpy, gymnasium, scipy). The agents need
torch (extra ``agents``), the leaderboard matplotlib, joblib and tqdm (extra ``leaderboard``); see
the ``[project.optional-dependencies]`` table of ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.util

__all__ = ["CPU_TORCH", "require"]

#: how to get a CPU-only torch wheel on any supported Python version
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def require(package: str, modules: tuple[str, ...], extra: str) -> None:
    """Raise ImportError naming ``extra`` if any of ``modules`` cannot be imported.

    Only looks the modules up (``importlib.util.find_spec``); imports nothing.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        hint = f" (CPU-only torch on any Python: {CPU_TORCH})" if "torch" in missing else ""
        raise ImportError(
            f"{package} needs {', '.join(missing)}, which is not installed: "
            f"pip install 'hbgym[{extra}]'{hint}"
        )
