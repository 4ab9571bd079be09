"""Reproduce the meTS poster's Fig. 1 (Aouali et al. 2023) on MixedEffect-v0 / MixedEffectLogistic-v0,
and time meTS against a straightforward per-round NumPy meTS (``benchmarks/reference_numpy.py``, a
single-seed loop written here; not the authors' code), like for like: one replicate against one
replicate, and our batched cost per seed against the best the single-seed reference can do on the
same ``--jobs`` processes (one seed per process, perfect parallel scaling assumed).

    python -m benchmarks.mets_reproduction [--seeds 50] [--horizon 5000] [--jobs 2] [--skip-logistic]

Linear (K=100, L=3 effects, d=2, n=5000): meTS, meTS-Fa, HierTS (single effect), LinTS, LinUCB,
with the env defaults (the authors' experiment: signed weights redrawn per episode, feature pool;
this run is the one timed) and again with our earlier defaults (fixed simplex weights,
``mixing="simplex", mixing_seed=0, contexts="uniform"``), where a single shared effect is a good model.
Logistic: meTS-GLM, meTS-Lin (linear meTS with noise variance 1/4), HierTS, GLM-TS, UCB-GLM.
Mean and 95% CI of the final cumulative pseudo-regret over paired seeds. Writes
``results/mets_fig1.md`` and ``results/mets_fig1.png`` (``mets_fig1.partial.*`` when run with other
than the default arguments).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

from benchmarks.common import (  # noqa: E402
    command_line,
    is_full_run,
    markdown_table,
    plot_curves,
    run_agent,
    write_report,
)
from benchmarks.reference_numpy import run_mets_reference  # noqa: E402

LINEAR = ["meTS", "meTS-Fa", "HierTS", "LinTS", "LinUCB"]
LOGISTIC = ["meTS-GLM", "meTS", "HierTS", "GLM-TS", "UCB-GLM"]
REFERENCE = {"meTS": 930, "meTS-Fa": 900, "HierTS": 2540, "LinUCB": 3030, "LinTS": 1420}


def reference_seconds_per_round(rounds: int = 100) -> float:
    """Seconds per round of the single-seed NumPy reference meTS (MixedEffect-v0 defaults)."""
    env = gym.make("MixedEffect-v0")
    start = time.perf_counter()
    run_mets_reference(env, rounds)
    return (time.perf_counter() - start) / rounds


def single_replicate_seconds_per_round(rounds: int = 200) -> float:
    """Seconds per round of our meTS with one replicate (B = 1), same env."""
    return run_agent("MixedEffect-v0", "meTS", 1, horizon=rounds).seconds / rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-logistic", action="store_true")
    args = parser.parse_args(argv)
    run = delayed(run_agent)
    start = time.perf_counter()
    linear = Parallel(n_jobs=args.jobs)(
        run("MixedEffect-v0", name, args.seeds, horizon=args.horizon) for name in LINEAR
    )
    linear_wall = time.perf_counter() - start
    earlier = {"mixing": "simplex", "mixing_seed": 0, "contexts": "uniform"}
    signed = Parallel(n_jobs=args.jobs)(
        run("MixedEffect-v0", name, args.seeds, horizon=args.horizon, **earlier) for name in LINEAR
    )
    ref_round = reference_seconds_per_round()
    ours_single = single_replicate_seconds_per_round()
    mets = next(r for r in linear if r.agent == "meTS")
    ours_batched = mets.seconds / (args.seeds * args.horizon)  # per seed-round, B = seeds in one process
    ref_best = ref_round / args.jobs  # the reference on --jobs processes, one seed each, ideal scaling
    rows = []
    for label, group in (("linear (authors' defaults)", linear), ("linear, fixed simplex weights", signed)):
        for r in group:
            mean, half = r.mean_ci()
            reference = REFERENCE.get(r.agent, "") if group is linear else ""
            rows.append([label, r.agent, f"{mean:.1f} +- {half:.1f}", reference, f"{r.seconds:.1f}"])
    fig, axes = plt.subplots(1, 2 if args.skip_logistic else 3, figsize=(19, 4.5), squeeze=False)
    plot_curves(axes[0, 0], linear, f"linear: K=100, L=3, d=2 ({args.seeds} seeds)")
    plot_curves(axes[0, 1], signed, "linear, fixed simplex mixing weights")
    if not args.skip_logistic:
        logistic = Parallel(n_jobs=args.jobs)(
            run("MixedEffectLogistic-v0", name, args.seeds, horizon=args.horizon) for name in LOGISTIC
        )
        for r in logistic:
            r.agent = "meTS-Lin" if r.agent == "meTS" else r.agent
            mean, half = r.mean_ci()
            rows.append(["logistic", r.agent, f"{mean:.1f} +- {half:.1f}", "", f"{r.seconds:.1f}"])
        plot_curves(axes[0, 2], logistic, f"logistic: K=100, L=3, d=2 ({args.seeds} seeds)")
    table = markdown_table(
        [
            "reward",
            "agent",
            "final regret, mean +- 95% CI",
            "authors' code (2 runs, realised)",
            "agent seconds",
        ],
        rows,
    )
    speed = (
        f"Linear experiment ({len(LINEAR)} agents x {args.seeds} seeds x n={args.horizon}) wall time with "
        f"--jobs {args.jobs}: **{linear_wall:.1f} s**. meTS against the single-seed NumPy reference "
        "(`benchmarks/reference_numpy.py`, not the authors' code), like for like:\n\n"
        + markdown_table(["compares", "ours, us", "reference, us", "ratio"], [
            ["one replicate: seconds per round (B = 1 vs the reference loop)",
             f"{ours_single * 1e6:.0f}", f"{ref_round * 1e6:.0f}", f"{ref_round / ours_single:.1f}x"],
            [f"per seed-round: ours batched over {args.seeds} seeds in 1 process vs the reference on "
             f"{args.jobs} processes (ideal scaling)",
             f"{ours_batched * 1e6:.1f}", f"{ref_best * 1e6:.0f}", f"{ref_best / ours_batched:.0f}x"],
        ])
    )
    text = (
        "# meTS poster Fig. 1 on MixedEffect-v0 / MixedEffectLogistic-v0\n\n"
        "Pseudo-regret summed over n rounds, paired seeds. The authors' numbers are realised regret "
        "over 2 runs of their code (shared/papers/README.md).\n\n"
        f"{table}\n\n{speed}"
    )
    full = is_full_run(parser, args, ("seeds", "horizon", "skip_logistic"))
    write_report("mets_fig1", fig, text, command_line("benchmarks.mets_reproduction", argv), full)


if __name__ == "__main__":
    main()
