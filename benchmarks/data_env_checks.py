"""Checks of the real-data envs against the papers' findings (paired seeds, native vector envs).

    python benchmarks/data_env_checks.py [--seeds 20] [--only movielens_multi,movielens_effects,mnist_multi]

Experiments (defaults of each env, data found as the env's ``dataset="auto"`` finds it):

* ``movielens_multi`` — MovieLensMulti-v0 (HierOPO Sec. 7.2 construction, online): HierTS should
  beat FlatTS and be close to OracleTS (HierOPO Fig. 3 shows the same ordering offline).
* ``movielens_effects`` — MovieLensEffects-v0, linear and logistic rewards (meTS poster Fig. 2):
  meTS should beat LinTS (and the single-effect HierTS).
* ``mnist_multi`` — MNISTMulti-v0 (HierTS App. E, Fig. 3): HierTS should beat TS (FlatTS) and
  approach OracleTS; run with a random positive digit per episode and with two fixed digits.

Each agent runs on ``gym.make_vec(id, num_envs=seeds)`` with ``reset(seed=0)``: slot ``i`` is the
episode of seed ``i`` for every agent, so differences are paired (common random numbers). Torch
runs single-threaded (``torch.set_num_threads(1)``; on a shared 2-core machine BLAS/OpenMP threads
made the agents ~10x slower). Writes ``benchmarks/results/data_env_checks.md`` and one PNG per
experiment; the markdown records the data provenance of every env.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hbgym  # noqa: E402
from agents import AGENTS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
QUICK_HORIZON = {"MovieLensMulti-v0": 10, "MovieLensEffects-v0": 200, "MNISTMulti-v0": 20}


@dataclass
class Run:
    """Cumulative regret of one agent on one env setting: ``curves`` ``(B, T)`` (T rounds)."""

    agent: str
    curves: np.ndarray
    seconds: float

    @property
    def final(self) -> np.ndarray:
        return self.curves[:, -1]


def run_agent(env_id: str, agent_name: str, seeds: int, env_kwargs: dict) -> tuple[Run, dict]:
    """Play one agent on ``seeds`` paired episodes; returns the run and the env's data source."""
    vec = gym.make_vec(env_id, num_envs=seeds, **env_kwargs)
    agent = AGENTS[agent_name].from_env(vec, seed=0)
    obs, _ = vec.reset(seed=0)
    agent.reset(seed=0)
    num_rounds = vec.unwrapped.model.num_rounds
    curves = np.zeros((seeds, num_rounds))
    total = np.zeros(seeds)
    start = time.perf_counter()
    for t in range(num_rounds):
        action = agent.act(obs)
        next_obs, _, _, _, info = vec.step(action)
        agent.update(obs, action, info["rewards"])
        obs = next_obs
        total += info["regret"].sum(axis=1)
        curves[:, t] = total
    seconds = time.perf_counter() - start
    return Run(agent_name, curves, seconds), dict(vec.unwrapped.model.source or {})


def paired(a: Run, b: Run) -> tuple[float, float, float]:
    """Mean of ``a.final - b.final`` over paired seeds with a 95% t-interval."""
    from scipy import stats

    diff = a.final - b.final
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def fmt(x: np.ndarray) -> str:
    return f"{x.mean():.1f} ± {x.std(ddof=1) / np.sqrt(len(x)):.1f}"


@dataclass
class Setting:
    label: str
    env_id: str
    kwargs: dict
    agents: list[str]


@dataclass
class Check:
    """A paper claim: ``better`` has lower regret than ``worse`` (paired CI below 0), optionally
    within ``ratio`` of it (``better / worse <= ratio`` in mean final regret)."""

    setting: str
    better: str
    worse: str
    claim: str
    close: float | None = None


TS_AGENTS = ["HierTS", "FlatTS", "OracleTS"]

#: experiment -> (settings, claims, paper, the paper's data)
EXPERIMENTS: dict[str, tuple[list[Setting], list[Check], str, str]] = {
    "movielens_multi": (
        [Setting("MovieLensMulti-v0", "MovieLensMulti-v0", {}, [*TS_AGENTS, "Uniform"])],
        [
            Check("MovieLensMulti-v0", "HierTS", "FlatTS", "HierTS < FlatTS (HierOPO Fig. 3 ordering)"),
            Check("MovieLensMulti-v0", "HierTS", "OracleTS", "HierTS close to OracleTS (within 10%)",
                  close=1.10),
        ],
        "HierOPO (Hong et al. 2023) Sec. 7.2 construction; online TS agents",
        "MovieLens 1M",
    ),
    "movielens_effects": (
        [
            Setting("MovieLensEffects-v0 (linear)", "MovieLensEffects-v0", {},
                    ["meTS", "meTS-Fa", "HierTS", "LinTS", "LinUCB", "Uniform"]),
            Setting("MovieLensEffects-v0 (logistic)", "MovieLensEffects-v0", {"reward": "logistic"},
                    ["meTS", "HierTS", "LinTS", "Uniform"]),
        ],
        [
            Check("MovieLensEffects-v0 (linear)", "meTS", "LinTS",
                  "meTS < LinTS (meTS poster Fig. 2, linear)"),
            Check("MovieLensEffects-v0 (logistic)", "meTS", "LinTS",
                  "meTS < LinTS (meTS poster Fig. 2, logistic; meTS-Lin)"),
        ],
        "meTS poster (Aouali et al. 2023) Fig. 2: proxy structure via GMM on movie embeddings",
        "MovieLens (version not stated in the poster)",
    ),
    "mnist_multi": (
        [
            Setting("MNISTMulti-v0 (random digit)", "MNISTMulti-v0", {}, [*TS_AGENTS, "Uniform"]),
            Setting("MNISTMulti-v0 (digit=3)", "MNISTMulti-v0", {"digit": 3}, TS_AGENTS),
            Setting("MNISTMulti-v0 (digit=8)", "MNISTMulti-v0", {"digit": 8}, TS_AGENTS),
        ],
        [
            Check("MNISTMulti-v0 (random digit)", "HierTS", "FlatTS", "HierTS < TS (HierTS App. E, Fig. 3)"),
            Check("MNISTMulti-v0 (digit=3)", "HierTS", "FlatTS", "HierTS < TS, digit 3"),
            Check("MNISTMulti-v0 (digit=8)", "HierTS", "FlatTS", "HierTS < TS, digit 8"),
        ],
        "HierTS (Hong et al. 2022) App. E: multi-task digit classification",
        "the 60,000 MNIST training images",
    ),
}


