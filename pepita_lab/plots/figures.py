"""The standard figures of one or more runs, written to files (`run_figures`, used by
`pepita-lab figures`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from .activations import activation_distribution, activation_heatmap, modulated_inputs
from .alignment import bp_alignment, f_alignment
from .common import _with_run_dim, run_settings, save_chart
from .curves import learning_curves
from .summaries import accuracy_map


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
