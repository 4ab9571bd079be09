"""Rendering of a multi-task bandit episode as it runs: ``"rgb_array"`` frames and ``"ansi"`` text.

Pure NumPy (no matplotlib): a frame is a ``(H, W, 3)`` uint8 array with three panels,

1. top: the episode's total cumulative pseudo-regret against the round (blue curve, x axis = the
   whole episode, so the curve grows left to right as the episode runs);
2. middle: one bar per task, its cumulative regret so far (the tasks that acted in the latest round
   in orange, the others in grey; tasks are binned by their maximum when there are more tasks than
   pixels);
3. bottom: the latest round, one row per acting slot and one column per action: the background
   shade is the action's mean reward within the row (dark = low, light = high), green marks the
   optimal action, red the chosen one, and blue a chosen action that was optimal;

plus a progress bar (rounds played / rounds per episode) along the bottom edge.

A :class:`EpisodeRecorder` exists only when the env was made with a ``render_mode``: with
``render_mode=None`` nothing is recorded beyond what ``step`` computes anyway.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RENDER_MODES", "EpisodeRecorder", "check_render_mode"]

RENDER_MODES: tuple[str, ...] = ("rgb_array", "ansi")
FRAME_SHAPE: tuple[int, int, int] = (240, 320, 3)
_HISTORY = 512  # at most this many points of the regret curve are kept (decimated by 2 when full)

_WHITE = np.array([255, 255, 255], dtype=np.uint8)
_BLUE = np.array([31, 119, 180], dtype=np.uint8)
_ORANGE = np.array([255, 127, 14], dtype=np.uint8)
_GREY = np.array([150, 150, 150], dtype=np.uint8)
_GREEN = np.array([44, 160, 44], dtype=np.uint8)
_RED = np.array([214, 39, 40], dtype=np.uint8)
_AXIS = np.array([60, 60, 60], dtype=np.uint8)


def check_render_mode(render_mode: str | None) -> str | None:
    """Return ``render_mode`` if it is None or one of :data:`RENDER_MODES`, else raise ValueError."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode={render_mode!r} is not supported; use one of {RENDER_MODES} or None")
    return render_mode


def _pixel_index(count: int, pixels: int) -> np.ndarray:
    """For each of ``pixels`` pixels, the item (of ``count``) it shows: ``(pixels,)`` int."""
    return (np.arange(pixels) * count) // pixels