def plot(name: str, settings: list[Setting], runs: dict[str, dict[str, Run]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 3.8), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        for agent, run in runs[setting.label].items():
            if agent == "Uniform":
                continue
            mean = run.curves.mean(0)
            sem = run.curves.std(0, ddof=1) / np.sqrt(len(run.curves))
            rounds = np.arange(1, len(mean) + 1)
            ax.plot(rounds, mean, label=agent)
            ax.fill_between(rounds, mean - sem, mean + sem, alpha=0.25)
        ax.set_title(setting.label, fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative regret")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="paired episodes per agent (default 20)")
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated experiments")
    parser.add_argument("--out", default=str(RESULTS), help="output directory")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: short horizons (numbers are not the committed results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiments {unknown}; allowed: {', '.join(EXPERIMENTS)}")

    lines = [
        "# Real-data envs vs the papers",
        "",
        f"Command: `python benchmarks/data_env_checks.py --seeds {args.seeds} --only {','.join(names)}"
        f"{' --quick' if args.quick else ''}`  ",
        f"Machine: {platform.machine()} {platform.system()}, python {platform.python_version()}, "
        f"torch {torch.__version__} (CPU, 1 thread, float64), numpy {np.__version__}, hbgym "
        f"{hbgym.__version__}.  ",
        "Cumulative pseudo-regret at the end of the episode, mean ± standard error over "
        f"{args.seeds} paired seeds (slot i = seed i for every agent: same instance, contexts and noise). "
        "Differences: paired mean with a 95% t-interval.",
        "",
    ]
    all_ok = True
    for name in names:
        settings, checks, paper, paper_data = EXPERIMENTS[name]
        runs: dict[str, dict[str, Run]] = {}
        sources: dict[str, dict] = {}
        lines += [f"## {name}", "", f"Paper: {paper}.", ""]
        lines += ["| setting | agent | final regret | seconds |", "|---|---|---|---|"]
        for setting in settings:
            runs[setting.label] = {}
            kwargs = dict(setting.kwargs)
            if args.quick:
                kwargs["horizon"] = QUICK_HORIZON[setting.env_id]
            for agent in setting.agents:
                run, source = run_agent(setting.env_id, agent, args.seeds, kwargs)
                runs[setting.label][agent] = run
                sources[setting.label] = source
                print(f"{setting.label:32s} {agent:10s} {fmt(run.final):>18s} {run.seconds:7.1f}s",
                      flush=True)
                lines.append(f"| {setting.label} | {agent} | {fmt(run.final)} | {run.seconds:.0f} |")
        lines += ["", "| claim | paired difference (better - worse) | 95% CI | holds |", "|---|---|---|---|"]
        for check in checks:
            better, worse = runs[check.setting][check.better], runs[check.setting][check.worse]
            mean, lo, hi = paired(better, worse)
            if check.close is None:
                ok = hi < 0
            else:
                ok = better.final.mean() <= check.close * worse.final.mean()
            all_ok &= ok
            ratio = better.final.mean() / worse.final.mean()
            lines.append(f"| {check.claim} | {mean:.1f} (ratio {ratio:.3f}) | [{lo:.1f}, {hi:.1f}] | "
                         f"{'yes' if ok else 'NO'} |")
        lines.append("")
        for setting in settings:
            finals = {a: r.final.mean() for a, r in runs[setting.label].items() if not AGENTS[a].oracle}
            best = min(finals, key=finals.get)
            lines.append(f"* {setting.label}: lowest regret among non-oracle agents: **{best}**.")
        used = sorted({f"{s.get('dataset')} ({s.get('origin')})" for s in sources.values()})
        lines.append(f"* Data used here: {', '.join(used)}; the paper used {paper_data}.")
        png = out / f"{name}.png"
        plot(name, settings, runs, png)
        lines += ["", f"![{name}]({png.name})", "", "Data source (env.unwrapped.model.source):", ""]
        for label, source in sources.items():
            keep = {k: source[k] for k in ("dataset", "file", "sha256", "origin", "verified") if k in source}
            for extra in ("fit", "clusters", "split", "pool_size", "num_movies"):
                if extra in source:
                    keep[extra] = source[extra]
            lines.append(f"* {label}: `{json.dumps(keep, default=str)}`")
        lines.append("")
    report = out / "data_env_checks.md"
    if report.exists() and set(names) != set(EXPERIMENTS):
        report = out / f"data_env_checks_{'_'.join(names)}.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"wrote {report}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
