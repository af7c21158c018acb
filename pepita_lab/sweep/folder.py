"""A sweep's folder: `sweep.json` (its spec), `points/<point id>.nc` (each finished point,
written atomically) and `sweep.nc` (the points assembled, swept fields as dimensions), and
the sweep dataset flattened and ranked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import xarray as xr

from ..config import ConfigError, RunConfig
from ..records import DamagedFileError, read_netcdf
from .spec import SweepSpec


SPEC_FILE, RESULT_FILE, POINTS_DIR = "sweep.json", "sweep.nc", "points"


def point_id(config: RunConfig) -> str:
    return hashlib.sha1(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:12]


def _read_spec(path: Path):
    """The sweep a folder's sweep.json describes; DamagedFileError naming it if it is not
    valid JSON (truncated, altered): such a folder is not written to."""
    try:
        return json.loads(path.read_text())
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedFileError(f"{path} is damaged (not valid JSON: {' '.join(str(err).split())})"
                               f"; restore it, or delete it to run the sweep in "
                               f"{path.parent} again (finished points of the same sweep are "
                               "kept)") from None


def _point_file(out: Path, config: RunConfig) -> Path:
    return out / POINTS_DIR / f"{point_id(config)}.nc"


def assemble(out: str | Path, spec: SweepSpec) -> xr.Dataset:
    """The sweep's points as one dataset: each point's longest history (its last rung), the
    swept fields and `seed` as dimensions for a grid (a `run` dimension for random points),
    `stopped_at_epoch` for points halving stopped early."""
    out = Path(out)
    histories = []
    for c in spec.points():
        rungs = list(spec.halving_epochs) + [c.epochs]
        done = [e for e in rungs if _point_file(out, c.replace(epochs=e)).exists()]
        if not done:
            continue
        h = read_netcdf(_point_file(out, c.replace(epochs=done[-1])))
        stopped = done[-1] if done[-1] < c.epochs else -1
        histories.append(h.assign_coords(stopped_at_epoch=("run", [stopped]),
                                         epochs=("run", [c.epochs])))
    if not histories:
        raise ConfigError(f"no finished points in {out}")
    ds = xr.concat(histories, dim="run", join="outer", coords="all", data_vars="all",
                   combine_attrs="drop_conflicts")
    ds.attrs["sweep"] = json.dumps(spec.to_dict())
    dims = spec.swept + ["seed"]
    if spec.n_random == 0 and len(histories) == len(spec.points()):
        ds = _grid_dims(ds, dims)
    return ds


def _grid_dims(ds: xr.Dataset, dims: list[str]) -> xr.Dataset:
    """Turn the `run` dimension of a complete grid into one dimension per swept field."""
    run_coords = [k for k, v in ds.coords.items() if v.dims == ("run",) and k != "run"]
    keep = [k for k in run_coords if k not in dims]
    ds = ds.reset_coords(keep)  # unstack carries variables, so settings travel as variables
    if len(dims) == 1:  # seeds only: `seed` replaces `run`
        return ds.swap_dims(run=dims[0]).drop_vars("run").set_coords(keep)
    return ds.set_index(run=dims).unstack("run").set_coords(keep)


def flatten(ds: xr.Dataset) -> xr.Dataset:
    """A sweep dataset with one `run` dimension again (swept fields as run coordinates), the
    layout the plots and tables of single runs take."""
    if "run" in ds.dims:
        return ds
    dims = [d for d in ds.dims if d not in ("epoch", "layer", "step")]
    flat = ds.stack(run=dims).reset_index("run")
    per_run = [k for k, v in flat.data_vars.items() if v.dims == ("run",)]
    flat = flat.set_coords(per_run).assign_coords(run=np.arange(flat.sizes["run"]))
    return flat.transpose("run", ...)


def best_points(ds: xr.Dataset, metric: str = "test_acc", n: int = 5):
    """The `n` best points of a sweep by final `metric` (mean and std over seeds)."""
    from ..analysis import final_values

    spec = json.loads(ds.attrs.get("sweep", "{}"))
    df = final_values(flatten(ds), metric)
    by = [k for k in list(spec.get("grid", {})) + list(spec.get("random", {})) if k in df]
    if not by:  # seeds only: one point, over its seeds
        by = ["rule"]
    table = df.groupby(by)[metric].agg(["mean", "std", "count"]).reset_index()
    return table.sort_values("mean", ascending=False).head(n)
