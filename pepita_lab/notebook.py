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


def runs_dir():
    """Where notebooks keep their run folders: $PEPITA_LAB_RUNS, else ../runs (the repository's
    runs/ folder when JupyterLab serves notebooks/)."""
    from pathlib import Path

    return Path(os.environ.get("PEPITA_LAB_RUNS", "../runs"))


RUNS = runs_dir()


def setup_charts() -> None:
    """Show altair charts as widgets with vega bundled in: no internet needed, and fast (the
    default renderer loads vega from a CDN; the plain offline one re-validates every spec)."""
    import altair as alt
    from IPython import get_ipython

    alt.JupyterChart.enable_offline()
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.mimebundle_formatter.for_type(
            alt.TopLevelMixin, lambda chart: alt.JupyterChart(chart)._repr_mimebundle_())
