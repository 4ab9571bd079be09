"""Checks of the real-data envs against the papers' findings (paired seeds, native vector envs).

    python -m benchmarks.data_env_checks [--seeds 20] [--only movielens_multi,movielens_effects,mnist_multi]

Experiments (defaults of each env; the data is whatever the env's ``dataset="auto"`` finds, recorded
in the report):

* ``movielens_multi`` — MovieLensMulti-v0 (HierOPO Sec. 7.2 construction, played online): HierTS
  should beat FlatTS and be close to OracleTS (HierOPO Fig. 3 shows this ordering offline; the
  offline learners on the same env are in ``benchmarks/hieropo_reproduction.py --movielens``).
* ``movielens_effects`` — MovieLensEffects-v0, linear and logistic rewards (meTS poster Fig. 2):
  meTS should beat LinTS (and the single-effect HierTS).
* ``mnist_multi`` — MNISTMulti-v0 (HierTS App. E, Fig. 3): HierTS should beat TS (FlatTS) and
  approach OracleTS; with a random positive digit per episode and with two fixed digits.

Every agent runs on ``gym.make_vec(id, num_envs=seeds)`` reset with seed 0, so slot ``i`` is the
same episode (instance, contexts, noise) for every agent and differences are paired. Writes
``benchmarks/results/<experiment>.{md,png}`` (``--quick``: short horizons, prints only).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import gymnasium as gym
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from hbgym.agents import AGENTS  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

import hbgym  # noqa: E402, F401
from benchmarks.common import (  # noqa: E402
    Run,
    command_line,
    is_full_run,
    markdown_table,
    plot_curves,
    run_agent,
    write_report,
)

QUICK_HORIZON = {"MovieLensMulti-v0": 10, "MovieLensEffects-v0": 200, "MNISTMulti-v0": 20}
TS_AGENTS = ["HierTS", "FlatTS", "OracleTS"]


@dataclass
class Setting:
    label: str
    env_id: str
    kwargs: dict
    agents: list[str]


@dataclass
class Check:
    """A paper claim: ``better`` has lower final regret than ``worse`` (paired 95% CI below 0), or,
    with ``close``, ``mean(better) <= close * mean(worse)``."""

    setting: str
    better: str
    worse: str
    claim: str
    close: float | None = None


@dataclass
class Experiment:
    paper: str
    paper_data: str
    settings: list[Setting]
    checks: list[Check]


EXPERIMENTS: dict[str, Experiment] = {
    "movielens_multi": Experiment(
        "HierOPO (Hong et al. 2023) Sec. 7.2 construction, online Thompson sampling",
        "MovieLens 1M",
        [Setting("MovieLensMulti-v0", "MovieLensMulti-v0", {}, [*TS_AGENTS, "Uniform"])],
        [
            Check("MovieLensMulti-v0", "HierTS", "FlatTS", "HierTS < FlatTS (HierOPO Fig. 3 ordering)"),
            Check("MovieLensMulti-v0", "HierTS", "OracleTS", "HierTS close to OracleTS (within 10%)", 1.10),
        ],
    ),
    "movielens_effects": Experiment(
        "meTS poster (Aouali et al. 2023) Fig. 2: proxy structure via GMM on movie embeddings",
        "MovieLens (version not stated in the poster)",
        [
            Setting("MovieLensEffects-v0 (linear)", "MovieLensEffects-v0", {},
                    ["meTS", "meTS-Fa", "HierTS", "LinTS", "LinUCB", "Uniform"]),
            Setting("MovieLensEffects-v0 (logistic)", "MovieLensEffects-v0", {"reward": "logistic"},
                    ["meTS", "HierTS", "LinTS", "Uniform"]),
        ],
        [
            Check("MovieLensEffects-v0 (linear)", "meTS", "LinTS", "meTS < LinTS (poster Fig. 2, linear)"),
            Check("MovieLensEffects-v0 (logistic)", "meTS", "LinTS",
                  "meTS < LinTS (poster Fig. 2, logistic; meTS-Lin)"),
        ],
    ),
    "mnist_multi": Experiment(
        "HierTS (Hong et al. 2022) App. E: multi-task digit classification",
        "the 60,000 MNIST training images",
        [
            Setting("MNISTMulti-v0 (random digit)", "MNISTMulti-v0", {}, [*TS_AGENTS, "Uniform"]),
            Setting("MNISTMulti-v0 (digit=3)", "MNISTMulti-v0", {"digit": 3}, TS_AGENTS),
            Setting("MNISTMulti-v0 (digit=8)", "MNISTMulti-v0", {"digit": 8}, TS_AGENTS),
        ],
        [
            Check("MNISTMulti-v0 (random digit)", "HierTS", "FlatTS", "HierTS < TS (App. E, Fig. 3)"),
            Check("MNISTMulti-v0 (digit=3)", "HierTS", "FlatTS", "HierTS < TS, digit 3"),
            Check("MNISTMulti-v0 (digit=8)", "HierTS", "FlatTS", "HierTS < TS, digit 8"),
        ],
    ),
}


def paired(better: Run, worse: Run) -> tuple[float, float, float]:
    """Mean of ``better.final - worse.final`` over paired seeds and its 95% t-interval."""
    from scipy import stats

    diff = better.final - worse.final
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def source_of(setting: Setting) -> dict:
    """The data provenance the env records (``model.source``), trimmed to the essentials."""
    source = gym.make(setting.env_id, **setting.kwargs).unwrapped.model.source or {}
    keys = ("dataset", "file", "sha256", "origin", "verified", "fit", "clusters", "split", "pool_size")
    return {k: source[k] for k in keys if k in source}


def report(name: str, exp: Experiment, runs: dict[str, dict[str, Run]], seeds: int, quick: bool,
           argv: list[str] | None = None, full: bool = True) -> bool:
    rows = []
    for setting in exp.settings:
        for agent, run in runs[setting.label].items():
            mean, half = run.mean_ci()
            rows.append([setting.label, agent, f"{mean:.1f} ± {half:.1f}", f"{run.seconds:.0f}"])
    claims, all_ok = [], True
    for check in exp.checks:
        better, worse = runs[check.setting][check.better], runs[check.setting][check.worse]
        mean, lo, hi = paired(better, worse)
        ratio = better.final.mean() / worse.final.mean()
        ok = hi < 0 if check.close is None else ratio <= check.close
        all_ok &= ok
        claims.append([check.claim, f"{mean:.1f} (ratio {ratio:.3f})", f"[{lo:.1f}, {hi:.1f}]",
                       "yes" if ok else "NO"])
    notes = []
    for setting in exp.settings:
        finals = {a: r.final.mean() for a, r in runs[setting.label].items() if not AGENTS[a].oracle}
        best = min(finals, key=finals.get)
        notes.append(f"* {setting.label}: lowest regret among non-oracle agents: **{best}**.")
    sources = {s.label: source_of(s) for s in exp.settings}
    used = sorted({f"{s.get('dataset')} ({s.get('origin')})" for s in sources.values()})
    notes.append(f"* Data used here: {', '.join(used)}; the paper used {exp.paper_data}.")
    text = "\n".join([
        f"# {name}: real-data env vs the paper",
        "",
        f"Paper: {exp.paper}. Command: `python -m benchmarks.data_env_checks --only {name} --seeds {seeds}"
        f"{' --quick' if quick else ''}` (CPU, torch 1 thread, float64). Final cumulative pseudo-regret, "
        f"mean ± 95% CI half-width over {seeds} paired seeds (slot i = seed i for every agent: same "
        "instance, contexts and noise); claims use the paired differences with a 95% t-interval.",
        "",
        markdown_table(["setting", "agent", "final regret", "seconds"], rows),
        "",
        markdown_table(["claim", "paired difference (better - worse)", "95% CI", "holds"], claims),
        "",
        *notes,
        "",
        "Data provenance (`env.unwrapped.model.source`):",
        "",
        *[f"* {label}: `{json.dumps(src, default=str)}`" for label, src in sources.items()],
    ])
    fig, axes = plt.subplots(1, len(exp.settings), figsize=(5.2 * len(exp.settings), 3.9), squeeze=False)
    for ax, setting in zip(axes[0], exp.settings, strict=True):
        plot_curves(ax, [r for a, r in runs[setting.label].items() if a != "Uniform"], setting.label)
        ax.title.set_fontsize(10)
    if quick:
        print(text)
        plt.close(fig)
    else:
        write_report(name, fig, text, command_line("benchmarks.data_env_checks", argv), full)
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="paired episodes per agent (default 20)")
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help="comma-separated experiments")
    parser.add_argument("--jobs", type=int, default=2, help="agent runs in parallel (joblib)")
    parser.add_argument("--quick", action="store_true", help="smoke run: short horizons, print only")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiments {unknown}; allowed: {', '.join(EXPERIMENTS)}")
    all_ok = True
    for name in names:
        exp = EXPERIMENTS[name]
        cells = []
        for setting in exp.settings:
            kwargs = dict(setting.kwargs)
            if args.quick:
                kwargs["horizon"] = QUICK_HORIZON[setting.env_id]
            cells += [(setting, agent, kwargs) for agent in setting.agents]
        done = Parallel(n_jobs=args.jobs)(
            delayed(run_agent)(s.env_id, agent, args.seeds, **kwargs) for s, agent, kwargs in cells
        )
        runs: dict[str, dict[str, Run]] = {s.label: {} for s in exp.settings}
        for (setting, agent, _), run in zip(cells, done, strict=True):
            runs[setting.label][agent] = run
        all_ok &= report(name, exp, runs, args.seeds, args.quick, argv, is_full_run(parser, args, ("seeds",)))
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