class EpisodeRecorder:
    """What the renderer shows of one episode (single env): per-task regret, the latest round.

    Args:
        num_tasks: m; num_actions: K; tasks_per_round: L; num_rounds: rounds per episode.
    """

    def __init__(self, num_tasks: int, num_actions: int, tasks_per_round: int, num_rounds: int) -> None:
        self.num_tasks, self.num_actions = num_tasks, num_actions
        self.tasks_per_round, self.num_rounds = tasks_per_round, num_rounds
        self.reset()

    def reset(self) -> None:
        """Forget the episode: zero regret, no latest round."""
        self.task_regret = np.zeros(self.num_tasks)  # (m,)
        self.total = 0.0
        self.rounds = 0
        self.curve: list[float] = [0.0]  # total regret every `stride` rounds
        self.stride = 1
        self.tasks: np.ndarray | None = None  # (L,) latest round
        self.actions: np.ndarray | None = None
        self.optimal: np.ndarray | None = None
        self.means: np.ndarray | None = None  # (L, K)

    def record(
        self, tasks: np.ndarray, actions: np.ndarray, means: np.ndarray, regret: np.ndarray
    ) -> None:
        """One played round: acting ``tasks`` ``(L,)``, ``actions`` ``(L,)``, mean rewards ``(L, K)``,
        pseudo-regret ``(L,)``."""
        np.add.at(self.task_regret, tasks, regret)
        self.total += float(regret.sum())
        self.rounds += 1
        self.tasks, self.actions, self.means = tasks.copy(), actions.copy(), means.copy()
        self.optimal = means.argmax(axis=-1)
        if self.rounds % self.stride == 0:
            self.curve.append(self.total)
            if len(self.curve) > _HISTORY:
                self.curve = self.curve[::2]
                self.stride *= 2

    # ----------------------------------------------------------------------------------- ansi

    def ansi(self, max_tasks: int = 20) -> str:
        """A text summary: round, total regret, per-task regret (first ``max_tasks``), latest round."""
        lines = [f"round {self.rounds}/{self.num_rounds}  cumulative regret {self.total:.4g}"]
        shown = min(self.num_tasks, max_tasks)
        cells = [f"{s}:{self.task_regret[s]:.3g}" for s in range(shown)]
        more = f" ... ({self.num_tasks - shown} more)" if self.num_tasks > shown else ""
        lines.append("regret per task  " + " ".join(cells) + more)
        if self.tasks is not None:
            for slot in range(min(len(self.tasks), max_tasks)):
                a, best = int(self.actions[slot]), int(self.optimal[slot])
                gap = self.means[slot, best] - self.means[slot, a]
                mark = "optimal" if a == best else f"optimal {best}, gap {gap:.3g}"
                lines.append(f"  task {int(self.tasks[slot])}: action {a} ({mark})")
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------------------------- rgb

    def rgb_array(self) -> np.ndarray:
        """The current frame, ``(240, 320, 3)`` uint8."""
        height, width, _ = FRAME_SHAPE
        frame = np.empty(FRAME_SHAPE, dtype=np.uint8)
        frame[:] = _WHITE
        self._draw_curve(frame[4:84, 4 : width - 4])
        self._draw_bars(frame[92:152, 4 : width - 4])
        self._draw_round(frame[160:228, 4 : width - 4])
        done = int(round((width - 8) * self.rounds / max(self.num_rounds, 1)))
        frame[height - 8 : height - 3, 4 : 4 + done] = _BLUE
        frame[height - 8 : height - 3, 4 + done : width - 4] = _GREY
        return frame

    def _draw_curve(self, panel: np.ndarray) -> None:
        h, w, _ = panel.shape
        panel[h - 1, :] = _AXIS
        panel[:, 0] = _AXIS
        rounds = np.r_[np.arange(len(self.curve)) * self.stride, self.rounds]  # the latest point too
        curve = np.r_[self.curve, self.total]
        top = max(self.total, 1e-12)
        x = np.minimum((rounds / max(self.num_rounds, 1) * (w - 2)).astype(int) + 1, w - 1)
        y = np.clip(h - 2 - (curve / top * (h - 3)).astype(int), 0, h - 2)
        for i in range(1, len(x)):  # a polyline: fill each segment's columns between the two heights
            lo, hi = sorted((y[i - 1], y[i]))
            panel[lo : hi + 1, x[i - 1] : x[i] + 1] = _BLUE
        panel[y[0], x[0]] = _BLUE

    def _draw_bars(self, panel: np.ndarray) -> None:
        h, w, _ = panel.shape
        panel[h - 1, :] = _AXIS
        m = self.num_tasks
        active = np.zeros(m, dtype=bool)
        if self.tasks is not None:
            active[self.tasks] = True
        if m > w:  # bin tasks: each pixel column shows the largest regret of its bin
            edges = _pixel_index(m, w)
            values = np.maximum.reduceat(self.task_regret, edges)
            flags = np.logical_or.reduceat(active, edges)
            col_of = np.arange(w)
        else:
            values, flags = self.task_regret, active
            col_of = _pixel_index(m, w)
        top = max(values.max(initial=0.0), 1e-12)
        heights = (values / top * (h - 2)).astype(int)[col_of]  # (w,)
        gap = (w // m > 2) & (np.diff(np.r_[-1, col_of]) != 0)  # one blank column between wide bars
        rows = np.arange(h - 1)[:, None]
        filled = (rows >= h - 1 - heights[None, :]) & ~gap[None, :]
        colours = np.where(flags[col_of][:, None], _ORANGE, _GREY)  # (w, 3)
        panel[: h - 1][filled] = np.broadcast_to(colours[None], (h - 1, w, 3))[filled]

    def _draw_round(self, panel: np.ndarray) -> None:
        if self.tasks is None:
            return
        h, w, _ = panel.shape
        rows = _pixel_index(len(self.tasks), h)  # (h,) slot of each pixel row
        cols = _pixel_index(self.num_actions, w)  # (w,) action of each pixel column
        means = self.means
        low, high = means.min(axis=1, keepdims=True), means.max(axis=1, keepdims=True)
        shade = (means - low) / np.maximum(high - low, 1e-12)  # (L, K) in [0, 1]
        grey = (60 + 170 * shade[rows][:, cols]).astype(np.uint8)  # (h, w)
        panel[:] = grey[..., None]
        chosen = cols[None, :] == self.actions[rows][:, None]  # (h, w)
        best = cols[None, :] == self.optimal[rows][:, None]
        panel[best & ~chosen] = _GREEN
        panel[chosen & ~best] = _RED
        panel[chosen & best] = _BLUE
        row_edges = np.diff(np.r_[-1, rows]) != 0
        if h // len(self.tasks) > 2:
            panel[row_edges] = _WHITE  # a white line between slots
