"""benchmarks/gpu_check.py end to end in its CPU self-check mode (tiny sizes), and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from benchmarks import gpu_check  # noqa: E402


def test_cpu_self_check_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "gpu_cpu_check.md"
    args = ["--device", "cpu", "--tiny", "--no-tests", "--rounds", "2", "--out", str(out)]
    assert gpu_check.main(args) == 0
    text = out.read_text()
    if not torch.cuda.is_available():
        assert "no GPU" in text and "CPU only" in text
    for name in ("HierTS", "meTS", "NPM-TS", "GIDS"):
        for dtype in ("float32", "float64"):
            rows = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
            assert any(f"| {dtype} |" in line for line in rows), (name, dtype)
    assert "decisions/s" in text and "us per seed-round" in text and "s per seed" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cuda_mode_without_gpu_refuses_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    assert gpu_check.main(["--no-tests", "--out", str(out)]) == 2
    assert not out.exists()
