"""`grid`: the one way to train a grid from Python, fields x values x seeds, packed into
populations, in this process or on Dask; a dataset with the swept fields as dimensions."""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from tqdm.auto import tqdm

from ..config import ConfigError, RunConfig, field_names, unknown_field
from .engine import Engine, packs, run_pack
from .folder import combine, flatten
from .spec import SweepSpec


def grid(config: RunConfig, *, seeds=None, out: str | Path | None = None, workers: int = 0,
         scheduler: str | None = None, progress: bool = True, data=None, pack_size: int = 16,
         threads: int | None = None, run_folders: str | Path | None = None,
         trace_every: int | None = None, snapshot_epochs=None, **fields) -> xr.Dataset:
    """Train every combination of `fields` (config field -> list of values, e.g.
    `lr=[0.01, 0.1], f_scale=[0.05, 0.5]`) times `seeds` on top of `config`; return one
    dataset whose dimensions are the swept fields (in the order given) and `seed` only if
    `seeds` is given (`seed=[0, 1]` works too), besides `epoch` and `layer`.

        ds = pl.grid(config, lr=[0.01, 0.1], f_scale=[0.05, 0.5], seeds=[0, 1])
        ds.test_acc.sel(epoch=ds.epoch[-1]).mean("seed")   # final accuracy, lr x f_scale
        runs = pepita_lab.sweep.flatten(ds)                 # one `run` per point and seed

    Points that share an architecture (they differ only in seed, F scale, lr, sign, feedback
    scale, ...) train together as one population, at most `pack_size` a task; conv nets and
    rules without populations one after the other. Where: in this process (default), on a
    local Dask cluster of `workers` processes, or on the Dask scheduler at `scheduler`
    ("tcp://host:8786"); the results are the same. Dask workers import the module of a rule
    you registered with `register_rule` (it must be importable there, not defined in a
    notebook) or load it from its entry point. `out`: a sweep folder, written point by point,
    so calling again with the same arguments finishes an interrupted grid (as `pepita-lab
    sweep --out`). `data`: your own data (`pl.train`'s), in this process only. `threads`:
    torch threads per task (default: as they are here, 1 on Dask workers). A progress bar
    counts the grid's runs. Without `out`: `run_folders` gives every point a run folder
    there, `run_folders/<run id>`, as `pl.train(out=...)` writes one (config, history,
    activation snapshots at `snapshot_epochs`, checkpoint); `trace_every` records the traces
    every N steps too, for every point (`pl.train`'s).

    Every point keeps its place: `status` says "completed" or "diverged" (with
    `diverged_epoch`, the epoch it diverged in); `pepita_lab.sweep.points_table(ds)` lists
    every point with its status."""
    from ..api import as_config

    base = as_config(config)
    if "seed" in fields:
        if seeds is not None:
            raise ConfigError("seed and seeds are both given: pass the seeds once, seeds=[...]")
        seeds = fields.pop("seed")
    names = field_names()
    for name in fields:
        if name not in names:
            raise unknown_field(name, "grid")
    seeds_swept = seeds is not None
    seeds = list(seeds) if isinstance(seeds, (list, tuple, range)) else seeds
    if not fields and not seeds_swept:
        raise ConfigError("a grid needs at least one field to sweep, e.g. "
                          "grid(config, lr=[0.01, 0.1]) or seeds=[0, 1]")
    from ..api import _check_snapshot_epochs, _check_trace_every

    _check_trace_every(trace_every)
    options = {k: v for k, v in (("out", run_folders), ("trace_every", trace_every),
                                 ("snapshot_epochs", _check_snapshot_epochs(snapshot_epochs)))
               if v is not None}
    if options and out is not None:
        raise ConfigError(f"{', '.join(options).replace('out', 'run_folders')} cannot be used "
                          "with out= (a sweep folder keeps each point's history only)")
    if data is not None and (out is not None or workers or scheduler):
        raise ConfigError("data= trains in this process without a sweep folder: leave out "
                          "out, workers and scheduler (or give the config's dataset)")
    spec = SweepSpec(base=base, grid=dict(fields), seeds=seeds if seeds_swept else [base.seed],
                     pack_size=pack_size, threads=1 if threads is None else threads)
    if out is not None:
        from .run import run_sweep

        ds = run_sweep(spec, out, workers=workers, scheduler=scheduler, progress=progress)
    else:
        ds = _in_memory(spec, workers, scheduler, data, progress, threads, options)
    return ds if seeds_swept else ds.isel(seed=0)


def _in_memory(spec: SweepSpec, workers: int, scheduler, data, progress: bool,
               threads, options: dict) -> xr.Dataset:
    """The grid's points trained without a sweep folder: each dataset loaded once here, or
    on Dask; their histories combined. `options`: `train`'s for every point (out, the run
    folders' parent; trace_every; snapshot_epochs)."""
    from ..data import as_tensor_data, run_data
    from ..devices import resolve_device
    from .folder import point_id
    from .run import prepare_data

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers={workers!r} is not allowed: expected an integer >= 0 "
                          "(0: in this process)")
    points = spec.points()  # every point validated before any training
    engine = Engine(workers, scheduler)
    done: dict[str, xr.Dataset] = {}
    bar = tqdm(total=len(points), unit="run", desc="grid", disable=not progress)
    try:
        tasks = packs(points, spec.pack_size, engine.workers)
        if engine.client is None:
            loaded = {}
            for pack in tasks:
                c = pack[0]
                key = (c.dataset, c.subset, c.data_dir)
                if key not in loaded:
                    loaded[key] = (as_tensor_data(data, c) if data is not None else
                                   run_data(c, resolve_device(c.device)))
                for config, h in zip(pack, run_pack(pack, threads, data=loaded[key],
                                                    progress=progress, **options)):
                    done[point_id(config)] = h
                bar.update(len(pack))
        else:
            if engine.cluster is not None:
                prepare_data(points)
            for pack, histories in engine.map(tasks, spec.threads, options=options):
                for config, h in zip(pack, histories):
                    done[point_id(config)] = h
                bar.update(len(pack))
    finally:
        bar.close()
        engine.close()
    return combine(spec, [(c, done[point_id(c)]) for c in points])


def train_grid(base: RunConfig, *, out: str | Path | None = None, progress: bool = True,
               **kwargs) -> xr.Dataset:
    """`grid(base, run_folders=out, **kwargs)` flattened to one `run` dimension (`flatten`):
    the layout of earlier versions, kept for existing code; new code calls `pepita_lab.grid`."""
    return flatten(grid(base, run_folders=out, progress=progress, **kwargs))
