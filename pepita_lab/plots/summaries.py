"""Charts of final values across runs: the accuracy map over two settings (`accuracy_map`), a
metric against one setting (`final_vs_setting`), a sweep's best points, the slowness fits and
the cost of a step per rule (`cost_chart`).
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import xarray as xr

from .common import _label, _title, _with_run_dim, run_settings


def _final(ds: xr.Dataset, name: str) -> np.ndarray:
    """`name` at each run's last recorded epoch (padded epochs have no learning rate)."""
    values = ds[name].values
    recorded = (np.isfinite(ds["epoch_lr"].values) if "epoch_lr" in ds
                else np.ones(values.shape, bool))
    last = np.array([np.flatnonzero(r)[-1] if r.any() else -1 for r in recorded])
    return values[np.arange(len(last)), last]


def accuracy_map(history: xr.Dataset, x: str = "f_scale", y: str = "lr", metric="test_acc",
                 *, facet: str = "rule"):
    """Final `metric` over two run settings (mean over seeds and duplicates; one panel per
    `facet` value when it varies). A run whose final metric or test loss is NaN diverged: it is
    left out of the mean, and a cell where every run diverged is grey and says so."""
    ds = _with_run_dim(history)
    final = _final(ds, metric)
    diverged = ~np.isfinite(final)
    if "test_loss" in ds:
        diverged |= ~np.isfinite(_final(ds, "test_loss"))
    if "status" in ds.coords:  # runs stopped by the divergence check keep finite histories
        diverged |= ds["status"].values == "diverged"
    keys = [x, y] + ([facet] if facet in run_settings(ds, varying_only=True) else [])
    df = pd.DataFrame({**{k: ds[k].values for k in keys}, "diverged": diverged,
                       "value": np.where(diverged, np.nan, final)})
    g = df.groupby(keys, as_index=False).agg(value=("value", "mean"), runs=("value", "size"),
                                            n_diverged=("diverged", "sum"))
    g["all_diverged"] = g["value"].isna()
    pct = metric.endswith("_acc")
    g["text"] = [("diverged" if np.isnan(v) else f"{100 * v:.1f}" if pct else f"{v:.3g}")
                 for v in g["value"]]
    vmin, vmax = g["value"].min(), g["value"].max()
    g["dark"] = g["value"] > vmin + 0.6 * (vmax - vmin) if vmax > vmin else False
    enc = dict(x=alt.X(f"{x}:O", title=_label(ds, x), axis=alt.Axis(labelAngle=0)),
               y=alt.Y(f"{y}:O", title=_label(ds, y), sort="descending"))
    tips = [*keys, alt.Tooltip("value", format=".2%" if pct else ".4g"), "runs", "n_diverged"]
    cells = alt.Chart().mark_rect().encode(**enc, tooltip=tips, color=alt.Color(
        "value:Q", title=_label(ds, metric), scale=alt.Scale(scheme="blues"),
        legend=alt.Legend(format=".0%" if pct else alt.Undefined))
    ).transform_filter("!datum.all_diverged")
    grey = alt.Chart().mark_rect(color="lightgrey").encode(**enc, tooltip=tips).transform_filter(
        "datum.all_diverged")
    text = alt.Chart().mark_text(fontSize=10).encode(**enc, text="text:N", color=alt.condition(
        "datum.dark", alt.value("white"), alt.value("black")))
    chart = alt.layer(cells, grey, text, data=g).properties(width=alt.Step(52), height=alt.Step(26))
    if len(keys) == 3:
        chart = chart.facet(column=alt.Column(f"{facet}:N", title=_label(ds, facet)))
    return chart.properties(title=_title(
        f"Final {_label(ds, metric)}" + (" (%)" if pct else ""), "mean over seeds; grey: diverged"))


