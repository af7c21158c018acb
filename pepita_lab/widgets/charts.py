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


def _placeholder(title: str, text: str = "no run yet") -> alt.Chart:
    """An empty chart of the explorer's size: its title and a word, no axes to read."""
    return alt.Chart(pd.DataFrame({"x": [0.5], "y": [0.5]})).mark_text(color="gray").encode(
        x=alt.X("x:Q", axis=None, scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[0, 1])), text=alt.value(text)
    ).properties(title=title, width=CHART_WIDTH, height=CHART_HEIGHT)


# The explorer's second chart, by what is being trained: what means something for that rule.
# PEPITA: the angle between the network's map and F (its feedback); with weight mirroring, the
# angles of F's factors with the forward weights. FF: its own loss (the goodness losses summed
# over the layers): FF has no F and no error signal, and its output layer is neither trained
# nor used, so an angle with BP's gradient (which flows through that random output layer)
# says nothing about what its layers learn, while the loss is what each of them descends. BP:
# its test loss (its angle with itself is 0). FA, DFA, DRTP: each layer's angle with BP's
# gradient, the measure of feedback alignment.
SECOND_CHARTS = {"pepita": "f_angle", "ff": "train_loss", "bp": "test_loss"}
SECOND_TITLES = {"f_angle": "F angle", "mirror_angle": "Weight mirroring: angle(B_l, W_l^T)",
                 "train_loss": "FF's own loss (goodness, summed over layers)",
                 "test_loss": "Test loss", "bp_angle": "Angle of each layer's update with BP's"}


def second_chart_kind(rule: str, mirroring: bool = False) -> str:
    """Which second chart the explorer shows for `rule` (and weight mirroring)."""
    if mirroring:
        return "mirror_angle"
    return SECOND_CHARTS.get(rule, "bp_angle")


def run_kinds(ds) -> list[str]:
    """`second_chart_kind` of each run of a history dataset (from its run coordinates)."""
    rules = [str(r) for r in ds["rule"].values]
    mirror = (ds["weight_mirroring"].values if "weight_mirroring" in ds.coords
              else [False] * len(rules))
    return [second_chart_kind(r, bool(m)) for r, m in zip(rules, mirror)]


def shows(kind: str, run_kind: str) -> bool:
    """Whether a run of `run_kind` belongs on the second chart of `kind` (a mirrored PEPITA
    run has an F angle too)."""
    return run_kind == kind or (kind == "f_angle" and run_kind == "mirror_angle")


def hidden_runs(rules: list[str], kinds: list[str], kind: str) -> str:
    """What the second chart of `kind` leaves out, in words: '1 pepita run without mirroring
    and 2 ff runs not shown' (the runs' `rules` and `run_kinds`)."""
    counts: dict[str, int] = {}
    for rule, run_kind in zip(rules, kinds):
        if not shows(kind, run_kind):
            without = kind == "mirror_angle" and run_kind == "f_angle"
            what = (rule, " without mirroring" if without else "")
            counts[what] = counts.get(what, 0) + 1
    said = [f"{n} {rule} run{'' if n == 1 else 's'}{rest}" for (rule, rest), n in counts.items()]
    if not said:
        return ""
    return (", ".join(said[:-1]) + " and " + said[-1] if len(said) > 1 else said[0]) + \
        " not shown"
