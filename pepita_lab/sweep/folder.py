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
    """The sweep's finished points in folder `out` as one dataset (`combine`)."""
    out = Path(out)
    found = []
    for c in spec.points():
        rungs = list(spec.halving_epochs) + [c.epochs]
        done = [e for e in rungs if _point_file(out, c.replace(epochs=e)).exists()]
        if done:
            found.append((c, read_netcdf(_point_file(out, c.replace(epochs=done[-1])))))
    if not found:
        raise ConfigError(f"no finished points in {out}")
    return combine(spec, found)


def combine(spec: SweepSpec, found: list[tuple[RunConfig, xr.Dataset]]) -> xr.Dataset:
    """Points' histories (each `(point config, its longest history)`) as one dataset: the
    swept fields and `seed` as dimensions for a complete grid (a `run` dimension for random
    points or a grid not yet finished), `stopped_at_epoch` for points halving stopped early,
    `diverged_epoch` for points that diverged (-1 for the others)."""
    histories = []
    for c, h in found:
        last = int(h.epoch.values.max())
        stopped = last if last < c.epochs and str(h.status.values[0]) == "completed" else -1
        histories.append(h.assign_coords(
            stopped_at_epoch=("run", [stopped]), epochs=("run", [c.epochs]),
            diverged_epoch=("run", [int(h.attrs.get("diverged_epoch", -1))])))
    ds = xr.concat(histories, dim="run", join="outer", coords="all", data_vars="all",
                   combine_attrs="drop_conflicts")
    for key in [k for k in ds.attrs if k.startswith("diverged_")]:  # per point: coordinates
        del ds.attrs[key]
    ds.attrs["sweep"] = json.dumps(spec.to_dict())
    dims = spec.swept + ["seed"]
    if spec.n_random == 0 and len(histories) == len(spec.points()):
        ds = _grid_dims(ds, dims)
    return ds


def _grid_dims(ds: xr.Dataset, dims: list[str]) -> xr.Dataset:
    """Turn the `run` dimension of a complete grid into one dimension per swept field, each
    in the order its values were given (the grid's order: unstacking alone would sort them,
    "16" before "8")."""
    run_coords = [k for k, v in ds.coords.items() if v.dims == ("run",) and k != "run"]
    keep = [k for k in run_coords if k not in dims]
    ds = ds.reset_coords(keep)  # unstack carries variables, so settings travel as variables
    if len(dims) == 1:  # seeds only: `seed` replaces `run`
        return ds.swap_dims(run=dims[0]).drop_vars("run").set_coords(keep)
    order = {d: list(dict.fromkeys(ds[d].values.tolist())) for d in dims}
    return ds.set_index(run=dims).unstack("run").sel(order).set_coords(keep)


def flatten(ds: xr.Dataset) -> xr.Dataset:
    """A sweep or grid dataset with one `run` dimension again (swept fields, and settings
    that were not swept, as run coordinates), the layout the plots and tables of single runs
    take: `pl.load_runs`'s."""
    if "run" in ds.dims:
        return ds
    dims = [d for d in ds.dims if d not in ("epoch", "layer", "step")]
    flat = ds.stack(run=dims).reset_index("run")
    per_run = [k for k, v in flat.data_vars.items() if v.dims == ("run",)]
    n = flat.sizes["run"]
    flat = flat.set_coords(per_run).assign_coords(run=np.arange(n))
    # a setting that was not swept (the seed of a grid without seeds) is each run's too
    flat = flat.assign_coords({k: ("run", np.repeat(v.values, n)) for k, v in ds.coords.items()
                               if v.ndim == 0})
    return flat.transpose("run", ...)


def best_points(ds: xr.Dataset, metric: str = "test_acc", n: int = 5):
    """The `n` best points of a sweep by final `metric` (mean and std over the seeds that
    completed; points where none did are left out: `points_table` lists every point)."""
    from ..analysis import final_values

    flat = flatten(ds)
    df = final_values(flat, metric)
    if "status" in df:
        df = df[df["status"] == "completed"]
    if "stopped_at_epoch" in df:
        df = df[df["stopped_at_epoch"] < 0]
    by = _point_fields(ds, df)
    table = df.groupby(by)[metric].agg(["mean", "std", "count"]).reset_index()
    return table.sort_values("mean", ascending=False).head(n)


def _point_fields(ds: xr.Dataset, df) -> list[str]:
    """The fields that tell a sweep's points apart (the rule for seeds only)."""
    spec = json.loads(ds.attrs.get("sweep", "{}"))
    by = [k for k in list(spec.get("grid", {})) + list(spec.get("random", {})) if k in df]
    return by or ["rule"]


def points_table(ds: xr.Dataset, metric: str = "test_acc") -> str:
    """Every point of a sweep, best first, as a markdown table: the swept fields, the final
    `metric` in percent (mean ± std over the seeds that completed; the mean alone for one
    seed; "—" where none completed, never a diverged run's last value), n, seeds and status
    ("diverged in epoch 3", "stopped by halving at epoch 1")."""
    from ..analysis import final_values, format_table, summary_table

    flat = flatten(ds)
    table = summary_table(flat, by=_point_fields(ds, final_values(flat, metric)), metric=metric)
    table = table.sort_values("mean", ascending=False, na_position="last", kind="stable")
    return format_table(table)
