"""Reproduce HierOPO (Hong et al., ICML 2023) Sec. 7: HierOPO vs OracleOPO vs FlatOPO.

Sec. 7.1 (Fig. 2), synthetic: ``HierGaussian-v0`` with d=4, K=5, action features
phi(x, a) ~ U[-0.5, 0.5]^d drawn afresh for every context (``action_set="resampled"``: the paper's
"each context-action pair is a random vector"), sigma=0.5, Sigma_q = sq^2 I with sq in {0.5, 1},
Sigma_0 = 0.5^2 I, m=10 tasks and n=500 logged samples by default; one varies n (m=10) or m
(n=500). Each logged sample: a task drawn uniformly, a uniformly random action, its reward.
All learners use alpha=0.1. The score is the suboptimality V(pi_*) - V(pi_hat) averaged over tasks,
exact given a fixed Monte Carlo sample of ``--contexts`` contexts per task, and mean +- standard
error over ``--runs`` runs (30 in the paper). Run r uses seed r for everything (instance, data,
evaluation contexts), so the learners and the values of n are compared on the same instances.

Sec. 7.2 (Fig. 3), MovieLens: m=100 users of the largest cluster, K=10 movies per context, vary n,
10 runs: run with ``--movielens`` once ``MovieLensMulti-v0`` is registered (real-data issue).

    python benchmarks/hieropo_reproduction.py                 # full: 30 runs (a few minutes)
    python benchmarks/hieropo_reproduction.py --runs 5 --quick

Writes ``benchmarks/results/hieropo_fig2.{md,png,json}`` (and ``hieropo_fig3.*`` with MovieLens).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
from hbgym.agents import FlatOPO, HierOPO, OracleOPO  # noqa: E402

import hbgym  # noqa: E402
from benchmarks.common import RESULTS, command_line, is_full_run, provenance  # noqa: E402
from hbgym import offline  # noqa: E402

LEARNERS = (OracleOPO, HierOPO, FlatOPO)
SYNTHETIC = {"num_actions": 5, "dim": 4, "sigma_0": 0.5, "sigma": 0.5, "action_set": "resampled"}
N_VALUES = (25, 50, 100, 200, 500, 1000, 2000)
M_VALUES = (5, 10, 20, 50, 100)
QUICK_N, QUICK_M = (50, 500), (10, 50)


def one_run(
    env_id: str, env_kwargs: dict[str, Any], num_samples: int, seed: int, contexts: int, alpha: float
) -> dict[str, float]:
    """Suboptimality (mean over tasks) of each learner, and of uniform, on one instance."""
    import gymnasium as gym

    env = gym.make(env_id, **env_kwargs)
    dataset = offline.collect(env, num_samples, seed=seed)  # env now holds the run's instance
    ctx = offline.evaluation_contexts(env, contexts, seed=seed)
    out = {"Uniform": float((ctx.optimal_value() - ctx.uniform_value()).mean())}
    for cls in LEARNERS:
        policy = cls.from_env(env, alpha=alpha).fit(dataset)
        out[cls.name] = float(ctx.suboptimality(policy).mean())
    return out


def sweep(
    env_id: str,
    base: dict[str, Any],
    vary: str,
    values: tuple[int, ...],
    runs: int,
    contexts: int,
    alpha: float,
    fixed_n: int,
) -> list[dict[str, Any]]:
    rows = []
    for value in values:
        kwargs = dict(base)
        n = fixed_n
        if vary == "n":
            n = value
        else:
            kwargs["num_tasks"] = value
        start = time.perf_counter()
        subs = [one_run(env_id, kwargs, n, seed, contexts, alpha) for seed in range(runs)]
        row = {
            "vary": vary,
            "value": value,
            "num_samples": n,
            "num_tasks": kwargs["num_tasks"],
            "seconds": time.perf_counter() - start,
        }
        for name in subs[0]:
            vals = np.array([s[name] for s in subs])
            row[name] = {
                "mean": float(vals.mean()),
                "se": float(vals.std(ddof=1) / np.sqrt(runs)),
                "runs": vals.tolist(),
            }
        rows.append(row)
        print(
            f"  {vary}={value:>5}: "
            + "  ".join(
                f"{k} {row[k]['mean']:.4f}±{row[k]['se']:.4f}" for k in ("OracleOPO", "HierOPO", "FlatOPO")
            )
            + f"  ({row['seconds']:.1f}s)",
            flush=True,
        )
    return rows


def markdown(panels: list[tuple[str, list[dict[str, Any]]]], header: str) -> str:
    names = ["OracleOPO", "HierOPO", "FlatOPO", "Uniform"]
    lines = [header, ""]
    for title, rows in panels:
        vary = rows[0]["vary"]
        columns = " | ".join(f"{vary}={r['value']}" for r in rows)
        lines += [f"### {title}", "", f"| learner | {columns} |", "|---|" + "---|" * len(rows)]
        for name in names:
            cells = [f"{r[name]['mean']:.4f} ± {r[name]['se']:.4f}" for r in rows]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        ratio = [r["HierOPO"]["mean"] / r["FlatOPO"]["mean"] for r in rows]
        lines.append("| HierOPO / FlatOPO | " + " | ".join(f"{x:.2f}" for x in ratio) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(panels: list[tuple[str, list[dict[str, Any]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    styles = {"OracleOPO": ("tab:green", "--"), "HierOPO": ("tab:blue", "-"), "FlatOPO": ("tab:red", "-")}
    for ax, (title, rows) in zip(axes[0], panels, strict=True):
        x = np.array([r["value"] for r in rows])
        for name, (color, style) in styles.items():
            mean = np.array([r[name]["mean"] for r in rows])
            se = np.array([r[name]["se"] for r in rows])
            ax.plot(x, mean, style, color=color, marker="o", ms=3, label=name)
            ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("dataset size n" if rows[0]["vary"] == "n" else "number of tasks m")
        ax.set_ylabel("suboptimality")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def environment() -> dict[str, Any]:
    return {
        "hbgym": hbgym.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": "cpu",
        "dtype": "float64",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per point (paper: 30; 10 for MovieLens)")
    parser.add_argument("--contexts", type=int, default=1000, help="evaluation contexts per task")
    parser.add_argument("--alpha", type=float, default=0.1, help="LCB width (paper: 0.1)")
    parser.add_argument("--quick", action="store_true", help="two points per sweep (smoke run)")
    parser.add_argument("--movielens", action="store_true", help="also Sec. 7.2 on MovieLensMulti-v0")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.out == RESULTS and not is_full_run(parser, args, ("quick", "runs", "contexts", "alpha")):
        args.out = RESULTS / "partial"  # a smoke or smaller run never overwrites the committed results
    torch.set_num_threads(1)  # tiny batched linear algebra: threads only add overhead
    args.out.mkdir(parents=True, exist_ok=True)
    n_values, m_values = (QUICK_N, QUICK_M) if args.quick else (N_VALUES, M_VALUES)

    start = time.perf_counter()
    panels, raw = [], []
    for sq in (0.5, 1.0):
        base = {**SYNTHETIC, "sigma_q": sq, "num_tasks": 10}
        print(f"sigma_q={sq}: vary n (m=10)")
        rows = sweep("HierGaussian-v0", base, "n", n_values, args.runs, args.contexts, args.alpha, 500)
        panels.append((f"vary n, m=10, sigma_q={sq}", rows))
        raw.append({"sigma_q": sq, "rows": rows})
    for sq in (0.5, 1.0):
        base = {**SYNTHETIC, "sigma_q": sq, "num_tasks": 10}
        print(f"sigma_q={sq}: vary m (n=500)")
        rows = sweep("HierGaussian-v0", base, "m", m_values, args.runs, args.contexts, args.alpha, 500)
        panels.append((f"vary m, n=500, sigma_q={sq}", rows))
        raw.append({"sigma_q": sq, "rows": rows})
    seconds = time.perf_counter() - start
    header = (
        "## HierOPO Sec. 7.1 (Fig. 2): suboptimality, mean ± standard error over "
        f"{args.runs} runs\n\nHierGaussian-v0, d=4, K=5, resampled action features in [-0.5, 0.5]^d, "
        f"sigma=0.5, sigma_0=0.5, alpha={args.alpha}, uniform tasks and actions, "
        f"{args.contexts} evaluation contexts per task; {seconds:.0f} s (float64, 1 thread).\n\n"
        + provenance(command_line("benchmarks.hieropo_reproduction"))
    )
    (args.out / "hieropo_fig2.md").write_text(markdown(panels, header) + "\n")
    plot(panels, args.out / "hieropo_fig2.png")
    (args.out / "hieropo_fig2.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "environment": environment(),
                "seconds": seconds,
                "panels": raw,
            },
            indent=1,
        )
    )
    print(f"wrote {args.out / 'hieropo_fig2.md'} and .png ({seconds:.0f} s)")

    if args.movielens:
        if "MovieLensMulti-v0" not in hbgym.ENV_IDS:
            raise SystemExit("MovieLensMulti-v0 is not registered in this checkout (real-data issue)")
        runs = args.runs if args.runs != 30 else 10
        n_values = (500, 1000, 2000) if args.quick else (250, 500, 1000, 2000, 5000, 10000, 20000)
        print("MovieLens: vary n (m=100, K=10)")
        rows = sweep(
            "MovieLensMulti-v0",
            {"num_tasks": 100, "num_actions": 10},
            "n",
            n_values,
            runs,
            min(args.contexts, 200),
            args.alpha,
            0,
        )
        header = (
            f"## HierOPO Sec. 7.2 (Fig. 3): MovieLensMulti-v0, m=100, K=10, {runs} runs, "
            "mean ± standard error\n\n" + provenance(command_line("benchmarks.hieropo_reproduction"))
        )
        panel = [("MovieLens, vary n, m=100", rows)]
        (args.out / "hieropo_fig3.md").write_text(markdown(panel, header) + "\n")
        plot(panel, args.out / "hieropo_fig3.png")
        (args.out / "hieropo_fig3.json").write_text(json.dumps({"environment": environment(), "rows": rows}))


if __name__ == "__main__":
    main()
