"""``python -m leaderboards`` = ``hbgym-leaderboard``."""

import sys

from leaderboards.cli import main

sys.exit(main())
