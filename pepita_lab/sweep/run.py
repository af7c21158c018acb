"""Running a sweep into its folder: the points (and halving's rungs) packed into tasks for the
engine, each finished point written at once, the whole assembled into `sweep.nc`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from ..config import ConfigError, RunConfig
from ..records import read_netcdf, write_json, write_netcdf
from .engine import Engine, packs
from .folder import POINTS_DIR, RESULT_FILE, SPEC_FILE, _point_file, _read_spec, assemble
from .spec import SweepSpec


def run_sweep(spec: SweepSpec, out: str | Path, *, workers: int = 0,
              scheduler: str | None = None, progress: bool = True,
              engine: Engine | None = None) -> xr.Dataset:
    """Run (or finish) the sweep `spec` into folder `out`; return the assembled dataset.
    `workers` > 0 starts a local Dask cluster, `scheduler` connects to one; an `engine` passed
    in is used as it is and left open."""
    out = Path(out)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers={workers!r} is not allowed: expected an integer >= 0 "
                          "(0: in this process)")
    points = spec.points()  # every point validated before anything is written
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r} is a file: choose a folder for the sweep")
    spec_file = out / SPEC_FILE
    if spec_file.exists() and _read_spec(spec_file) != spec.to_dict() and any(
            (out / POINTS_DIR).glob("*.nc")):
        raise ConfigError(f"out={str(out)!r} holds a different sweep with finished points: "
                          "choose a new folder (or rerun that sweep's command to finish it)")
    local = (engine.client is None or engine.cluster is not None) if engine else not scheduler
    if local:  # workers on this machine find the data ready instead of each making it
        prepare_data(points)
    (out / POINTS_DIR).mkdir(parents=True, exist_ok=True)
    write_json(spec.to_dict(), spec_file)
    own_engine = engine is None
    engine = engine or Engine(workers, scheduler)
    if engine.dashboard and progress:
        print(f"Dask dashboard: {engine.dashboard}")
    try:
        alive = points
        for epochs in spec.halving_epochs:  # rungs: (points' own epochs without halving)
            todo = [c.replace(epochs=epochs) for c in alive]
            _run_points(engine, todo, spec, out, progress, f"epochs {epochs}")
            alive = _survivors(alive, epochs, spec.halving_keep, out)
        _run_points(engine, alive, spec, out, progress, "points")
    finally:
        if own_engine:
            engine.close()
    ds = assemble(out, spec)
    write_netcdf(ds, out / RESULT_FILE)
    return ds


def prepare_data(points: list[RunConfig]) -> None:
    """Make the datasets of the sweep's points ready in their data folders, once, in this
    process (`data.prepare_dataset`), before any worker loads them."""
    from ..data import prepare_dataset

    for dataset, data_dir, download in sorted({(c.dataset, c.data_dir, c.download)
                                               for c in points if c.dataset != "synthetic"},
                                              key=repr):
        prepare_dataset(dataset, data_dir, download=download)


def _run_points(engine, configs, spec, out, progress, desc) -> None:
    todo = [c for c in configs if not _point_file(out, c).exists()]  # resume: skip done
    bar = tqdm(total=len(configs), initial=len(configs) - len(todo), unit="point",
               desc=desc, disable=not progress)
    for pack, histories in engine.map(packs(todo, spec.pack_size, engine.workers),
                                      spec.threads):
        for config, history in zip(pack, histories):
            write_netcdf(history, _point_file(out, config))
        bar.update(len(pack))
    bar.close()


def _survivors(points, epochs, keep, out) -> list[RunConfig]:
    """The best `keep` fraction of points by test accuracy at `epochs` (diverged last)."""
    scores = []
    for c in points:
        h = read_netcdf(_point_file(out, c.replace(epochs=epochs)))
        acc = float(h.test_acc.isel(run=0, epoch=-1))
        ok = str(h.status.values[0]) == "completed" and np.isfinite(acc)
        scores.append(acc if ok else -np.inf)
    n = max(1, math.ceil(keep * len(points)))
    order = np.argsort(scores)[::-1][:n]
    return [points[i] for i in sorted(order)]
