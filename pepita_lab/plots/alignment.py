"""Angle charts: the rule's update against the BP gradient per layer (`bp_alignment`), the net's
end-to-end map against F (`f_alignment`), per-layer angles by depth (`layer_angles`) and weight
mirroring's angle(B_l, W_l^T) (`mirror_angle_curves`).
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import xarray as xr

from .common import (_color, _default_color, _label, _sentence, _thin, _title, _tooltip,
                     _with_run_dim, _wrapped, _x_axis, coinciding_note, history_frame,
                     run_settings)
from .curves import _curve


def bp_alignment(history: xr.Dataset, kind: str = "cosine", *, steps: bool = False,
                 width: int = 400, height: int = 220):
    """Per-layer alignment of the rule's update with the BP gradient over epochs (or traced
    steps): `kind="cosine"` (bp_cosine) or `"angle"` (bp_angle, degrees); one panel per run."""
    if kind not in ("cosine", "angle"):
        raise ValueError(f"kind={kind!r} is not allowed: expected 'cosine' or 'angle'")
    ds, name = _with_run_dim(history), ("step_" if steps else "") + f"bp_{kind}"
    x = "step" if steps else "epoch"
    df, k = _thin(history_frame(ds, name, dims=(x, "layer")).dropna(subset=[name]), x)
    domain, ref = ([-1, 1], 0) if kind == "cosine" else ([0, 180], 90)
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=_x_axis(x, df),
        y=alt.Y(f"{name}:Q", title=_label(ds, name), scale=alt.Scale(domain=domain)),
        color=alt.Color("layer:O", title="layer l (last = output)",
                        scale=alt.Scale(scheme="tableau10")),
        tooltip=_tooltip(ds, "run", x, "layer", name))
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(ref))
    chart = alt.layer(lines, rule, data=df).properties(width=width, height=height)
    if df["run"].nunique() > 1:
        chart = chart.facet(facet=alt.Facet("run:N", title=None), columns=2)
    return chart.properties(title=_title(
        f"Alignment with backprop ({kind}) per layer", f"one {x} in {k} shown" if k > 1 else ""))


def layer_angles(history: xr.Dataset, name: str, color: str = "variant", *, width: int = 200,
                 height: int = 160, colors: dict | None = None):
    """A per-layer angle (`mirror_angle`, `implied_angle`, `bp_angle`, `feedback_angle`) over
    epochs: rows by depth, columns by layer, a line per run coloured by `color` (`colors` as
    in `learning_curves`); None if no run has a value."""
    ds = _with_run_dim(history)
    if ds.sizes.get("run", 0) == 0 or name not in ds:
        return None
    df = history_frame(ds, name, dims=("epoch", "layer")).dropna(subset=[name])
    if df.empty:
        return None
    color = color if color in ds.coords else _default_color(ds)
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=_x_axis("epoch", df), y=alt.Y(f"{name}:Q", title=_wrapped(_label(ds, name), height),
                                         scale=alt.Scale(domain=[0, 180])),
        color=_color(ds, color, colors), detail="run:N",
        tooltip=_tooltip(ds, "run", "epoch", "layer", name))
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(90))
    chart = alt.layer(lines, rule, data=df).properties(width=width, height=height)
    over = ["epoch", "layer"] + (["depth"] if "depth" in df else [])
    return chart.facet(row=alt.Row("depth:O", title="hidden layers"),
                       column=alt.Column("layer:O", title="layer l")).properties(
        title=_title(_sentence(_label(ds, name)), coinciding_note(ds, df, name, color, over)))


def per_layer_curves(history: xr.Dataset, name: str, title: str, color: str | None = None, *,
                     width: int = 400, height: int = 250, colors: dict | None = None,
                     subtitle: str = ""):
    """A per-layer angle (`mirror_angle`, `bp_angle`, ...) over epochs for every run: colour
    by run (`color`; `colors` as in `learning_curves`), dash by layer, and a legend entry per
    layer drawn as its dash, in a visible stroke (not one dot for all); the 90-degree line;
    `subtitle` and runs drawn exactly under another under the title."""
    ds = _with_run_dim(history)
    every = history_frame(ds, name, dims=("epoch", "layer"))
    df = every.dropna(subset=[name])
    color = color or _default_color(ds)
    under = coinciding_note(ds, df, name, color, ["epoch", "layer"])
    # The dash legend's symbols are strokes in the layer's dash. Its lines are a layer of their
    # own: drawn with filled points (`point=`), vega-lite makes the legend's stroke transparent.
    dash = alt.StrokeDash("layer:O", title="layer l (last = output)", legend=alt.Legend(
        symbolType="stroke", symbolStrokeColor="black", symbolStrokeWidth=2, symbolSize=300))
    base = alt.Chart(df).encode(
        x=_x_axis("epoch", every), y=alt.Y(f"{name}:Q", title=_wrapped(_label(ds, name), height),
                                           scale=alt.Scale(domain=[0, 180])),
        color=_color(ds, color, colors), detail="run:N",
        tooltip=_tooltip(ds, "run", "epoch", "layer", name))
    lines = alt.layer(base.mark_line().encode(strokeDash=dash),
                      base.mark_point(filled=True, size=14, opacity=1).encode(detail="layer:N"))
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(90))
    return alt.layer(lines, rule).properties(width=width, height=height,
                                             title=_title(title, subtitle, under))


def mirror_angle_curves(history: xr.Dataset, color: str | None = None, *, width: int = 400,
                        height: int = 250, colors: dict | None = None):
    """The angle between each factor B_l of a factorised F and W_l^T over epochs (weight
    mirroring drives it down): a line per run and layer, dashed by layer."""
    return per_layer_curves(history, "mirror_angle", "Weight mirroring: angle(B_l, W_l^T)",
                            color, width=width, height=height, colors=colors)


def f_alignment(history: xr.Dataset, color: str | None = None, *, steps: bool = False,
                width: int = 400, height: int = 250, colors: dict | None = None,
                subtitle: str = ""):
    """The angle between the network's end-to-end map and F over epochs, with the 90-degree
    line; coloured by `color` (default: "sign" if it varies across runs, else "rule";
    `colors` as in `learning_curves`); `subtitle` added under the title."""
    ds = _with_run_dim(history)
    if color is None:
        color = "sign" if "sign" in run_settings(ds, varying_only=True) else "rule"
    chart, note, _, under = _curve(ds, "step_f_angle" if steps else "f_angle", color, "run",
                                   width, height, scale=alt.Scale(domain=[0, 180]),
                                   colors=colors)
    ref = pd.DataFrame({"y": [90.0], "text": ["90 degrees: orthogonal"]})
    rule = alt.Chart(ref).mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    text = alt.Chart(ref).mark_text(align="right", baseline="top", dy=3, color="gray").encode(
        y="y:Q", x=alt.value(width - 4), text="text:N")
    return alt.layer(chart, rule, text).properties(title=_title(
        "Alignment of the network with F", "above 90: anti-aligned (x + F e); below: aligned "
        "(x - F e)", note, subtitle, under))
