"""Single-replicate (B=1) agent cost per round, act + update, today's code vs a baseline commit.

    python -m benchmarks.agent_single [--rounds 300] [--repeats 5] [--baseline bba5658]

What a user gets who drives an agent from their own loop, one unbatched observation at a time
(``agent.act(obs)``, ``agent.update(obs, action, rewards)``), on CPU with one torch thread:
HierTS on HierGaussian-v0 (d=2, K=10, L=5 tasks per round), meTS and LinTS on MixedEffect-v0
(K=100, L_e=3, d=2). The env's own step time is excluded. Current and baseline code run in child
processes, alternated ``--repeats`` times (the machine is shared); the best repeat of each counts and
the figure is the speed-up (issue 18 item 3 target: >= 3x). Writes ``benchmarks/results/agent_single.md``.
"""

from __future__ import annotations

import argparse

from benchmarks.baseline import run_python, tree_at
from benchmarks.common import RESULTS, markdown_table, write_result

CASES = (("HierTS", "HierGaussian-v0"), ("meTS", "MixedEffect-v0"), ("LinTS", "MixedEffect-v0"))

SNIPPET = """
import json, time, numpy as np, torch, gymnasium as gym, hbgym
from hbgym import agents
torch.set_num_threads(1)
cls = {{"HierTS": agents.HierTS, "meTS": agents.MeTS, "LinTS": agents.LinTS}}[{agent!r}]
env = gym.make({env!r})
agent = cls.from_env(env, num_envs=1, seed=0)
obs, _ = env.reset(seed=0)
agent.reset(seed=0)
spent = 0.0
for t in range({rounds}):
    start = time.process_time()
    action = agent.act(obs)
    spent -= start - time.process_time()
    nxt, _, term, _, info = env.step(action)
    start = time.process_time()
    agent.update(obs, action, info["rewards"])
    spent -= start - time.process_time()
    obs = nxt
print(json.dumps(spent / {rounds} * 1e6))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default="bba5658", help="git ref of 'today' (before the speed work)")
    parser.add_argument("--out", default=str(RESULTS / "agent_single.md"))
    args = parser.parse_args(argv)
    old_tree = tree_at(args.baseline)
    rows = []
    for agent, env in CASES:
        code = SNIPPET.format(agent=agent, env=env, rounds=args.rounds)
        new, old = [], []
        for _ in range(args.repeats):
            new.append(run_python(None, code))
            old.append(run_python(old_tree, code))
        rows.append([agent, env, f"{min(old):.0f}", f"{min(new):.0f}", f"{min(old) / min(new):.2f}x"])
        print(rows[-1], flush=True)
    table = markdown_table(
        ["agent", "env", f"{args.baseline} us/round", "now us/round", "speed-up"], rows
    )
    write_result(
        args.out,
        "Single replicate (B=1) act + update per round, CPU, one torch thread (issue 18 item 3: >= 3x)",
        "agent_single", argv,
        f"{args.rounds} rounds from reset, best of {args.repeats} alternated child processes per side; "
        "env step excluded; CPU time of the process (time.process_time), robust to other load on the "
        "shared machine.\n\n" + table,
    )


if __name__ == "__main__":
    main()
