"""What the explorer's and the sweep panel's charts share: their size, how they are embedded,
and the empty chart shown before the first run.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

# Two charts of this size side by side, legends below them, fit a notebook panel of about
# 1000 px; a narrower panel wraps the second chart below the first (never cut off).
CHART_WIDTH, CHART_HEIGHT = 300, 200
# SVG, not canvas: these charts have no gradient legends (whose ids clash between SVG charts
# on one page, see plots.EMBED_OPTIONS), and their points can be counted in the page.
EMBED_OPTIONS = {"renderer": "svg", "actions": False}


def _placeholder(title: str) -> alt.Chart:
    return alt.Chart(pd.DataFrame({"epoch": [0], "value": [0.0]})).mark_point(opacity=0).encode(
        x="epoch:Q", y="value:Q").properties(title=title, width=CHART_WIDTH,
                                             height=CHART_HEIGHT)
