"""Charts of the activation snapshots, PEPITA's signal h_l - h_l^err: a unit x sample heatmap
(`activation_heatmap`), its histogram per epoch (`activation_distribution`), its mean over
training (`activation_summary`), and the clean and modulated inputs (`modulated_inputs`); units
and pixels are averaged in blocks to fit MAX_ROWS.
"""

from __future__ import annotations

import math
import re

import altair as alt
import numpy as np
import pandas as pd
import xarray as xr

from .common import MAX_ROWS, _title, _with_run_dim


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
