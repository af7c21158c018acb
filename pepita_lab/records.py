"""Run records as xarray datasets, and the run store on disk (netCDF, atomic writes).

Conventions (xarray's data model): measured things are data variables; a run's
hyperparameters are coordinates along a `run` dimension of length 1, so runs concatenate with
`xr.concat(..., dim="run")` and group by any setting; attributes hold strings and numbers only.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__
from .config import RunConfig

# Settings that become coordinates along `run` (the rest stay in the JSON config attribute).
RUN_COORDS = ("rule", "dataset", "hidden", "f_scale", "lr", "batch_size", "seed", "sign",
              "output_error", "keep_prob", "momentum", "epochs", "feedback_scale", "bias")

VARIABLE_ATTRS = {
    "epoch_lr": ("1", "learning rate used during the epoch (after lr decays)"),
    "train_loss": ("nats", "mean cross-entropy of the training batches during the epoch "
                   "(with dropout, weights changing)"),
    "train_acc": ("1", "fraction of training samples classified correctly during the epoch"),
    "test_loss": ("nats", "mean cross-entropy on the test set after the epoch"),
    "test_acc": ("1", "fraction of the test set classified correctly after the epoch"),
    "epoch_time": ("s", "wall time of the epoch, evaluation included"),
}


def git_revision() -> str:
    """The package checkout's git revision, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_id(config: RunConfig) -> str:
    hidden = "x".join(map(str, config.hidden))
    return (f"{config.rule}-{config.dataset}-h{hidden}-f{config.f_scale:g}-lr{config.lr:g}"
            f"-s{config.seed}")


def run_coords(config: RunConfig) -> dict:
    """The run's hyperparameters as coordinates along a length-1 `run` dimension."""
    d = config.to_dict()
    coords = {"run": ("run", [run_id(config)])}
    for k in RUN_COORDS:
        v = d[k]
        if k == "hidden":
            v = "x".join(map(str, v))
        elif isinstance(v, bool):
            v = int(v)
        coords[k] = ("run", [v])
    coords["depth"] = ("run", [len(config.hidden)])
    return coords


def run_attrs(config: RunConfig, **extra) -> dict:
    """netCDF-safe attributes: the full config as JSON, versions, and `extra` scalars."""
    attrs = {"config": config.to_json(), "pepita_lab_version": __version__,
             "git_revision": git_revision()}
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def history_dataset(config: RunConfig, epochs: list[int], values: dict[str, list[float]],
                    **attrs) -> xr.Dataset:
    """The per-epoch history of one run: variables over (run, epoch)."""
    data_vars = {}
    for name, series in values.items():
        units, desc = VARIABLE_ATTRS.get(name, ("", name))
        data_vars[name] = (("run", "epoch"), np.asarray([series], dtype=np.float64),
                           {"units": units, "description": desc})
    coords = {"epoch": ("epoch", np.asarray(epochs, dtype=np.int64))}
    coords.update(run_coords(config))
    return xr.Dataset(data_vars, coords=coords, attrs=run_attrs(config, **attrs))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """`ds.to_netcdf(path)`, atomically (written beside, then renamed over)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(obj, path: Path) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_netcdf(path: Path) -> xr.Dataset:
    """Load a dataset fully into memory (the file is closed on return)."""
    with xr.open_dataset(path) as ds:
        return ds.load()