def best_points_chart(table: pd.DataFrame, metric: str = "test_acc"):
    """Bars of the best points of a sweep (`sweep.best_points`): mean final `metric` over
    seeds, with the std as an error bar."""
    keys = [c for c in table.columns if c not in ("mean", "std", "count")]
    df = table.assign(point=[", ".join(f"{k}={row[k]}" for k in keys)
                             for _, row in table.iterrows()],
                      lo=table["mean"] - table["std"].fillna(0),
                      hi=table["mean"] + table["std"].fillna(0))
    y = alt.Y("point:N", sort="-x", title=None)
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("mean:Q", title=f"final {metric} (mean over seeds)"), y=y,
        tooltip=["point", alt.Tooltip("mean", format=".4f"), alt.Tooltip("std", format=".4f"),
                 "count"])
    errors = alt.Chart(df).mark_rule().encode(x="lo:Q", x2="hi:Q", y=y)
    return (bars + errors).properties(width=360, title=_title("Best points of the sweep"))


def final_vs_setting(history: xr.Dataset, x: str = "f_scale", metric: str = "test_acc",
                     color: str = "rule"):
    """Final `metric` against one run setting (log axis), mean over seeds with every run as a
    point: e.g. final accuracy against F scale."""
    ds = _with_run_dim(history)
    status = ds["status"].values if "status" in ds.coords else np.full(ds.sizes["run"], "")
    df = pd.DataFrame({x: ds[x].values, color: ds[color].values if color in ds.coords else "",
                       "value": _final(ds, metric), "run": ds["run"].values.astype(str),
                       "status": status})
    base = alt.Chart(df).encode(x=alt.X(f"{x}:Q", scale=alt.Scale(type="log"),
                                        title=_label(ds, x)),
                                color=alt.Color(f"{color}:N", title=_label(ds, color)))
    points = base.mark_point(opacity=0.7, size=60).encode(
        y=alt.Y("value:Q", title=_label(ds, metric)),
        shape=alt.Shape("status:N", title="status"), tooltip=["run", x, "value", "status"])
    line = base.mark_line().encode(y="mean(value):Q")
    return (points + line).properties(width=400, height=250, title=_title(
        f"Final {_label(ds, metric)} against {_label(ds, x)}",
        "line: mean over seeds; a diverged run shows its last good epoch"))


def slowness_chart(fits: xr.Dataset, by: str = "rule"):
    """The slowness `s` of `acc(t) = a_max t / (s + t)` per run (`analysis.slowness`), as
    points per `by` with their mean: smaller is faster convergence."""
    df = pd.DataFrame({by: fits[by].values, "s": fits["slowness_s"].values,
                       "a_max": fits["slowness_a_max"].values,
                       "run": fits["run"].values.astype(str)}).dropna(subset=["s"])
    base = alt.Chart(df).encode(y=alt.Y(f"{by}:N", title=None))
    bars = base.mark_bar(opacity=0.4).encode(x=alt.X("mean(s):Q", title="slowness s (epochs)"))
    dots = base.mark_point().encode(x="s:Q", tooltip=["run", alt.Tooltip("s", format=".3g"),
                                                      alt.Tooltip("a_max", format=".4f")])
    return (bars + dots).properties(width=360, title=_title(
        "Slowness per rule", "fit of acc(t) = a_max t / (s + t) before the first lr decay"))


def cost_chart(cost_df: pd.DataFrame, *, width: int = 260):
    """Bars per rule of the modelled multiply-accumulates and activation memory of one step,
    and the measured step time when `cost_df` (see `analysis.cost_table`) has a step_ms column."""
    panels = (("macs", "multiply-accumulates per step (model)", "~s"),
              ("activation_kib", "activation memory per step (KiB, model)", ",.0f"),
              ("step_ms", "measured time per step (ms)", ".3g"))
    charts = []
    for col, title, fmt in panels:
        if col not in cost_df or not cost_df[col].notna().any():
            continue
        bars = alt.Chart(cost_df).mark_bar().encode(
            y=alt.Y("rule:N", sort=list(cost_df["rule"]), title=None),
            x=alt.X(f"{col}:Q", title=title, axis=alt.Axis(format=fmt)),
            color=alt.Color("rule:N", legend=None),
            tooltip=[c for c in cost_df.columns]).properties(width=width)
        charts.append(bars + bars.mark_text(align="left", dx=3).encode(
            text=alt.Text(f"{col}:Q", format=fmt), color=alt.value("black")))
    return alt.hconcat(*charts).properties(title="Cost of one training step per rule")
