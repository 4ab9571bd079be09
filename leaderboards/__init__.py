"""hbgym leaderboards: suites, runner, scoring, report and submission (see DESIGN.md sec. 6)."""
