"""Run benchmark code against an older commit of this repository, for before/after ratios in one run.

:func:`tree_at` unpacks ``git archive REF`` into a temporary folder laid out like the installed
package (``hbgym/agents`` and ``hbgym/leaderboards`` linked to the repository's ``agents/`` and
``leaderboards/``); :func:`run_python` runs a snippet in a child interpreter whose ``import hbgym``
resolves to that tree (its working directory comes first on ``sys.path``, before the editable
install of the current code).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def tree_at(ref: str) -> Path:
    """The repository at ``ref`` unpacked into a fresh temporary folder (importable as ``hbgym``)."""
    data = subprocess.run(["git", "archive", ref], cwd=REPO, check=True, capture_output=True).stdout
    root = Path(tempfile.mkdtemp(prefix=f"hbgym-{ref[:10]}-"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(root, filter="data")
    for sub in ("agents", "leaderboards"):
        link = root / "hbgym" / sub
        if (root / sub).is_dir() and not link.exists():
            link.symlink_to(root / sub, target_is_directory=True)
    return root


def run_python(tree: Path | None, code: str, timeout: float = 600) -> Any:
    """Run ``code`` in a child Python whose ``hbgym`` is ``tree`` (None: the current checkout) and
    return the JSON value it prints on its last line."""
    cwd = REPO if tree is None else tree
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) if tree is None else str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, check=True, capture_output=True, text=True,
        timeout=timeout,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
