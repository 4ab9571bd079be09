"""Where an agent's round goes: its torch calls replayed alone, the rest, and the normals' share.

    python -m benchmarks.agent_floor [--rounds 300] [--repeats 5]

Issue 18 asks for 3x faster single-replicate (B=1) rounds than its "today" (bba5658) and meTS at B=50
under 15 us per seed-round. This script measures what bounds both, on this machine (CPU time, one
torch thread, env step excluded, best of ``--repeats`` child processes):

* **the round's torch calls alone**: every torch function, tensor method and tensor indexing the
  agent's Python code issues in ``--rounds`` rounds of act + update is recorded (a
  ``torch.overrides.TorchFunctionMode``; calls torch makes inside them are not seen) and replayed in
  a loop on the same tensors. That is what the round costs with the same calls and no Python around
  them: when it is above the 3x target, trimming our Python cannot reach the target; only fewer (fused)
  calls can;
* the calls per round, how many are views, and the most frequent;
* **meTS at B=50** with its 206 normals per replicate-round served from a fixed tensor (all else
  equal): the share of the counter-based random numbers, whose bits are fixed (the leaderboard's
  reference agents draw them too).

Writes ``benchmarks/results/agent_floor.md``.
"""

from __future__ import annotations

import argparse

from benchmarks.agent_scaling import SNIPPET as BATCHED
from benchmarks.agent_single import CASES
from benchmarks.agent_single import SNIPPET as SINGLE
from benchmarks.baseline import run_python
from benchmarks.common import RESULTS, markdown_table, write_result

#: the agent_single baseline (the issue's "today") per agent, us per round, for the 3x floor
BASELINE_US = {"HierTS": 618.0, "meTS": 687.0, "LinTS": 468.0}

RECORD = """
import collections, contextlib, json, time, numpy as np, torch, gymnasium as gym, hbgym
from torch.overrides import TorchFunctionMode
from hbgym import agents
torch.set_num_threads(1)
cls = {{"HierTS": agents.HierTS, "meTS": agents.MeTS, "LinTS": agents.LinTS}}[{agent!r}]
size = {size}
env = gym.make_vec({env!r}, num_envs=size) if size > 1 else gym.make({env!r})
agent = cls.from_env(env, num_envs=size, seed=0)
obs, _ = env.reset(seed=0)
agent.reset(seed=0)
VIEWS = {{"__getitem__", "view", "reshape", "expand", "expand_as", "transpose", "mT", "T", "unsqueeze",
          "squeeze", "select", "narrow", "flatten", "permute", "diagonal", "view_as"}}
METADATA = {{"", "shape", "dtype", "device", "ndim", "_version", "is_cuda", "layout", "data", "requires_grad",
             "grad", "is_leaf"}}

class Record(TorchFunctionMode):
    \"\"\"Every torch call made from Python (calls torch makes inside them are not seen).\"\"\"

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append((func, args, kwargs or {{}}))
        return func(*args, **(kwargs or {{}}))

def label(func):
    name = getattr(func, "__name__", str(func))
    if name == "__get__":  # a property: a view (mT, T) or metadata (shape, dtype...)
        name = getattr(getattr(func, "__self__", None), "__name__", "")
    return name

record = Record()
rounds = {rounds}
for t in range(20 + rounds):  # the first 20 rounds (episode set-up, first blocks of normals) not recorded
    with record if t >= 20 else contextlib.nullcontext():
        action = agent.act(obs)
    nxt, _, _, _, info = env.step(action)
    with record if t >= 20 else contextlib.nullcontext():
        agent.update(obs, action, info["rewards"])
    obs = nxt
names = collections.Counter(label(func) for func, _, _ in record.calls)
calls = sum(v for k, v in names.items() if k not in METADATA)
views = sum(v for k, v in names.items() if k in VIEWS)
top = [[k, round(v / rounds, 1)] for k, v in names.most_common() if k not in METADATA][:10]
best = float("inf")
with torch.no_grad():  # the recorded calls again, alone, on the same tensors (values do not matter)
    for _ in range(5):
        start = time.process_time()
        for func, args, kwargs in record.calls:
            func(*args, **kwargs)
        best = min(best, time.process_time() - start)
print(json.dumps([calls / rounds, views / rounds, best / rounds / size * 1e6, top]))
"""

