"""Single-env step cost of every family vs a minimal NumPy env of the same shape (the yardstick).

    python -m benchmarks.env_step [--steps 20000] [--repeats 40] [--baseline bba5658]

The yardstick is the smallest honest env a user could write by hand: L=5 tasks, K=10 actions, d=2,
fixed actions, Gaussian rewards, the same observation keys (``task``, ``features``) and ``info`` keys,
a range check of the action; its noise comes from ``np.random.Generator`` (no common random numbers).
Both go through ``gym.make`` (same wrappers). Ours and the yardstick play seeded random actions in
``--repeats`` interleaved chunks and the best chunk of each is kept (the machine is shared); the figure
is the ratio (issue 18 target: <= 2x for every family). Writes ``benchmarks/results/env_step.md``.
"""

from __future__ import annotations

import argparse
import inspect
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import hbgym  # noqa: F401
from benchmarks.baseline import run_python, tree_at
from benchmarks.common import RESULTS, markdown_table, write_result

FAMILIES = ("HierGaussian-v0", "HierGaussianMAB-v0", "MixedEffect-v0", "PartialContext-v0", "MultiBandit-v0")
YARDSTICK_ID = "hbgym-bench/NumpyYardstick-v0"


class NumpyYardstickEnv(gym.Env):
    """Minimal multi-task linear Gaussian bandit: L=5 tasks per round, K=10 actions, d=2."""

    def __init__(self, num_tasks: int = 10, tasks_per_round: int = 5, num_actions: int = 10, dim: int = 2,
                 horizon: int = 200, sigma: float = 0.5) -> None:
        self.m, self.L, self.K, self.d, self.sigma = num_tasks, tasks_per_round, num_actions, dim, sigma
        self.rounds = num_tasks * horizon // tasks_per_round
        self.observation_space = spaces.Dict({
            "task": spaces.MultiDiscrete(np.full(self.L, num_tasks)),
            "features": spaces.Box(-0.5, 0.5, (self.L, num_actions, dim), dtype=np.float64),
        })
        self.action_space = spaces.MultiDiscrete(np.full(self.L, num_actions))

    def _obs(self) -> dict[str, np.ndarray]:
        self.tasks = self.schedule[min(self.t, self.rounds - 1)]
        self.means = self.theta[self.tasks] @ self.x.T  # (L, K)
        return {"task": self.tasks, "features": np.broadcast_to(self.x, (self.L, self.K, self.d)).copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        mu = self.np_random.normal(size=self.d)
        self.theta = mu + 0.1 * self.np_random.normal(size=(self.m, self.d))
        self.x = self.np_random.uniform(-0.5, 0.5, (self.K, self.d))
        tasks = np.repeat(np.arange(self.m), self.rounds * self.L // self.m)
        self.schedule = self.np_random.permutation(tasks).reshape(self.rounds, self.L)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        a = np.asarray(action)
        if a.shape != (self.L,) or a.min() < 0 or a.max() >= self.K:
            raise ValueError(f"action must be (L,) ints in [0, {self.K - 1}]")
        rows = np.arange(self.L)
        chosen = self.means[rows, a]
        rewards = chosen + self.sigma * self.np_random.normal(size=self.L)
        best = self.means.max(axis=1)
        info = {"rewards": rewards, "expected_rewards": chosen, "optimal_actions": self.means.argmax(axis=1),
                "regret": best - chosen, "round": self.t}
        self.t += 1
        done = self.t >= self.rounds
        return self._obs(), float(rewards.sum()), done, False, info


def us_per_step(env: gym.Env, actions: np.ndarray) -> float:
    """Mean wall microseconds per ``env.step`` over ``actions`` ``(steps, L)``, including the resets
    at episode ends (amortised: they are part of what a user pays per step)."""
    start = time.process_time()
    for a in actions:
        _, _, terminated, _, _ = env.step(a)
        if terminated:
            env.reset()
    return (time.process_time() - start) / len(actions) * 1e6


def measure(steps: int, repeats: int) -> list[tuple[str, str, float, float]]:
    """Per family: (env id, shape, ours us/step, yardstick us/step), best interleaved chunk of each."""
    if YARDSTICK_ID not in gym.registry:
        gym.register(YARDSTICK_ID, entry_point=NumpyYardstickEnv)
    yard = gym.make(YARDSTICK_ID)
    rows = []
    for env_id in FAMILIES:
        env = gym.make(env_id)
        model = env.unwrapped.model
        acts = np.random.default_rng(0).integers(model.num_actions, size=(steps, model.tasks_per_round))
        yard_acts = np.random.default_rng(0).integers(10, size=(steps, 5))
        ours, base = [], []
        env.reset(seed=0)
        yard.reset(seed=0)
        for chunk in np.array_split(np.arange(steps), repeats):  # interleaved: load spikes hit both
            ours.append(us_per_step(env, acts[chunk]))
            base.append(us_per_step(yard, yard_acts[chunk]))
        rows.append((env_id, f"L={model.tasks_per_round}, K={model.num_actions}", min(ours), min(base)))
    return rows


def measure_baseline(ref: str, steps: int, repeats: int) -> list[list]:
    """:func:`measure` run by a child process on the code at git ``ref`` (same yardstick, same loop)."""
    source = "\n\n".join(inspect.getsource(obj) for obj in (NumpyYardstickEnv, us_per_step, measure))
    code = "\n".join([
        "import json, time; from typing import Any; import numpy as np, gymnasium as gym",
        "from gymnasium import spaces; import hbgym",
        f"FAMILIES = {FAMILIES!r}; YARDSTICK_ID = {YARDSTICK_ID!r}",
        source,
        f"print(json.dumps(measure({steps}, {repeats})))",
    ])
    return run_python(tree_at(ref), code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=40, help="interleaved chunks; the best chunk counts")
    parser.add_argument("--baseline", default="bba5658", help="git ref measured too ('' to skip)")
    parser.add_argument("--out", default=str(RESULTS / "env_step.md"))
    args = parser.parse_args(argv)
    old = measure_baseline(args.baseline, args.steps, args.repeats) if args.baseline else None
    rows = []
    for i, (env_id, shape, ours, yard) in enumerate(measure(args.steps, args.repeats)):
        row = [env_id, shape, f"{ours:.1f}", f"{yard:.1f}", f"{ours / yard:.2f}x"]
        if old is not None:
            row += [f"{old[i][2]:.1f}", f"{old[i][3]:.1f}", f"{old[i][2] / old[i][3]:.2f}x"]
        rows.append(row)
    header = ["env", "shape", "ours us/step", "yardstick us/step", "ratio"]
    if old is not None:
        header += [f"{args.baseline}: ours", f"{args.baseline}: yardstick", f"{args.baseline}: ratio"]
    table = markdown_table(header, rows)
    write_result(
        args.out, "Single-env step cost vs a minimal NumPy env (issue 18 item 1: ratio <= 2x)", "env_step",
        argv,
        f"Both through `gym.make`; {args.steps} steps each, timed in {args.repeats} interleaved chunks, best "
        "chunk of each (resets at episode ends included; CPU time of the process, `time.process_time`); "
        "yardstick: L=5, K=10, d=2, Gaussian rewards, same obs/info keys. The baseline columns are the "
        "same loop run by a child process on the code before the speed work (its own yardstick run).\n\n"
        + table,
    )


if __name__ == "__main__":
    main()
