"""Imported first by :mod:`hbgym.agents`: without torch, an ImportError naming the ``agents`` extra."""

from hbgym.extras import require

require("hbgym.agents", ("torch",), "agents")
