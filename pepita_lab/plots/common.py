"""What every chart of `pepita_lab.plots` shares: the limits and labels (MAX_ROWS, EMBED_OPTIONS,
LABELS), the tidy frame of a history (`history_frame`, `run_settings`), thinning epochs to fit
altair's row limit, colours (a run's colour picked by the run, `run_colors`), tooltips, titles,
the x axis, the accuracy zoom, the note on lines drawn one under another (`coinciding`), and
`save_chart`. No torch.
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
    "weight_mirroring": "weight mirroring",
}
# Forward-Forward's training loss is not a cross-entropy of the output: what each hidden layer
# descends (the logistic loss of its goodness on positive and negative data), summed over the
# layers (rules/forward_forward.py).
FF_LABELS = {"train_loss": "train loss: goodness logistic loss summed over layers (nats)"}
# Tableau 10, vega's own nominal colours. A chart's colours are given value by value
# (`run_colors`), never left to vega, which picks them by a value's place among those in that
# one chart: a run would change colour between two charts that show different runs.
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac")
# Each rule its own colour wherever runs are coloured by rule.
RULE_COLORS = {"pepita": PALETTE[0], "bp": PALETTE[1], "fa": PALETTE[2], "dfa": PALETTE[3],
               "drtp": PALETTE[4], "ff": PALETTE[6]}
BOOLEAN_SETTINGS = ("weight_mirroring", "normalize")  # 0/1 coordinates, said as off/on


def _label(ds: xr.Dataset, name: str) -> str:
    base = name.removeprefix("step_")
    if base in FF_LABELS and "rule" in ds.coords and set(np.ravel(ds["rule"].values)) == {"ff"}:
        return FF_LABELS[base]
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
        ds = ds.assign_coords(run=_unique_ids(ids))
    sub = ds[names]
    order = ["run"] + [d for d in dims if d in sub.dims]
    return sub.to_dataframe(dim_order=order).reset_index()


def _unique_ids(ids: list[str]) -> list[str]:
    """Run ids made unique as `history_frame` does: "id (2)" for the second "id"."""
    return [f"{r} ({ids[:i].count(r) + 1})" if ids.count(r) > 1 else r for i, r in enumerate(ids)]


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


def _sentence(text: str) -> str:
    """`text` with its first letter upper-cased (str.capitalize lowers the rest: W_l -> w_l)."""
    return text[:1].upper() + text[1:]


def run_colors(values, fixed: dict | None = None) -> dict[str, str]:
    """A colour for each value (a run's name, a rule...): those in `fixed` keep theirs, the
    others take the palette's unused colours in the order given (cycling past ten). Pass the
    result of all the runs shown to every chart's `colors`, and a run has one colour in all."""
    fixed = dict(fixed or {})
    values = list(dict.fromkeys(str(v) for v in values))
    free = [c for c in PALETTE if c not in fixed.values()] or list(PALETTE)
    others = [v for v in values if v not in fixed]
    return {v: fixed[v] if v in fixed else free[others.index(v) % len(free)] for v in values}


def _color(ds: xr.Dataset, name: str | None, colors: dict | None = None) -> alt.Color:
    """The colour encoding of run setting `name`. A name (nominal) has its colours given value
    by value: `colors` (value -> colour) where it has them, by rule (`RULE_COLORS`) for
    "rule", the rest in the runs' order (`run_colors`); so the same run or rule has the same
    colour in every chart, whichever other runs a chart shows."""
    name = name or "run"
    if name not in ds.coords:
        raise ValueError(f"color={name!r} is not a run setting; choose from "
                         f"{', '.join(['run', *run_settings(ds)])}")
    legend = alt.Legend(labelLimit=LEGEND_LABEL_LIMIT)
    if np.issubdtype(ds[name].dtype, np.number):  # ordered: lr, f_scale, sign, seed...
        return alt.Color(f"{name}:O", title=_label(ds, name), scale=alt.Scale(scheme="viridis"),
                         legend=legend)
    values = [str(v) for v in np.ravel(ds[name].values)]
    domain = list(dict.fromkeys(_unique_ids(values) if name == "run" else values))
    given = {str(k): v for k, v in (colors or {}).items() if str(k) in domain}
    fixed = {**(RULE_COLORS if name == "rule" else {}), **given}
    palette = run_colors(domain, fixed)
    return alt.Color(f"{name}:N", title=_label(ds, name), legend=legend,
                     scale=alt.Scale(domain=domain, range=[palette[v] for v in domain]))


def coinciding(df: pd.DataFrame, y: str, key: str, over, *, log: bool = False,
               tol: float = 2e-3) -> list[list]:
    """Groups of `key` values (runs, rules, settings) whose `y` is the same at every point of
    `over` (the x axis, and the layer or panel columns), within `tol` of the values' span (of
    their log10 with `log`): lines a chart draws exactly one under another. Each group in
    order of first appearance; values alone left out."""
    d = df.dropna(subset=[y])
    v = np.log10(d[y].where(d[y] > 0)) if log else d[y].astype(float)
    d = d.assign(_v=v).dropna(subset=["_v"])
    if d.empty:
        return []
    atol = max(tol * float(d["_v"].max() - d["_v"].min()), 1e-12)
    series = {k: g.set_index(list(over))["_v"].sort_index() for k, g in d.groupby(key, sort=False)}
    groups: list[list] = []
    for k, s in series.items():
        same = next((g for g in groups if series[g[0]].index.equals(s.index) and np.allclose(
            series[g[0]].to_numpy(), s.to_numpy(), rtol=0, atol=atol)), None)
        if same is None:
            groups.append([k])
        else:
            same.append(k)
    return [g for g in groups if len(g) > 1]


def coinciding_note(ds: xr.Dataset | None, df: pd.DataFrame, y: str, key: str, over, *,
                    facet: str | None = None, log: bool = False) -> str:
    """'F scale 0.05 coincides with 0.3' for the lines of `coinciding` (by run where runs share
    a `key` value; groups joined by "; "), per panel of `facet` where panels differ ("conv: bp
    coincides with fa. 1x1024: ..."); "" if none."""
    if key not in df or (df.groupby(key)["run"].nunique().max() > 1 if "run" in df else False):
        key = "run"
    panels = [(None, df)] if facet is None else list(df.groupby(facet, sort=False))
    found = {p: coinciding(d, y, key, over, log=log) for p, d in panels}
    said = {}
    for panel, groups in found.items():
        if groups:
            said.setdefault(_groups_words(ds, key, groups), []).append(str(panel))
    if len(said) == 1 and len(next(iter(said.values()))) == len(panels):
        return next(iter(said))
    return ". ".join(f"{', '.join(p)}: {words}" for words, p in said.items())


def _groups_words(ds: xr.Dataset | None, key: str, groups: list[list]) -> str:
    def say(v):
        if key in BOOLEAN_SETTINGS:
            return "on" if float(v) else "off"
        if isinstance(v, (float, np.floating)):
            return f"{v:g}"
        numbered = re.match(r"#\d+ ", str(v))  # the explorer's run names: their number says it
        return numbered.group(0).strip() if numbered else str(v)

    prefix = "" if key in ("run", "label", "rule", "step") or ds is None else _label(ds, key) + " "
    out = []
    for g in groups:
        *under, top = [say(v) for v in g]
        verb = "coincides" if len(under) == 1 else "coincide"
        first = ", ".join(under[:-1]) + " and " + under[-1] if len(under) > 1 else under[0]
        out.append(f"{prefix}{first} {verb} with {top}")
    return "; ".join(out)


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
    # a run diverged within an epoch ends at a fraction of it: the axis runs to that epoch's
    # end, so a cross at step 4 of 16 sits a quarter of the way in, not at the last tick
    last = max(float(values[-1]), float(math.ceil(end)) if math.isfinite(end) else end)
    if last > values[-1] and len(values) <= 12:
        axis = alt.Axis(values=[*values.tolist(), int(last)], format="d")
    return alt.X(f"{x}:Q", title=x, axis=axis, scale=alt.Scale(domain=[float(values[0]), last]))


def _wrapped(text: str, height: int, px_per_char: float = 6.5) -> str | list[str]:
    """An axis title broken into lines no longer than the axis (`height` px)."""
    limit, lines = max(10, int(height / px_per_char)), [""]
    for word in text.split(" "):
        if lines[-1] and len(lines[-1]) + 1 + len(word) > limit:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return lines if len(lines) > 1 else text


def _accuracy_zoom(df: pd.DataFrame, name: str, x: str):
    """The y scale and axis of an accuracy zoomed to the trained nets, the rows drawn, and a
    note on those left out. The untrained net (epoch 0) sits near chance: an axis from there
    to 100 % squeezes 96.5 % and 97.7 % into one line. So each run's epoch 0 is left out when
    the run has later values (a run diverged in its first epoch keeps it), once the kept values
    span two epochs at least. Rows outside the zoomed axis, below it (epoch 0 of a run that
    learned) or above it (epoch 0 of a run that ended below its untrained accuracy), are not
    drawn, so the chart keeps its declared size; the note gives their values."""
    finite = df[np.isfinite(df[name])]
    trained = finite[x] > 0
    has_trained = trained.groupby(finite["run"]).transform("any")
    kept = finite[trained | ~has_trained]
    if kept[x].nunique() < 2:  # one trained epoch: nothing to zoom into yet
        return alt.Scale(domain=[0, 1]), alt.Axis(format=".0%"), df, ""
    lo, hi = float(kept[name].min()), float(kept[name].max())
    pad = max(0.15 * (hi - lo), 0.01)
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    notes = [_left_out(df[df[name] < lo], name, x, "below"),
             _left_out(df[df[name] > hi], name, x, "above")]
    notes = [n for n in notes if n]
    note = f"axis zoomed to {lo:.1%}-{hi:.1%}; " + "; ".join(notes) if notes else ""
    axis = alt.Axis(format=".1%" if hi - lo < 0.1 else ".0%")
    shown = df[(df[name] >= lo) & (df[name] <= hi)]
    return alt.Scale(domain=[lo, hi], nice=False, zero=False), axis, shown, note


def _left_out(rows: pd.DataFrame, name: str, x: str, where: str) -> str:
    """'epoch 0 (9.8%) below, not drawn' for the rows of a zoomed axis left out."""
    if not len(rows):
        return ""
    which = f"{x} 0" if (rows[x] == 0).all() else f"{len(rows)} points"
    v0, v1 = rows[name].min(), rows[name].max()
    return f"{which} ({v0:.1%}" + (f"-{v1:.1%}" if v1 > v0 else "") + f") {where}, not drawn"


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
