"""The Python API the CLI, the notebooks and the widgets share: train a run, save it, load it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import xarray as xr

from .config import RunConfig, validate
from .data import TensorData
from .nets import Net
from .records import atomic_write_bytes, history_dataset, read_netcdf, write_json, write_netcdf
from .train import Trainer

CONFIG_FILE, HISTORY_FILE, CHECKPOINT_FILE = "config.json", "history.nc", "checkpoint.pt"


@dataclass
class Run:
    """A trained (or loaded) run: its settings, history dataset and net."""

    config: RunConfig
    history: xr.Dataset
    net: Net
    status: str = "completed"
    path: Path | None = None

    @property
    def model(self) -> Net:
        return self.net

    @property
    def test_acc(self) -> float:
        return float(self.history.test_acc.isel(run=0, epoch=-1))


def history_of(trainer: Trainer, status: str) -> xr.Dataset:
    h = trainer.history
    return history_dataset(trainer.config, h.epoch, h.values, status=status,
                           device=str(trainer.device))


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


def save_run(trainer: Trainer, out: Path, status: str) -> xr.Dataset:
    """Write config.json, history.nc and checkpoint.pt into `out`; return the history."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history = history_of(trainer, status)
    write_json(trainer.config.to_dict(), out / CONFIG_FILE)
    write_netcdf(history, out / HISTORY_FILE)
    save_checkpoint(trainer, out / CHECKPOINT_FILE)
    return history


def train(config: RunConfig, *, out: str | Path | None = None, data: TensorData | None = None,
          progress: bool = True, callbacks: tuple = (),
          should_stop: Callable[[], bool] | None = None) -> Run:
    """Train one run of `config`; with `out`, also write it to that folder.

    The config is validated and the data loaded before anything is written, so a refused run
    leaves `out` untouched. `should_stop` (checked every step) ends the run early, with status
    "stopped" and the last complete epoch kept.
    """
    config = validate(config)
    trainer = Trainer(config, data, callbacks=callbacks, progress=progress)
    status = trainer.run(should_stop)
    if out is not None:
        history = save_run(trainer, Path(out), status)
    else:
        history = history_of(trainer, status)
    return Run(config, history, trainer.net, status, None if out is None else Path(out))


def load_run(path: str | Path) -> Run:
    """A run folder written by `train(..., out=path)`, back as a `Run`."""
    path = Path(path)
    config = RunConfig.from_dict(json.loads((path / CONFIG_FILE).read_text()))
    history = read_netcdf(path / HISTORY_FILE)
    state = torch.load(path / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    net = Net.from_state_dict(state["net"])
    return Run(config, history, net, history.attrs.get("status", "unknown"), path)
