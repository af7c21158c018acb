"""Learning curves: a metric over epochs (or traced steps) for every run, accuracies zoomed to
the trained epochs, a diverged run's last point marked (`learning_curves`); the same one panel
per depth (`depth_curves`).
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import xarray as xr

from .common import (_accuracy_zoom, _color, _default_color, _label, _sentence, _thin, _title,
                     _tooltip, _with_run_dim, _wrapped, _x_axis, coinciding_note, history_frame)


def _divergence_marks(ds: xr.Dataset, df: pd.DataFrame, name: str, x: str, color):
    """For runs with a finite `diverged_at` coordinate (the epoch, as a fraction, where the run
    diverged; the explorer sets it): a dashed segment from the last recorded value to that
    point and a red cross labelled "diverged", and the last such point. (None, -inf) if no
    run diverged."""
    if x != "epoch" or "diverged_at" not in ds.coords:
        return None, -math.inf
    at = pd.Series(ds["diverged_at"].values, index=[str(r) for r in ds["run"].values])
    rows = []
    for run, g in df.dropna(subset=[name]).groupby("run"):
        if run in at and np.isfinite(at[run]):
            last = g.loc[g[x].idxmax()]
            rows.append({**last.to_dict(), "x_end": float(at[run])})
    if not rows:
        return None, -math.inf
    marks = pd.DataFrame(rows)
    base = alt.Chart(marks).encode(y=f"{name}:Q")
    segment = base.mark_rule(strokeDash=[3, 3]).encode(x=f"{x}:Q", x2="x_end:Q", color=color)
    cross = base.mark_point(shape="cross", size=120, filled=True, color="#c00").encode(
        x="x_end:Q", tooltip=["run", alt.Tooltip("x_end", title="diverged at epoch",
                                                 format=".2f")])
    text = base.mark_text(align="left", dx=7, color="#c00").encode(
        x="x_end:Q", text=alt.value("diverged"))
    return segment + cross + text, float(marks["x_end"].max())


def _curve(ds: xr.Dataset, name: str, color, detail: str, width: int, height: int,
           scale=alt.Undefined, zoom: bool = True, colors: dict | None = None):
    """Lines of `name` over epoch (or step) for every run, thinned to fit, and notes on the
    thinning, the zoom (accuracies: see `_accuracy_zoom`) and runs drawn one under another.
    The x axis spans every recorded epoch, so charts of one history start at the same epoch
    even where a value has none at epoch 0 (a training loss)."""
    x = "step" if "step" in ds[name].dims else "epoch"
    every, k = _thin(history_frame(ds, name, dims=(x,)), x)
    df = every.dropna(subset=[name])
    axis, zoomed, shown = alt.Undefined, "", df
    if name.endswith("_acc"):
        scale, axis, shown, zoomed = (_accuracy_zoom(df, name, x) if zoom else
                                      (scale, alt.Axis(format=".0%"), df, ""))
    under = coinciding_note(ds, df, name, color, [x])
    color = _color(ds, color, colors)
    diverged, end = _divergence_marks(ds, shown, name, x, color)
    chart = alt.Chart(shown).mark_line(point=alt.OverlayMarkDef(size=18), clip=True).encode(
        x=_x_axis(x, every, end), y=alt.Y(f"{name}:Q", title=_wrapped(_label(ds, name), height),
                                           axis=axis, scale=scale),
        color=color, detail=f"{detail}:N", tooltip=_tooltip(ds, "run", x, name),
    ).properties(width=width, height=height)
    if diverged is not None:
        chart = alt.layer(chart, diverged)
    return chart, (f"one {x} in {k} shown" if k > 1 else ""), zoomed, under


def learning_curves(history: xr.Dataset, metric="test_acc", color: str | None = "rule",
                    detail: str = "run", *, width: int | None = None, height: int = 250,
                    zoom: bool = True, colors: dict | None = None, title: str | None = None,
                    subtitle: str = ""):
    """`metric` (e.g. test_acc, test_loss, or a step_* variable) over epochs for every run,
    coloured by a run setting (None: the first that varies); a list of metrics gives a grid of
    two columns (300 px wide each unless `width` says otherwise, so it fits a notebook).
    Accuracies are zoomed to the trained epochs (`zoom=False`: the whole 0-100 % axis).
    `colors` (a colour per value of `color`, e.g. `run_colors` of all runs) keeps each run's
    colour the same as in other charts; runs drawn exactly under another are named in the
    subtitle (after `subtitle`; `title`: the chart's own, else the metric's name)."""
    ds = _with_run_dim(history)
    color = color or _default_color(ds)
    if not isinstance(metric, str):
        charts = [learning_curves(ds, m, color, detail, width=width or 300, height=height,
                                  zoom=zoom, colors=colors) for m in metric]
        return alt.concat(*charts, columns=2)
    chart, *notes = _curve(ds, metric, color, detail, width or 400, height, zoom=zoom,
                           colors=colors)
    title = title or _label(ds, metric).capitalize()
    return chart.properties(title=_title(title, subtitle, *notes))


def depth_curves(history: xr.Dataset, metric: str = "test_acc", color: str = "variant", *,
                 width: int = 260, height: int = 220, colors: dict | None = None):
    """`metric` over epochs, one panel per depth (hidden layers), a line per run coloured by
    `color` (a run setting; the deeper-net comparison's `variant`; `colors` as in
    `learning_curves`); accuracies zoomed to the trained epochs."""
    ds = _with_run_dim(history)
    df = history_frame(ds, metric).dropna(subset=[metric])
    shown, scale, axis = df, alt.Undefined, alt.Undefined
    if metric.endswith("_acc"):
        scale, axis, shown, _ = _accuracy_zoom(df, metric, "epoch")
    chart = alt.Chart(shown).mark_line(point=alt.OverlayMarkDef(size=14), clip=True).encode(
        x=_x_axis("epoch", df), y=alt.Y(f"{metric}:Q", title=_label(ds, metric), axis=axis,
                                         scale=scale),
        color=_color(ds, color, colors), detail="run:N",
        tooltip=_tooltip(ds, "run", "epoch", metric)).properties(width=width, height=height)
    under = coinciding_note(ds, df, metric, color, ["epoch"], facet="depth")
    return chart.facet(column=alt.Column("depth:O", title="hidden layers")).properties(
        title=_title(_sentence(_label(ds, metric)) + " by depth", under))
