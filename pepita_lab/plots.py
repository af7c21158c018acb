"""Altair charts of run records: xarray datasets (or pandas frames) in, a chart out. No torch.

Each function takes a history or activations dataset as `records.py` writes them (one run or
several concatenated along `run`, whose settings are coordinates along `run`) and returns an
altair chart; `save_chart` writes one as PNG, SVG or HTML, and `run_figures` writes the standard
set. Charts carry their data inline, so every dataset stays under altair's 5000-row limit by
aggregating (binning units, pooling pixels, thinning epochs), never by raising the limit.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import xarray as xr

MAX_ROWS = 5000  # altair's default limit on inline rows per dataset
# How charts are drawn in the lab (vega-embed options of altair's JupyterChart): on a canvas.
# Each chart widget runs its own copy of vega, whose SVG gradient ids restart at gradient_0 in
# every chart, so an SVG colour legend can show the gradient of another chart on the page
# (seen: a grey image with a red-blue legend). A canvas has no ids to clash.
EMBED_OPTIONS = {"renderer": "canvas"}
# Legend labels are cut at 160 px by default, which hides the end of a run's name (its lr, its
# widths); 400 px keeps every name the lab makes whole.
LEGEND_LABEL_LIMIT = 400
KEY_SETTINGS = ("rule", "dataset", "hidden", "f_scale", "lr", "seed")  # always in tooltips
LABELS = {
    "test_acc": "test accuracy", "train_acc": "train accuracy", "probe_acc": "probe accuracy",
    "test_loss": "test loss (nats)", "train_loss": "train loss (nats)",
    "probe_loss": "probe loss (nats)", "epoch_time": "epoch time (s)", "epoch_lr": "learning rate",
    "f_angle": "angle between W_L...W_1 and F (degrees)",
    "bp_cosine": "cosine(rule's dW_l, BP gradient)",
    "bp_angle": "angle(rule's dW_l, BP gradient) (degrees)",
    "weight_norm": "Frobenius norm of W_l", "update_norm": "Frobenius norm of dW_l",
    "feedback_angle": "angle(B_l, forward map) (degrees)",
    "mirror_angle": "angle(B_l, W_l^T) (degrees)",
    "implied_angle": "angle(PEPITA's implied feedback, BP's) (degrees)",
    "f_scale": "F scale", "lr": "learning rate", "batch_size": "batch size",
    "keep_prob": "dropout keep probability", "output_error": "output error",
    "label": "run",  # the explorer's run names
}


def _label(ds: xr.Dataset, name: str) -> str:
    base = name.removeprefix("step_")
    if base in LABELS:
        return LABELS[base]
    units = ds[name].attrs.get("units", "") if name in ds.variables else ""
    return f"{name} ({units})" if units not in ("", "1") else name


def _with_run_dim(ds: xr.Dataset) -> xr.Dataset:
    """`ds` with a `run` dimension, even if one run was selected with `isel(run=0)`."""
    if "run" in ds.dims:
        return ds
    scalars = [c for c, v in ds.coords.items() if v.ndim == 0 and c != "run"]
    ds = ds.expand_dims("run") if "run" in ds.coords else ds.expand_dims(run=["run"])
    return ds.assign_coords({c: ("run", [ds[c].item()]) for c in scalars})


def run_settings(ds: xr.Dataset, varying_only: bool = False) -> list[str]:
    """The run coordinates (hyperparameters) of `ds`; with `varying_only`, those that differ."""
    ds = _with_run_dim(ds)
    names = [c for c, v in ds.coords.items() if v.dims == ("run",) and c != "run"]
    return [c for c in names if not varying_only or pd.Series(ds[c].values).nunique() > 1]


def history_frame(history: xr.Dataset, variables, dims=("epoch",)) -> pd.DataFrame:
    """A tidy frame of `variables` (a name or a list): one row per run and `dims` index, one
    column per variable, plus `run` (made unique: "id (2)" for a repeated id), the `dims` and
    every run setting as columns."""
    names = [variables] if isinstance(variables, str) else list(variables)
    ds = _with_run_dim(history)
    for name in names:
        if name not in ds.data_vars:
            raise KeyError(f"{name!r} is not in the dataset; it has: {', '.join(ds.data_vars)}")
        extra = set(ds[name].dims) - {"run", *dims}
        if extra:
            raise ValueError(f"{name!r} is over {ds[name].dims}: pass dims that cover "
                             f"{sorted(extra)}")
    ids = [str(r) for r in ds["run"].values]
    if len(set(ids)) < len(ids):  # run ids leave out some settings (sign...): keep runs apart
        ds = ds.assign_coords(run=[f"{r} ({ids[:i].count(r) + 1})" if ids.count(r) > 1 else r
                                   for i, r in enumerate(ids)])
    sub = ds[names]
    order = ["run"] + [d for d in dims if d in sub.dims]
    return sub.to_dataframe(dim_order=order).reset_index()


def _thin(df: pd.DataFrame, x: str, max_rows: int = MAX_ROWS) -> tuple[pd.DataFrame, int]:
    """Keep every k-th value of `x` (and the last) until the frame has at most `max_rows`."""
    values, k = np.sort(df[x].unique()), 1
    while len(df) > max_rows and k < len(values):
        k += 1
        kept = set(values[::k]) | {values[-1]}
        df = df[df[x].isin(kept)]
    return df, k


def _title(text: str, *subtitle: str) -> alt.TitleParams:
    return alt.TitleParams(text, subtitle=[s for s in subtitle if s] or alt.Undefined)


def _color(ds: xr.Dataset, name: str | None) -> alt.Color:
    name = name or "run"
    if name not in ds.coords:
        raise ValueError(f"color={name!r} is not a run setting; choose from "
                         f"{', '.join(['run', *run_settings(ds)])}")
    legend = alt.Legend(labelLimit=LEGEND_LABEL_LIMIT)
    if np.issubdtype(ds[name].dtype, np.number):  # ordered: lr, f_scale, sign, seed...
        return alt.Color(f"{name}:O", title=_label(ds, name), scale=alt.Scale(scheme="viridis"),
                         legend=legend)
    return alt.Color(f"{name}:N", title=_label(ds, name), legend=legend)


def _default_color(ds: xr.Dataset) -> str:
    varying = run_settings(ds, varying_only=True)
    return next((c for c in ("rule", "sign", "f_scale", "lr", "output_error", "hidden", "dataset",
                             "seed") if c in varying), varying[0] if varying else "rule")


def _tooltip(ds: xr.Dataset, *fields: str) -> list:
    extra = run_settings(ds, varying_only=True) + [c for c in KEY_SETTINGS if c in ds.coords]
    tips = []
    for f in dict.fromkeys([*fields, *extra]):  # ordered, no duplicates
        fmt = ".2%" if f.endswith("_acc") else (".4g" if f in ds.data_vars else alt.Undefined)
        tips.append(alt.Tooltip(f, format=fmt))
    return tips


def _x_axis(x: str, df: pd.DataFrame, end: float = -math.inf) -> alt.X:
    """The x axis over all of `df`'s values (even where a zoomed chart draws fewer), to `end`
    at least."""
    values = np.sort(df[x].unique())  # label only integers when there are few epochs
    axis = alt.Axis(values=values.tolist(), format="d") if len(values) <= 12 else alt.Undefined
    if not len(values):
        return alt.X(f"{x}:Q", title=x, axis=axis)
    domain = [float(values[0]), max(float(values[-1]), end)]
    return alt.X(f"{x}:Q", title=x, axis=axis, scale=alt.Scale(domain=domain))


def _accuracy_zoom(df: pd.DataFrame, name: str, x: str):
    """The y scale and axis of an accuracy zoomed to the trained nets, the rows drawn, and a
    note on those left out. The untrained net (epoch 0) sits near chance: an axis from there
    to 100 % squeezes 96.5 % and 97.7 % into one line. So each run's epoch 0 is left out when
    the run has later values (a run diverged in its first epoch keeps it), once the kept values
    span two epochs at least."""
    finite = df[np.isfinite(df[name])]
    trained = finite[x] > 0
    has_trained = trained.groupby(finite["run"]).transform("any")
    kept = finite[trained | ~has_trained]
    if kept[x].nunique() < 2:  # one trained epoch: nothing to zoom into yet
        return alt.Scale(domain=[0, 1]), alt.Axis(format=".0%"), df, ""
    lo, hi = float(kept[name].min()), float(kept[name].max())
    pad = max(0.15 * (hi - lo), 0.01)
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    below = df[df[name] < lo]
    note = ""
    if len(below):
        where = f"{x} 0" if (below[x] == 0).all() else f"{len(below)} points"
        v0, v1 = below[name].min(), below[name].max()
        note = (f"axis zoomed to {lo:.1%}-{hi:.1%}; {where} ({v0:.1%}"
                + (f"-{v1:.1%}" if v1 > v0 else "") + ") below, not drawn")
    axis = alt.Axis(format=".1%" if hi - lo < 0.1 else ".0%")
    return alt.Scale(domain=[lo, hi], nice=False, zero=False), axis, df[df[name] >= lo], note


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
           scale=alt.Undefined, zoom: bool = True):
    """Lines of `name` over epoch (or step) for every run, thinned to fit, and notes on the
    thinning and the zoom (accuracies: see `_accuracy_zoom`)."""
    x = "step" if "step" in ds[name].dims else "epoch"
    df, k = _thin(history_frame(ds, name, dims=(x,)).dropna(subset=[name]), x)
    axis, zoomed, shown = alt.Undefined, "", df
    if name.endswith("_acc"):
        scale, axis, shown, zoomed = (_accuracy_zoom(df, name, x) if zoom else
                                      (scale, alt.Axis(format=".0%"), df, ""))
    color = _color(ds, color)
    diverged, end = _divergence_marks(ds, shown, name, x, color)
    chart = alt.Chart(shown).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=_x_axis(x, df, end), y=alt.Y(f"{name}:Q", title=_label(ds, name), axis=axis,
                                        scale=scale),
        color=color, detail=f"{detail}:N", tooltip=_tooltip(ds, "run", x, name),
    ).properties(width=width, height=height)
    if diverged is not None:
        chart = alt.layer(chart, diverged)
    return chart, (f"one {x} in {k} shown" if k > 1 else ""), zoomed


def learning_curves(history: xr.Dataset, metric="test_acc", color: str | None = "rule",
                    detail: str = "run", *, width: int | None = None, height: int = 250,
                    zoom: bool = True):
    """`metric` (e.g. test_acc, test_loss, or a step_* variable) over epochs for every run,
    coloured by a run setting (None: the first that varies); a list of metrics gives a grid of
    two columns (300 px wide each unless `width` says otherwise, so it fits a notebook).
    Accuracies are zoomed to the trained epochs (`zoom=False`: the whole 0-100 % axis)."""
    ds = _with_run_dim(history)
    color = color or _default_color(ds)
    if not isinstance(metric, str):
        charts = [learning_curves(ds, m, color, detail, width=width or 300, height=height,
                                  zoom=zoom) for m in metric]
        return alt.concat(*charts, columns=2)
    chart, *notes = _curve(ds, metric, color, detail, width or 400, height, zoom=zoom)
    return chart.properties(title=_title(_label(ds, metric).capitalize(), *notes))


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


def _sentence(text: str) -> str:
    """`text` with its first letter upper-cased (str.capitalize lowers the rest: W_l -> w_l)."""
    return text[:1].upper() + text[1:]


def depth_curves(history: xr.Dataset, metric: str = "test_acc", color: str = "variant", *,
                 width: int = 260, height: int = 220):
    """`metric` over epochs, one panel per depth (hidden layers), a line per run coloured by
    `color` (a run setting; the deeper-net comparison's `variant`); accuracies zoomed to the
    trained epochs."""
    ds = _with_run_dim(history)
    df = history_frame(ds, metric).dropna(subset=[metric])
    shown, scale, axis = df, alt.Undefined, alt.Undefined
    if metric.endswith("_acc"):
        scale, axis, shown, _ = _accuracy_zoom(df, metric, "epoch")
    chart = alt.Chart(shown).mark_line(point=alt.OverlayMarkDef(size=14)).encode(
        x=_x_axis("epoch", df), y=alt.Y(f"{metric}:Q", title=_label(ds, metric), axis=axis,
                                         scale=scale),
        color=_color(ds, color), detail="run:N",
        tooltip=_tooltip(ds, "run", "epoch", metric)).properties(width=width, height=height)
    return chart.facet(column=alt.Column("depth:O", title="hidden layers")).properties(
        title=_title(_sentence(_label(ds, metric)) + " by depth"))


def layer_angles(history: xr.Dataset, name: str, color: str = "variant", *, width: int = 200,
                 height: int = 160):
    """A per-layer angle (`mirror_angle`, `implied_angle`, `bp_angle`, `feedback_angle`) over
    epochs: rows by depth, columns by layer, a line per run coloured by `color`; None if no
    run has a value."""
    ds = _with_run_dim(history)
    if ds.sizes.get("run", 0) == 0 or name not in ds:
        return None
    df = history_frame(ds, name, dims=("epoch", "layer")).dropna(subset=[name])
    if df.empty:
        return None
    color = color if color in ds.coords else _default_color(ds)
    lines = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=_x_axis("epoch", df), y=alt.Y(f"{name}:Q", title=_label(ds, name),
                                         scale=alt.Scale(domain=[0, 180])),
        color=_color(ds, color), detail="run:N", tooltip=_tooltip(ds, "run", "epoch", "layer",
                                                                   name))
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(90))
    chart = alt.layer(lines, rule, data=df).properties(width=width, height=height)
    return chart.facet(row=alt.Row("depth:O", title="hidden layers"),
                       column=alt.Column("layer:O", title="layer l")).properties(
        title=_title(_sentence(_label(ds, name))))


def mirror_angle_curves(history: xr.Dataset, color: str | None = None, *, width: int = 400,
                        height: int = 250):
    """The angle between each factor B_l of a factorised F and W_l^T over epochs (weight
    mirroring drives it down): a line per run and layer, dashed by layer."""
    ds = _with_run_dim(history)
    df = history_frame(ds, "mirror_angle", dims=("epoch", "layer")).dropna(
        subset=["mirror_angle"])
    color = _color(ds, color or _default_color(ds))
    lines = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=14)).encode(
        x=_x_axis("epoch", df), y=alt.Y("mirror_angle:Q", title=_label(ds, "mirror_angle"),
                                        scale=alt.Scale(domain=[0, 180])),
        color=color, strokeDash=alt.StrokeDash("layer:O", title="layer l"),
        detail="run:N", tooltip=_tooltip(ds, "run", "epoch", "layer", "mirror_angle"))
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.datum(90))
    return alt.layer(lines, rule).properties(width=width, height=height, title=_title(
        "Weight mirroring: angle(B_l, W_l^T)"))


def f_alignment(history: xr.Dataset, color: str | None = None, *, steps: bool = False,
                width: int = 400, height: int = 250):
    """The angle between the network's end-to-end map and F over epochs, with the 90-degree
    line; coloured by `color` (default: "sign" if it varies across runs, else "rule")."""
    ds = _with_run_dim(history)
    if color is None:
        color = "sign" if "sign" in run_settings(ds, varying_only=True) else "rule"
    chart, note, _ = _curve(ds, "step_f_angle" if steps else "f_angle", color, "run", width,
                            height, scale=alt.Scale(domain=[0, 180]))
    ref = pd.DataFrame({"y": [90.0], "text": ["90 degrees: orthogonal"]})
    rule = alt.Chart(ref).mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    text = alt.Chart(ref).mark_text(align="right", baseline="top", dy=3, color="gray").encode(
        y="y:Q", x=alt.value(width - 4), text="text:N")
    return alt.layer(chart, rule, text).properties(title=_title(
        "Alignment of the network with F", "above 90: anti-aligned (x + F e); below: aligned "
        "(x - F e)", note))


def _pick(ds: xr.Dataset, name: str, run, epoch) -> xr.DataArray:
    """`name` of one run (position or run id), at one snapshot epoch (negative: position from
    the last, e.g. -1; else the epoch number) or all of them (None); padded epochs dropped."""
    ds = _with_run_dim(ds)
    if isinstance(run, str):
        matches = np.flatnonzero(ds["run"].values == run)
        if len(matches) != 1:
            raise ValueError(f"run={run!r} is {'ambiguous' if len(matches) else 'unknown'}: "
                             f"pass its position in {list(ds['run'].values)}")
        run = int(matches[0])
    da = ds[name].isel(run=run)
    if "epoch" not in da.dims:
        return da
    da = da.dropna("epoch", how="all")
    if epoch is None:
        return da
    if epoch < 0:
        return da.isel(epoch=epoch)
    if epoch not in da.epoch.values:
        raise KeyError(f"epoch {epoch} has no snapshot; snapshots: {list(da.epoch.values)}")
    return da.sel(epoch=epoch)


def _block_mean(a: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """Mean of `a` over blocks of shape `block` (edge blocks may be partial)."""
    n_blocks = [math.ceil(n / b) for n, b in zip(a.shape, block)]
    padded = np.full([m * b for m, b in zip(n_blocks, block)], np.nan)
    padded[tuple(slice(0, n) for n in a.shape)] = a
    split = padded.reshape([d for m, b in zip(n_blocks, block) for d in (m, b)])
    return np.nanmean(split, axis=tuple(range(1, 2 * a.ndim, 2)))


def _units(da: xr.DataArray) -> np.ndarray:
    a = da.values.reshape(-1, da.shape[-1])
    return a[:, ~np.all(np.isnan(a), axis=0)]  # drop units padded in by concat across widths


def activation_heatmap(activations: xr.Dataset, layer: int = 1, epoch: int = -1, run=0,
                       max_rows: int = MAX_ROWS, *, width: int = 400):
    """PEPITA's signal h_l - h_l^err of one snapshot as a unit x probe-sample heatmap, on a
    diverging scale centred on 0; consecutive units are averaged in bins to fit `max_rows`."""
    da = _pick(activations, f"h_diff_{layer}", run, epoch)  # (sample, unit_l)
    a = _units(da)
    s, n = a.shape
    k = math.ceil(n / max(max_rows // s, 1))
    binned = _block_mean(a, (1, k))  # (sample, nb)
    nb = binned.shape[1]
    labels = [f"{i} (label {y})" for i, y in zip(da["sample"].values, da["label"].values)]
    starts = np.arange(nb) * k
    df = pd.DataFrame({"sample": np.repeat(labels, nb), "unit": np.tile(starts, s),
                       "unit_end": np.tile(np.minimum(starts + k, n), s), "value": binned.ravel()})
    m = float(np.nanmax(np.abs(binned))) or 1.0
    chart = alt.Chart(df).mark_rect().encode(
        x=alt.X("unit:Q", title=f"hidden unit of layer {layer}", scale=alt.Scale(domain=[0, n])),
        x2="unit_end", y=alt.Y("sample:N", sort=labels, title="probe test sample"),
        color=alt.Color("value:Q", title="h - h_err",
                        scale=alt.Scale(scheme="redblue", reverse=True, domain=[-m, m])),
        tooltip=["sample", "unit", "unit_end", alt.Tooltip("value", format=".3g")],
    ).properties(width=width, height=14 * s)
    return chart.properties(title=_title(
        f"h_l - h_l^err, layer {layer}, epoch {int(da.epoch)}", str(da.run.values),
        f"units binned by {k} (mean)" if k > 1 else ""))


def activation_distribution(activations: xr.Dataset, layer: int = 1, run=0, bins: int = 40,
                            *, width: int = 400, height: int = 220):
    """Histogram of h_l - h_l^err per snapshot epoch (common bins; numpy, bins x epochs rows).
    Exact zeros (units off in both passes) are left out; their share is in the tooltip."""
    da = _pick(activations, f"h_diff_{layer}", run, None)  # (epoch, sample, unit_l)
    values = [_units(da.sel(epoch=e)).ravel() for e in da.epoch.values]
    nonzero = np.concatenate([v[np.isfinite(v) & (v != 0)] for v in values])
    edges = np.histogram_bin_edges(nonzero if nonzero.size else [-1, 1], bins=bins)
    frames = []
    for e, v in zip(da.epoch.values, values):
        v = v[np.isfinite(v)]
        counts, _ = np.histogram(v[v != 0], edges)
        frames.append(pd.DataFrame({
            "epoch": int(e), "start": edges[:-1], "end": edges[1:],
            "fraction": counts / max(v.size, 1),
            "zero_fraction": np.mean(v == 0) if v.size else 0.0}))
    df = pd.concat(frames, ignore_index=True)
    chart = alt.Chart(df).mark_line(interpolate="step-after").encode(
        x=alt.X("start:Q", title="h - h_err (bin start)"),
        y=alt.Y("fraction:Q", title="fraction of values", axis=alt.Axis(format="%")),
        color=alt.Color("epoch:O", scale=alt.Scale(scheme="viridis"), title="epoch"),
        tooltip=["epoch", alt.Tooltip("start", format=".3g"), alt.Tooltip("end", format=".3g"),
                 alt.Tooltip("fraction", format=".2%"), alt.Tooltip("zero_fraction", format=".1%")],
    ).properties(width=width, height=height)
    return chart.properties(title=_title(
        f"Distribution of h_l - h_l^err, layer {layer}", str(da.run.values),
        "exact zeros (unit off in both passes) left out"))


def modulated_inputs(activations: xr.Dataset, epoch: int = -1, run=0, n_samples: int = 6,
                     max_rows: int = MAX_ROWS, *, size: int = 80):
    """The clean probe inputs x, the modulated inputs x_err = x + sign F e of one snapshot and
    their difference, as pixel images (one row each). Colour images are shown as the channel
    mean; pixels are averaged in p x p blocks if n_samples images would exceed `max_rows`."""
    x_err = _pick(activations, "x_err", run, epoch)  # (sample, H, W, C)
    x = _pick(activations, "x", run, None)
    n = min(n_samples, x.sizes["sample"])
    clean, mod = x.values[:n].mean(-1), x_err.values[:n].mean(-1)  # channel mean: (n, H, W)
    H, W = clean.shape[1:]
    p = 1
    while n * math.ceil(H / p) * math.ceil(W / p) > max_rows:
        p += 1
    names = [f"{i}: label {y}" for i, y in zip(x["sample"].values[:n], x["label"].values[:n])]
    lo, hi = float(min(clean.min(), mod.min())), float(max(clean.max(), mod.max()))
    d = float(np.abs(mod - clean).max()) or 1.0
    grey = alt.Scale(scheme="greys", domain=[lo, hi])
    div = alt.Scale(scheme="redblue", reverse=True, domain=[-d, d])
    rows = []
    for img, title, legend, scale in (
            (clean, "x (clean input)", "x", grey), (mod, "x_err (modulated input)", "x_err", grey),
            (mod - clean, "x_err - x (= sign F e)", "x_err - x", div)):
        im = _block_mean(img, (1, p, p))
        h, w = im.shape[1:]
        df = pd.DataFrame({"sample": np.repeat(names, h * w), "value": im.ravel(),
                           "row": np.tile(np.repeat(np.arange(h), w), n),
                           "col": np.tile(np.arange(w), n * h)})
        rows.append(alt.Chart(df).mark_rect().encode(
            x=alt.X("col:O", axis=None), y=alt.Y("row:O", axis=None),
            color=alt.Color("value:Q", scale=scale, title=legend),
            tooltip=["sample", "row", "col", alt.Tooltip("value", format=".3g")],
        ).properties(width=size, height=max(8, round(size * h / w))).facet(
            column=alt.Column("sample:N", sort=names, title=None)).properties(title=title))
    return alt.vconcat(*rows).resolve_scale(color="independent").properties(title=_title(
        f"Modulated inputs, epoch {int(x_err.epoch)}", str(x_err.run.values),
        "channel mean" if x.sizes["channel"] > 1 else "",
        f"pixels averaged in {p}x{p} blocks" if p > 1 else ""))


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


def activation_summary(activations: xr.Dataset, color: str = "rule"):
    """Mean |h_l - h_l^err| per hidden layer over the snapshot epochs, one line per run: how
    large PEPITA's learning signal is, and how it changes as the net learns."""
    a = _with_run_dim(activations)
    rows = []
    for name in sorted(v for v in a.data_vars if re.fullmatch(r"h_diff_\d+", v)):
        unit = f"unit_{name[7:]}"
        mean_abs = np.abs(a[name]).mean(("sample", unit), skipna=True)  # (run, epoch)
        for r in range(a.sizes["run"]):
            for e, v in zip(a["epoch"].values, mean_abs.isel(run=r).values):
                rows.append({"run": str(a["run"].values[r]), "layer": int(name[7:]),
                             "epoch": int(e), "value": float(v),
                             color: str(a[color].values[r]) if color in a.coords else ""})
    df = pd.DataFrame(rows)
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch"), y=alt.Y("value:Q", title="mean |h - h_err|"),
        color=alt.Color(f"{color}:N"), detail="run:N", strokeDash="layer:N",
        tooltip=["run", "layer", "epoch", alt.Tooltip("value", format=".3g")]
    ).properties(width=400, height=250, title=_title(
        "Activation differences over training", "mean over probe samples and units"))


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


