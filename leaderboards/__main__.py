"""``python -m hbgym.leaderboards`` = ``hbgym-leaderboard``."""

import sys

from hbgym.leaderboards.cli import main

sys.exit(main())
