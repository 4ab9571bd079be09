"""Batched agent cost per seed-round and peak memory for B = 1 ... 10000 seeds in lockstep (CPU).

    python -m benchmarks.agent_scaling [--sizes 1 10 100 1000 10000] [--rounds 40] [--baseline bba5658]

HierTS on HierGaussian-v0, meTS on MixedEffect-v0 and EbmTS on MultiBandit-v0, each on a native
vector env of B slots. Every (agent, B) runs in its own child process: ``--rounds`` rounds after 5
warm-up rounds; the figure is the agent's act + update CPU time (``time.process_time``, robust to
other load on the shared machine) divided by B x rounds, and the peak resident memory of the child
above its footprint before the env and agent were built. A size is skipped when the previous size's
figure predicts more than ``--max-seconds`` for the run or more than ``--max-gb`` of memory.

Issue 18 item 4 target: meTS at B=50 <= 15 us per seed-round (27.5 before) on today's defaults of
MixedEffect-v0 (signed weights redrawn every episode, read from the ``"mixing"`` observation key).
That row is measured with the current code and with ``--baseline`` alternately (best of
``--repeats``), env step included and excluded, on each commit's defaults and, like for like, on the
baseline's defaults (``mixing="simplex", mixing_seed=0``: fixed weights) on both.
Writes ``benchmarks/results/agent_scaling.md``.
"""

from __future__ import annotations

import argparse

from benchmarks.baseline import run_python, tree_at
from benchmarks.common import RESULTS, markdown_table, write_result

CASES = (("HierTS", "HierGaussian-v0"), ("meTS", "MixedEffect-v0"), ("EbmTS", "MultiBandit-v0"))

SNIPPET = """
import json, resource, time, numpy as np, torch, gymnasium as gym, hbgym
from hbgym import agents
torch.set_num_threads(1)
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cls = {{"HierTS": agents.HierTS, "meTS": agents.MeTS, "EbmTS": agents.EbmTS}}[{agent!r}]
vec = gym.make_vec({env!r}, num_envs={size}, **{kwargs!r})
agent = cls.from_env(vec, seed=0)
obs, _ = vec.reset(seed=0)
agent.reset(seed=0)
spent = env_spent = 0.0
for t in range(5 + {rounds}):
    start = time.process_time()
    action = agent.act(obs)
    mid = time.process_time()
    nxt, _, _, _, info = vec.step(action)
    end = time.process_time()
    agent.update(obs, action, info["rewards"])
    if t >= 5:
        spent += mid - start + time.process_time() - end
        env_spent += end - mid
    obs = nxt
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = {size} * {rounds}
print(json.dumps([spent / n, env_spent / n, (peak_kb - base_kb) * 1024]))
"""


#: the target's settings: (label, MixedEffect-v0 kwargs)
TARGET_SETTINGS = (
    ("each commit's defaults (now: signed weights redrawn per episode)", {}),
    ('mixing="simplex", mixing_seed=0 on both (the baseline\'s defaults: fixed weights)',
     {"mixing": "simplex", "mixing_seed": 0}),
)


def measure(
    tree, agent: str, env: str, size: int, rounds: int, kwargs: dict | None = None
) -> tuple[float, float, float]:
    """(agent seconds, env seconds) per seed-round and peak extra bytes of one child run."""
    code = SNIPPET.format(agent=agent, env=env, size=size, rounds=rounds, kwargs=kwargs or {})
    return tuple(run_python(tree, code))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--max-gb", type=float, default=4.0)
    parser.add_argument("--baseline", default="bba5658")
    parser.add_argument("--out", default=str(RESULTS / "agent_scaling.md"))
    args = parser.parse_args(argv)

    old_tree = tree_at(args.baseline)
    target_rows = []
    for setting, kwargs in TARGET_SETTINGS:
        new, old = [], []
        for _ in range(args.repeats):
            new.append(measure(None, "meTS", "MixedEffect-v0", 50, args.rounds, kwargs))
            old.append(measure(old_tree, "meTS", "MixedEffect-v0", 50, args.rounds, kwargs))
        best_new = min(new, key=lambda r: r[0])
        best_old = min(old, key=lambda r: r[0])
        for label, o, n in (
            ("agent (act + update)", best_old[0], best_new[0]),
            ("agent + env step", best_old[0] + best_old[1], best_new[0] + best_new[1]),
        ):
            target_rows.append([setting, label, f"{o * 1e6:.1f}", f"{n * 1e6:.1f}", f"{o / n:.2f}x"])
            print(target_rows[-1], flush=True)

    rows, skipped = [], []
    for agent, env in CASES:
        previous: tuple[int, float, float] | None = None
        for size in args.sizes:
            if previous is not None:
                prev_size, prev_seconds, prev_bytes = previous
                growth = size / prev_size
                predicted_s = prev_seconds * size * (5 + args.rounds) * 1.5
                predicted_gb = prev_bytes * growth / 2**30
                if predicted_s > args.max_seconds or predicted_gb > args.max_gb:
                    skipped.append(f"{agent} B={size} (predicted {predicted_s:.0f} s, {predicted_gb:.1f} GB)")
                    previous = None
                    break
            seconds, env_seconds, peak = measure(None, agent, env, size, args.rounds)
            rows.append([agent, env, size, f"{seconds:.2e}", f"{env_seconds:.2e}", f"{peak / 2**20:.0f}"])
            print(rows[-1], flush=True)
            previous = (size, seconds + env_seconds, max(peak, 1.0))
    body = "\n".join([
        f"## meTS at B=50 (target <= 15 us per seed-round): {args.baseline} vs now, best of {args.repeats}",
        "",
        markdown_table(
            ["MixedEffect-v0 setting", "us per seed-round", args.baseline, "now", "speed-up"], target_rows
        ),
        "",
        f"## Curve ({args.rounds} rounds after 5 warm-up rounds; CPU time; one torch thread)",
        "",
        markdown_table(
            ["agent", "env", "B", "agent s / seed-round", "env s / seed-round", "peak extra MiB"], rows
        ),
        "",
        "Skipped (over the time or memory limit): " + ("; ".join(skipped) if skipped else "none"),
    ])
    write_result(args.out, "Batched agents: seconds per seed-round and peak memory (issue 18 item 4)",
                 "agent_scaling", argv, body)


if __name__ == "__main__":
    main()
