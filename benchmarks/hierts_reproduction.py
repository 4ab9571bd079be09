"""Reproduce HierTS paper Fig. 2 (Hong et al. 2022, Sec. 7) on HierGaussian-v0.

    python -m benchmarks.hierts_reproduction [--seeds 100]

(a) sigma_q = 0.5 and (b) sigma_q = 1: Bayes regret of OracleTS, HierTS and TS (our FlatTS) with
m=10 tasks, K=10 actions in [-0.5, 0.5]^2, n=200 interactions per task, L=5 concurrent tasks,
sigma_0=0.1, sigma=0.5. (c) HierTS regret as a function of L in {1, 2, 5, 10} (sigma_q = 1).
Writes ``results/hierts_fig2.md`` and ``results/hierts_fig2.png``. Expected (paper): OracleTS <=
HierTS < TS, HierTS close to OracleTS at sigma_q=0.5 and further at sigma_q=1; regret grows
sublinearly in L.
"""

from __future__ import annotations

import argparse

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

ENV = "HierGaussian-v0"
AGENTS = ["OracleTS", "HierTS", "FlatTS"]
CONCURRENCY = [1, 2, 5, 10]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    cells = [(sq, name, {"sigma_q": sq}) for sq in (0.5, 1.0) for name in AGENTS]
    cells += [(1.0, f"HierTS L={L}", {"tasks_per_round": L}) for L in CONCURRENCY]
    runs = Parallel(n_jobs=args.jobs)(
        delayed(run_agent)(ENV, name.split()[0], args.seeds, **kwargs) for _, name, kwargs in cells
    )
    for (_, name, _), run in zip(cells, runs):
        run.agent = name
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    rows = []
    for ax, sq in zip(axes[:2], (0.5, 1.0)):
        group = [r for (s, n, _), r in zip(cells, runs) if s == sq and "L=" not in n]
        plot_curves(ax, group, f"({'ab'[sq == 1.0]}) sigma_q = {sq}")
        rows += [[f"sigma_q={sq}", r.agent, *(f"{v:.1f}" for v in r.mean_ci())] for r in group]
    by_l = [r for (_, n, _), r in zip(cells, runs) if "L=" in n]
    means = [r.mean_ci()[0] for r in by_l]
    axes[2].errorbar(CONCURRENCY, means, yerr=[r.mean_ci()[1] for r in by_l], marker="o")
    axes[2].set(title="(c) HierTS regret vs L (sigma_q = 1)", xlabel="L", ylabel="regret after m n = 2000")
    rows += [["sigma_q=1", r.agent, *(f"{v:.1f}" for v in r.mean_ci())] for r in by_l]
    table = markdown_table(["setting", "agent", "final regret (mean)", "95% CI half-width"], rows)
    text = (
        "# HierTS paper Fig. 2 on HierGaussian-v0\n\n"
        f"({args.seeds} paired seeds; m=10, K=10, d=2, n=200 per task, L=5 unless stated, "
        "sigma_0=0.1, sigma=0.5). Regret is the pseudo-regret summed over all m n = 2000 decisions.\n\n"
        f"{table}"
    )
    write_report("hierts_fig2", fig, text, command_line("benchmarks.hierts_reproduction", argv),
                 is_full_run(parser, args, ("seeds",)))


if __name__ == "__main__":
    main()
