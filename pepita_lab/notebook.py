"""Helpers the notebooks share: the smoke switch that shrinks every notebook to tiny settings.

`PEPITA_LAB_SMOKE=1` (an environment variable) makes `pick(full, smoke)` return the smoke
value, so the test suite runs each notebook top to bottom in seconds; unset, the notebooks
use their full settings.
"""

from __future__ import annotations

import os

SMOKE = os.environ.get("PEPITA_LAB_SMOKE", "").strip() not in ("", "0", "false", "False")


def pick(full, smoke):
    """`smoke` when PEPITA_LAB_SMOKE is set, else `full`."""
    return smoke if SMOKE else full
