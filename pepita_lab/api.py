"""The Python API the CLI, the notebooks and the widgets share: train a run, store it, load it.

A run folder holds `config.json`, `history.nc` (per-epoch and per-layer traces),
`activations.nc` (activation snapshots) and `checkpoint.pt` (everything needed to continue).
Every file is rewritten atomically after each epoch, so a run killed at any moment leaves the
previous complete files or the new ones, never a truncated one.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import xarray as xr

from .config import ConfigError, RunConfig, validate
from .data import TensorData, load_data
from .devices import resolve_device
from .nets import Net
from .records import (activations_dataset, atomic_write_bytes, history_dataset, read_netcdf,
                      run_id, write_json, write_netcdf)
from .traces import Tracer
from .training import Trainer

CONFIG_FILE, HISTORY_FILE = "config.json", "history.nc"
ACTIVATIONS_FILE, CHECKPOINT_FILE = "activations.nc", "checkpoint.pt"


@dataclass
class Run:
    """A trained (or loaded) run: its settings, its datasets and its net."""

    config: RunConfig
    history: xr.Dataset
    activations: xr.Dataset | None
    net: Net
    status: str = "completed"
    path: Path | None = None

    @property
    def model(self) -> Net:
        return self.net

    @property
    def test_acc(self) -> float:
        return float(self.history.test_acc.isel(run=0, epoch=-1))


def run_datasets(trainer: Trainer, tracer: Tracer | None,
                 status: str) -> tuple[xr.Dataset, xr.Dataset | None]:
    """The history and activation datasets of a trainer's run so far."""
    h = trainer.history
    attrs = dict(status=status, device=str(trainer.device))
    history = history_dataset(trainer.config, h.epoch, h.values, tracer, **attrs)
    activations = None
    if tracer is not None and tracer.snapshots:
        activations = activations_dataset(trainer.config, tracer, trainer.data.image_shape,
                                          **attrs)
    return history, activations


def save_checkpoint(trainer: Trainer, path: Path) -> None:
    """Everything needed to continue the run, written atomically."""
    state = {"config": trainer.config.to_dict(), "net": trainer.net.to("cpu").state_dict(),
             "velocity": [v.cpu() for v in trainer.velocity], "epoch": trainer.epoch,
             "step": trainer.step, "history": {"epoch": trainer.history.epoch,
                                               "values": trainer.history.values},
             "order_gen": trainer.order_gen.get_state(),
             "mask_gen": trainer.mask_gen.get_state().cpu()}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


@dataclass
class RunStore:
    """Training callback that rewrites the run folder after every epoch."""

    path: Path
    tracer: Tracer | None = None
    status: str = "running"

    def on_train_start(self, trainer: Trainer) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(trainer.config.to_dict(), self.path / CONFIG_FILE)

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.save(trainer)

    def save(self, trainer: Trainer) -> tuple[xr.Dataset, xr.Dataset | None]:
        history, activations = run_datasets(trainer, self.tracer, self.status)
        save_checkpoint(trainer, self.path / CHECKPOINT_FILE)
        if activations is not None:
            write_netcdf(activations, self.path / ACTIVATIONS_FILE)
        write_netcdf(history, self.path / HISTORY_FILE)  # last: its status says the rest is done
        return history, activations


def train(config: RunConfig, *, out: str | Path | None = None, data: TensorData | None = None,
          progress: bool = True, callbacks: tuple = (), trace_every: int | None = None,
          snapshot_epochs: tuple[int, ...] | None = None, traces: bool = True,
          should_stop: Callable[[], bool] | None = None) -> Run:
    """Train one run of `config`; with `out`, write it to that folder as it goes.

    The config is validated and the data loaded before anything is written, so a refused run
    leaves `out` untouched. Traces (`traces=True`) are recorded after every epoch, and every
    `trace_every` steps if given; activation snapshots at `snapshot_epochs` (default: every
    epoch of short runs, 0, 1, 2, 5, 10, 20, 50, ... of long ones). `should_stop` (checked every
    step) ends the run early with status "stopped", keeping the last complete epoch.
    """
    config = validate(config)
    if trace_every is not None and (isinstance(trace_every, bool) or int(trace_every) < 1):
        raise ConfigError(f"trace_every={trace_every!r} is not allowed: expected an integer >= 1")
    tracer = Tracer(trace_every, snapshot_epochs) if traces else None
    trainer = Trainer(config, data, progress=progress)
    store = RunStore(Path(out), tracer) if out is not None else None
    trainer.callbacks = [cb for cb in (tracer, store) if cb is not None] + list(callbacks)
    status = trainer.run(should_stop)
    if store is not None:
        store.status = status
        history, activations = store.save(trainer)
    else:
        history, activations = run_datasets(trainer, tracer, status)
    return Run(config, history, activations, trainer.net, status,
               None if out is None else Path(out))


def load_run(path: str | Path) -> Run:
    """A run folder written by `train(..., out=path)`, back as a `Run`."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a run folder: no {CONFIG_FILE}")
    config = RunConfig.from_dict(json.loads((path / CONFIG_FILE).read_text()))
    history = read_netcdf(path / HISTORY_FILE)
    activations = (read_netcdf(path / ACTIVATIONS_FILE)
                   if (path / ACTIVATIONS_FILE).is_file() else None)
    state = torch.load(path / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    net = Net.from_state_dict(state["net"])
    return Run(config, history, activations, net, history.attrs.get("status", "unknown"), path)


def load_runs(paths, what: str = "history") -> xr.Dataset:
    """The histories (or `what="activations"`) of several run folders, concatenated along
    `run`, their hyperparameters as coordinates; shorter runs are padded with NaN."""
    runs = [load_run(p) for p in paths]
    datasets = [getattr(r, what) for r in runs]
    if any(d is None for d in datasets):
        raise ValueError(f"some runs have no {what} dataset")
    # coords="all": per-run coordinates such as the probe labels get a `run` dimension
    # instead of clashing; join="outer" pads shorter runs and narrower layers with NaN.
    return xr.concat(datasets, dim="run", join="outer", coords="all", data_vars="all",
                     combine_attrs="drop_conflicts")


def train_grid(base: RunConfig, *, out: str | Path | None = None, progress: bool = True,
               traces: bool = True, **axes) -> xr.Dataset:
    """Train every combination of the values in `axes` (config field -> list of values, e.g.
    `f_scale=[0.01, 0.1], lr=[0.01, 0.1], seed=[0, 1]`) on top of `base`, one after the other;
    return their histories concatenated along `run`. With `out`, each run gets a folder there.
    The dataset is loaded once for all runs that share it."""
    import itertools

    from tqdm.auto import tqdm

    fields = list(axes)
    points = [dict(zip(fields, values)) for values in itertools.product(*axes.values())]
    configs = [base.replace(**p) for p in points]  # every point validated before any training
    histories, loaded = [], {}
    for config in tqdm(configs, desc="grid", unit="run", disable=not progress):
        key = (config.dataset, config.subset, config.data_dir, config.seed * (
            config.dataset == "synthetic"))
        if key not in loaded:
            loaded[key] = load_data(config.dataset, data_dir=config.data_dir,
                                    subset=config.subset, download=config.download,
                                    seed=config.seed, device=resolve_device(config.device))
        path = None if out is None else Path(out) / run_id(config)
        run = train(config, out=path, data=loaded[key], progress=False, traces=traces)
        histories.append(run.history)
    return xr.concat(histories, dim="run", join="outer", combine_attrs="drop_conflicts")
