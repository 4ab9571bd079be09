"""One-shot GPU check: the CUDA tests, then CUDA vs CPU figures, in one command of <= 8 minutes.

    python -m benchmarks.gpu_check                       # on a CUDA machine: writes results/gpu.md
    python -m benchmarks.gpu_check --device cpu --tiny   # end-to-end check here: results/gpu_cpu_check.md

Steps (each line of the report names its setting; times are wall seconds after warm-up rounds,
with ``torch.cuda.synchronize`` before every clock read on CUDA):

1. ``pytest -m cuda`` (the tests marked ``cuda``; they skip without a GPU).
2. HierTS on HierGaussianMAB-v0 at B = 10^4 and 10^5 (agent act + update only; env excluded):
   decisions per second (target >= 10^7 on CUDA), float32 and float64, on ``--device`` and on CPU.
3. meTS on MixedEffect-v0 at B = 1000: seconds per seed-round, same grid.
4. NPM-TS and GIDS on PartialContext-v0 (mixture) with 10 seeds batched: seconds per seed for
   ``--coco-batches`` user batches (the full App. C.1 episode has 30; fewer keep the CPU side of
   the comparison inside the time budget), same grid.

A section is skipped (and said so) once ``--max-minutes`` have passed. ``--tiny`` shrinks every size
(for the CPU self-check and its test). The report says whether a GPU was present.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import hbgym  # noqa: F401
from benchmarks.common import RESULTS, machine_line, markdown_table

REPO = Path(__file__).resolve().parent.parent


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def agent_seconds(
    cls: Any,
    env_id: str,
    num_envs: int,
    rounds: int,
    device: str,
    dtype: str,
    warmup: int = 2,
    env_kw: dict[str, Any] | None = None,
    agent_kw: dict[str, Any] | None = None,
) -> tuple[float, int]:
    """Wall seconds of ``rounds`` rounds of act + update (env excluded) and decisions made."""
    vec = gym.make_vec(env_id, num_envs=num_envs, **(env_kw or {}))
    agent = cls.from_env(vec, seed=0, device=device, dtype=dtype, **(agent_kw or {}))
    obs, _ = vec.reset(seed=0)
    agent.reset(seed=0)
    spent, decisions = 0.0, 0
    total = min(warmup + rounds, vec.unwrapped.model.num_rounds)
    for t in range(total):
        _sync(device)
        start = time.perf_counter()
        action = agent.act(obs)
        _sync(device)
        mid = time.perf_counter()
        nxt, _, _, _, info = vec.step(action)
        _sync(device)
        end = time.perf_counter()
        agent.update(obs, action, info["rewards"])
        _sync(device)
        if t >= warmup:
            spent += mid - start + time.perf_counter() - end
            decisions += action.size
        obs = nxt
    return spent, decisions


def run_cuda_tests() -> str:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=REPO, capture_output=True, text=True,
    )
    tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return f"`pytest -m cuda`: exit {proc.returncode}, {tail} ({time.perf_counter() - start:.0f} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (self-check)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (CPU self-check, tests)")
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest -m cuda step")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--coco-batches", type=int, default=4)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--max-minutes", type=float, default=7.0)
    parser.add_argument("--out", default=None, help="default results/gpu.md (cuda) or gpu_cpu_check.md (cpu)")
    args = parser.parse_args(argv)
    from hbgym.agents import GIDS, NPMTS, HierTS, MeTS

    torch.set_num_threads(1)
    has_cuda = torch.cuda.is_available()
    if args.device.startswith("cuda") and not has_cuda:
        print("No CUDA device is available in this session: run with --device cpu for the CPU self-check.")
        return 2
    default_name = "gpu.md" if args.device.startswith("cuda") else "gpu_cpu_check.md"
    out = Path(args.out) if args.out else RESULTS / default_name
    began = time.perf_counter()
    title = f"CUDA: {torch.cuda.get_device_name(0)}" if has_cuda else "no GPU: CPU self-check only"
    command = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"# GPU check ({title})",
        "",
        f"Command: `python -m benchmarks.gpu_check {command}`",
        "",
        machine_line(),
        "",
    ]
    if not has_cuda:
        lines += ["No CUDA device was available: every figure below is CPU only (a check that the script "
                  "runs end to end), not a GPU result.", ""]
    if not args.no_tests:
        lines += [run_cuda_tests(), ""]
    devices = [args.device] if args.device == "cpu" else [args.device, "cpu"]
    hier_sizes = [100, 1000] if args.tiny else [10**4, 10**5]
    mets_size = 20 if args.tiny else 1000
    coco_seeds = 2 if args.tiny else 10
    coco_kw: dict[str, Any] = {"scenario": "mixture", "num_batches": 1 if args.tiny else args.coco_batches}
    coco_agent_kw = {"num_particles": 16, "num_components": 8, "mu_grid_size": 6, "context_grid_size": 3}
    rows: list[list[Any]] = []
    skipped: list[str] = []

    def budget_left() -> bool:
        return time.perf_counter() - began < args.max_minutes * 60

    sections = [
        *(("HierTS", HierTS, "HierGaussianMAB-v0", size, {}) for size in hier_sizes),
        ("meTS", MeTS, "MixedEffect-v0", mets_size, {}),
        ("NPM-TS", NPMTS, "PartialContext-v0", coco_seeds, coco_kw),
        ("GIDS", GIDS, "PartialContext-v0", coco_seeds, coco_kw),
    ]
    for name, cls, env_id, size, env_kw in sections:
        for dtype in args.dtypes:
            for device in devices:
                label = f"{name} {env_id} B={size} {device} {dtype}"
                if not budget_left():
                    skipped.append(label)
                    continue
                coco = name in ("NPM-TS", "GIDS")
                rounds = 10**6 if coco else args.rounds  # CoCo: the whole (shortened) episode
                seconds, decisions = agent_seconds(
                    cls, env_id, size, rounds, device, dtype, warmup=0 if coco else 2, env_kw=env_kw,
                    agent_kw=coco_agent_kw if coco and args.tiny else None,
                )
                if coco:
                    figure = f"{seconds / size:.2f} s per seed ({coco_kw['num_batches']} user batches)"
                elif name == "meTS":
                    figure = f"{seconds / (decisions or 1) * 1e6:.2f} us per seed-round"
                else:
                    figure = f"{decisions / seconds:.3g} decisions/s"
                rows.append([name, env_id, size, device, dtype, figure])
                print(" | ".join(map(str, rows[-1])), flush=True)
    lines += [markdown_table(["agent", "env", "B", "device", "dtype", "figure"], rows), ""]
    if skipped:
        lines += ["Skipped (time budget): " + "; ".join(skipped), ""]
    lines += [f"Total {time.perf_counter() - began:.0f} s.", ""]
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