def save_chart(chart, path, *, scale_factor: float = 2) -> Path:
    """Write `chart` by the suffix of `path`: .png (at `scale_factor`), .svg, .html (with the
    JavaScript inlined, so it opens offline) or .json (the Vega-Lite spec), via vl-convert."""
    path = Path(path)
    options = {".png": {"scale_factor": scale_factor}, ".svg": {}, ".html": {"inline": True},
               ".json": {}}.get(path.suffix.lower())
    if options is None:
        raise ValueError(f"{path}: expected a .png, .svg, .html or .json file")
    path.parent.mkdir(parents=True, exist_ok=True)
    chart.save(str(path), **options)
    return path


def run_figures(history: xr.Dataset, activations: xr.Dataset | None, out_dir,
                formats=("png",)) -> list[Path]:
    """Write the standard figures of one or more runs into `out_dir`, one file per figure and
    format: learning curves, BP alignment, F alignment, the accuracy map of an F-scale x lr
    sweep, and per run (suffixed with its id when several) the activation heatmap and
    distribution per hidden layer and the modulated inputs. Returns the paths written."""
    h, out = _with_run_dim(history), Path(out_dir)
    charts = {"learning_curves": learning_curves(h, [m for m in (
        "test_acc", "train_acc", "test_loss", "train_loss") if m in h], color=None)}
    if "bp_cosine" in h:
        charts["bp_alignment"] = bp_alignment(h)
    if "f_angle" in h and np.isfinite(h["f_angle"].values).any():
        charts["f_alignment"] = f_alignment(h)
    if {"f_scale", "lr"} <= set(run_settings(h, varying_only=True)):
        charts["accuracy_map"] = accuracy_map(h)
    if activations is not None:
        a = _with_run_dim(activations)
        layers = sorted(int(v[7:]) for v in a.data_vars if re.fullmatch(r"h_diff_\d+", v))
        ids = [re.sub(r"[^\w.-]", "_", str(r)) for r in a["run"].values]
        for i, rid in enumerate(ids):
            tag = "" if len(ids) == 1 else f"_{rid}" if ids.count(rid) == 1 else f"_{i}_{rid}"
            for l in layers:
                if np.isfinite(a[f"h_diff_{l}"].isel(run=i).values).any():
                    charts[f"activation_heatmap_layer{l}{tag}"] = activation_heatmap(a, l, run=i)
                    charts[f"activation_distribution_layer{l}{tag}"] = activation_distribution(
                        a, l, run=i)
            charts[f"modulated_inputs{tag}"] = modulated_inputs(a, run=i)
    return [save_chart(chart, out / f"{name}.{fmt.lstrip('.')}")
            for name, chart in charts.items() for fmt in formats]
