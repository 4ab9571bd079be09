"""Why LinTS < HierTS (the meTS authors' order) depends on LinTS's prior scale, on MixedEffect-v0 defaults.

    python -m benchmarks.mets_lints_prior [--seeds 50] [--horizon 5000]

Our LinTS is ridge regression with the prior N(0, sigma^2 / lambda I), lambda = 1, i.e. N(0, I); each
action's true marginal prior is N(0, (1 + 3 |b_i|^2) I) (about 4 I with signed weights). The script
runs HierTS (the authors' single-effect baseline), LinTS (lambda = 1), LinTS with lambda = 0.25 (prior
N(0, 4 I)) and FlatTS (each action's exact marginal prior) on the same seeds as the ``paper`` suite
(10000, ...) and reports the final regret with the 95% CI of each agent's paired difference to
HierTS. Writes ``results/mets_lints_prior.md``.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from scipy import stats

from benchmarks.common import markdown_table, run_agent

RESULTS = os.path.join(os.path.dirname(__file__), "results")
AGENTS = (("HierTS", {}), ("LinTS", {}), ("LinTS", {"ridge": 0.25}), ("FlatTS", {}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=5000)
    args = parser.parse_args(argv)
    runs = [(name, kw, run_agent("MixedEffect-v0", name, args.seeds, seed=10_000, agent_kwargs=kw,
                                 horizon=args.horizon)) for name, kw in AGENTS]
    hier = runs[0][2].final
    rows = []
    for name, kw, run in runs:
        final = run.final
        half = stats.t.ppf(0.975, len(final) - 1) * final.std(ddof=1) / np.sqrt(len(final))
        diff = final - hier
        dhalf = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        label = name + (f" ({', '.join(f'{k}={v}' for k, v in kw.items())})" if kw else "")
        rows.append([label, f"{final.mean():.1f} +- {half:.1f}",
                     f"{diff.mean():.1f} [{diff.mean() - dhalf:.1f}, {diff.mean() + dhalf:.1f}]",
                     f"{run.seconds:.0f}"])
    header = ["agent", "final regret, mean +- 95% CI", "minus HierTS, paired 95% CI", "s"]
    table = markdown_table(header, rows)
    text = (
        "# LinTS's prior scale decides LinTS vs HierTS on MixedEffect-v0 (authors' defaults)\n\n"
        f"`python -m benchmarks.mets_lints_prior --seeds {args.seeds} --horizon {args.horizon}` "
        f"(seeds 10000.., as the `paper` suite). Machine: {platform.platform()}, {os.cpu_count()} CPUs "
        "(shared; seconds are wall time under load).\n\n" + table + "\n"
    )
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "mets_lints_prior.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
