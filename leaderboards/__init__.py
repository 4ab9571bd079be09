"""hbgym leaderboards: suites, runner, scoring, report and submission (see DESIGN.md sec. 6)."""

from hbgym.extras import require

require("hbgym.leaderboards", ("torch", "matplotlib", "joblib", "tqdm"), "leaderboard")