#: prepended to a timing snippet: every normal draw served from one fixed tensor per shape (speed only)
FIXED_NORMALS = """
import torch
from hbgym.agents.random import ReplicateStreams
_fixed = {}
def _normal_like(self, like):
    if tuple(like.shape) not in _fixed:
        _fixed[tuple(like.shape)] = torch.zeros(like.shape, dtype=like.dtype)
    return _fixed[tuple(like.shape)]
ReplicateStreams.normal_like = _normal_like
"""


def _best(code: str, repeats: int) -> float:
    """The smallest of ``repeats`` child runs of a timing snippet that prints one number."""
    return min(run_python(None, code) for _ in range(repeats))


def _best_batched(code: str, repeats: int) -> float:
    """:func:`_best` of an ``agent_scaling`` snippet, in agent us per seed-round."""
    return min(run_python(None, code)[0] for _ in range(repeats)) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "agent_floor.md"))
    args = parser.parse_args(argv)

    rows, tops = [], []
    for agent, env in CASES:
        case = {"agent": agent, "env": env, "size": 1, "rounds": args.rounds}
        calls, views, alone, top = run_python(None, RECORD.format(**case))
        spent = _best(SINGLE.format(agent=agent, env=env, rounds=args.rounds), args.repeats)
        target = BASELINE_US[agent] / 3
        rows.append([agent, env, f"{BASELINE_US[agent]:.0f}", f"{spent:.0f}", f"{target:.0f}", f"{calls:.0f}",
                     f"{views:.0f}", f"{alone:.0f}", f"{spent - alone:.0f}"])
        tops.append(f"- {agent}: " + ", ".join(f"`{name}` {count}" for name, count in top))
        print(rows[-1], flush=True)
    batched = {"agent": "meTS", "env": "MixedEffect-v0", "size": 50, "rounds": max(args.rounds // 5, 30)}
    calls, views, alone, _ = run_python(None, RECORD.format(**batched))
    timing = BATCHED.format(**batched, kwargs={})
    with_normals = _best_batched(timing, args.repeats)
    without = _best_batched(FIXED_NORMALS + timing, args.repeats)
    body = "\n".join([
        "## Single replicate (B=1): the torch calls of a round, replayed alone, against the 3x target",
        "",
        markdown_table(
            ["agent", "env", "today (bba5658) us/round", "now us/round", "3x target", "torch calls/round",
             "of which views", "those calls alone (us)", "outside torch calls (us)"],
            rows,
        ),
        "",
        "Most frequent calls per round:",
        "",
        *tops,
        "",
        "## meTS at B=50 (target 15 us per seed-round)",
        "",
        markdown_table(
            ["meTS, MixedEffect-v0, B=50", "agent us per seed-round"],
            [["now", f"{with_normals:.1f}"],
             [f"its {calls:.0f} torch calls per round ({views:.0f} views) replayed alone", f"{alone:.1f}"],
             ["now, with the normals served from a fixed tensor (speed only)", f"{without:.1f}"],
             ["share of the normals (206 per replicate-round)",
              f"{100 * (with_normals - without) / with_normals:.0f}%"]],
        ),
    ])
    setup = (f"Timed as `agent_single` (B=1: {args.rounds} rounds from reset) and `agent_scaling` (B=50: "
             f"{batched['rounds']} rounds after 5 warm-up rounds): CPU time, one torch thread, env step "
             f"excluded, best of {args.repeats} child processes. Calls recorded over the same numbers of "
             "rounds after 20 warm-up rounds. 'Those calls alone': every torch call the agent's Python code "
             "made in those rounds (recorded with a `torch.overrides.TorchFunctionMode`, calls torch makes "
             "inside them not counted), replayed in a loop on the same tensors, best of 5; the rest of the "
             "round is our Python code between the calls and NumPy (the random hashes on the CPU).")
    write_result(args.out, "Where an agent's round goes (issue 18 items 3 and 4)", "agent_floor", argv,
                 setup + "\n\n" + body)


if __name__ == "__main__":
    main()
