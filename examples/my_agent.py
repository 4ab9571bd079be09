"""A third-party agent in plain NumPy: UCB1 per (task, action). Copy it and change `act`.

    python -m hbgym.leaderboards run --agent examples/my_agent.py:make_agent --suite quick
    python -m hbgym.leaderboards submit --agent examples/my_agent.py:make_agent --suite quick
"""

import numpy as np


class TaskUCB:
    def __init__(self, num_tasks: int, num_actions: int) -> None:
        self.shape = (num_tasks, num_actions)

    def reset(self, seed=None) -> None:  # a new episode = a new problem instance
        self.n, self.sum, self.t = np.zeros(self.shape), np.zeros(self.shape), 1

    def act(self, obs) -> np.ndarray:  # obs["task"]: (L,) acting tasks -> one action per task
        n, mean = self.n[obs["task"]], self.sum[obs["task"]] / np.maximum(self.n[obs["task"]], 1)
        bonus = np.where(n > 0, np.sqrt(2 * np.log(self.t) / np.maximum(n, 1)), np.inf)
        return np.argmax(mean + bonus, axis=1)

    def update(self, obs, action, reward) -> None:  # reward: (L,) one per acting task
        np.add.at(self.n, (obs["task"], action), 1)
        np.add.at(self.sum, (obs["task"], action), reward)
        self.t += 1


def make_agent(env) -> TaskUCB:
    model = env.unwrapped.model  # the public model: what an agent may know
    return TaskUCB(model.num_tasks, model.num_actions)
