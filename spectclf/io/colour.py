"""Moved to :mod:`spectclf.colour` in 0.3 (the estimators use it too, and they do not
depend on file input); the old import path keeps working."""

from spectclf.colour import *  # noqa: F403
from spectclf.colour import __all__  # noqa: F401
