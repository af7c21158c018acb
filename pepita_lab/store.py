"""The run folder: what is written where, atomically, under a lock, and read back.

A run folder holds `config.json`, `history.nc` (per-epoch and per-layer traces),
`activations.nc` (activation snapshots) and `checkpoint.pt` (everything needed to continue).
Each file is rewritten atomically after each epoch, so a run killed at any moment (even with
SIGKILL) leaves the previous complete file or the new one. The checkpoint is the source of
truth for resuming; it is written first, and only for complete epochs.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import filelock
import torch
import xarray as xr

from . import __version__, locks
from .advice import outcome_attrs
from .config import ConfigError, RunConfig
from .files import atomic_write_bytes
from .nets import Net
from .records import (activations_dataset, history_dataset, read_netcdf,
                      with_run_coords, write_json, write_netcdf)
from .rules.defaults import settings_attrs

if TYPE_CHECKING:  # reading a run needs neither the loop nor the tracer
    from .traces import Tracer
    from .training import Member

CONFIG_FILE, HISTORY_FILE = "config.json", "history.nc"
ACTIVATIONS_FILE, CHECKPOINT_FILE, LOCK_FILE = "activations.nc", "checkpoint.pt", ".lock"
FORMAT_VERSION = 1  # of the run folder; a folder of another version is refused on load


class RunFolderError(ConfigError):
    """A run folder that cannot be used: missing, corrupt, of another version, or busy."""


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

    def __repr__(self) -> str:
        """A few lines: rule, dataset, status, final test accuracy, epochs, run folder (the
        net, history and activations are attributes, not printed)."""
        c, h = self.config, self.history
        epochs = int(h.epoch[-1]) if "epoch" in h.dims and h.sizes["epoch"] else 0
        shown = (f"{100 * self.test_acc:.1f} %" if self.status == "completed" and epochs
                 else f"not a result ({self.status}"
                 + (f" in epoch {h.attrs['diverged_epoch']})" if "diverged_epoch" in h.attrs
                    else ")"))
        layers = "x".join(map(str, c.hidden)) or "-"
        if c.model == "conv":
            layers = f"conv {'x'.join(map(str, c.conv_channels))}, fc {layers}"
        return "\n".join([
            f"Run(rule={c.rule!r}, dataset={c.dataset!r}, status={self.status!r})",
            f"  test accuracy {shown} after {epochs} of {c.epochs} epochs",
            f"  net {c.model} ({layers}), lr {c.lr:g}, batch {c.batch_size}, seed {c.seed}",
            f"  folder {self.path if self.path is not None else '(not written)'}"])

    def activation_differences(self, x, y) -> xr.Dataset:
        """PEPITA's activation differences h_l - h_l^err on the samples `x` you give (images
        or flat vectors, an array or a tensor) with labels `y`, per hidden layer: an xarray
        Dataset like the run's snapshots (dims sample and unit_l; the modulated input and
        the error too; `records.activation_differences`)."""
        from .records import activation_differences

        return activation_differences(self.net, self.config, x, y)


class DivergedWarning(RuntimeWarning):
    """A run diverged: its status is "diverged" and its last accuracies are not a result."""


class DidNotLearnWarning(RuntimeWarning):
    """A run completed but did not learn (at chance, or no better than untrained)."""


def warn_outcome(runs: list[Run], stacklevel: int = 2) -> None:
    """One warning (`DivergedWarning` or `DidNotLearnWarning`) for `runs` (a run, or a
    population's members) that diverged or did not learn, in the CLI's words; `status` and
    the record stay as they are. Nothing for runs that learned or were stopped."""
    import warnings

    diverged = [r for r in runs if r.status == "diverged"]
    unlearned = [r for r in runs if r.status == "completed" and "not_learned" in r.history.attrs]
    if diverged:
        a = diverged[0].history.attrs
        last = int(diverged[0].history.epoch[-1]) if diverged[0].history.sizes["epoch"] else 0
        who = (f"{len(diverged)} of {len(runs)} runs diverged (the first" if len(runs) > 1
               else "the run diverged (in")
        warnings.warn(DivergedWarning(
            f"{who} epoch {a.get('diverged_epoch', '?')}, step "
            f"{a.get('diverged_step', '?')}: {a.get('diverged_reason', '?')}); status="
            f"'diverged', the last good epoch is {last}: its accuracy is not a result"),
            stacklevel=stacklevel + 1)
    elif unlearned:
        who = f"{len(unlearned)} of {len(runs)} runs" if len(runs) > 1 else "the run"
        warnings.warn(DidNotLearnWarning(
            f"{who} completed but {unlearned[0].history.attrs['not_learned']}"),
            stacklevel=stacklevel + 1)


def run_datasets(trainer: "Member", tracer: "Tracer | None",
                 status: str) -> tuple[xr.Dataset, xr.Dataset | None]:
    """The history and activation datasets of a trainer's run so far."""
    h = trainer.history
    attrs = dict(status=status, device=str(trainer.device))
    if trainer.divergence is not None:
        attrs.update({f"diverged_{k}": v for k, v in trainer.divergence.items()})
    attrs.update(settings_attrs(trainer.config))  # which settings are the rule's own
    if status == "completed":  # at chance or below the untrained net: said, with a cause
        attrs.update(outcome_attrs(trainer.config, h.values.get("test_acc", []),
                                   trainer.data.n_classes))
    history = history_dataset(trainer.config, h.epoch, h.values, tracer, **attrs)
    # status as a run coordinate too, so it survives concatenation (grids mark diverged runs)
    history = history.assign_coords(status=("run", [status]))
    activations = None
    if tracer is not None and tracer.snapshots:
        activations = activations_dataset(trainer.config, tracer, trainer.data.image_shape,
                                          **attrs)
    return history, activations


def save_checkpoint(trainer: "Member", path: Path) -> None:
    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    atomic_write_bytes(path, buf.getvalue())


def lock_folder(path: Path) -> filelock.BaseFileLock:
    """An exclusive lock on the run folder (held until `unlock_folder`, released when the
    process ends, however it ends); RunFolderError if another process holds it."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        return locks.acquire(path / LOCK_FILE, timeout=0)
    except filelock.Timeout:
        raise RunFolderError(f"out={str(path)!r} is in use by another running pepita-lab "
                             "process: choose another folder") from None


def unlock_folder(lock: filelock.BaseFileLock) -> None:
    """Release a lock of `lock_folder`."""
    locks.release(lock)


@dataclass
class RunStore:
    """Training callback that rewrites the run folder after every epoch."""

    path: Path
    tracer: "Tracer | None" = None
    _lock: filelock.BaseFileLock | None = field(default=None, repr=False)
    created: bool = False  # whether `open` made the folder

    def open(self, config: RunConfig, *, overwrite: bool = False,
             resume: bool = False) -> None:
        """Lock the folder, then check it, then write config.json (call before training). A
        new run needs an absent or empty folder; a folder holding a run is replaced only with
        `overwrite` (its files removed first), or continued with `resume`. A refused or failed
        start removes the folder again if it created it."""
        self.created = _check_folder_path(self.path)
        try:
            self._lock = lock_folder(self.path)
            if not resume:
                _clear_for_new_run(self.path, overwrite)
            self.write_config(config)
        except BaseException:
            self.abandon()
            raise

    def lock(self) -> None:
        """Lock an existing folder (to resume it: check it, then `write_config`)."""
        self._lock = lock_folder(self.path)

    def write_config(self, config: RunConfig) -> None:
        write_json({"format_version": FORMAT_VERSION, "pepita_lab_version": __version__,
                    "config": config.to_dict()}, self.path / CONFIG_FILE)

    def close(self) -> None:
        if self._lock is not None:
            unlock_folder(self._lock)
            self._lock = None

    def abandon(self) -> None:
        """Unlock, and remove the folder if this store created it (a start that failed before
        anything worth keeping was written)."""
        self.close()
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)

    def on_train_start(self, trainer: "Member") -> None:
        if trainer.epoch == 0:  # a first good checkpoint, should epoch 1 already diverge
            self.save(trainer, "running", checkpoint=True)

    def on_epoch_end(self, trainer: "Member") -> None:
        self.save(trainer, "running", checkpoint=True)

    def on_diverged(self, trainer: "Member") -> None:
        """A population's member that diverged is finished: its folder says so at once (a
        process killed while the others train does not leave it to be trained again)."""
        self.save(trainer, "diverged", checkpoint=False)

    def save(self, trainer: "Member", status: str, *, checkpoint: bool):
        """Write the datasets with `status`; the checkpoint only for a complete epoch (a run
        stopped or diverged mid-epoch keeps the last good one)."""
        history, activations = run_datasets(trainer, self.tracer, status)
        if checkpoint:
            save_checkpoint(trainer, self.path / CHECKPOINT_FILE)
        if activations is not None:
            write_netcdf(activations, self.path / ACTIVATIONS_FILE)
        write_netcdf(history, self.path / HISTORY_FILE)
        return history, activations


RUN_FILES = (CONFIG_FILE, HISTORY_FILE, ACTIVATIONS_FILE, CHECKPOINT_FILE)


def _check_folder_path(path: Path) -> bool:
    """RunFolderError unless `path` can be a run folder (not a file, not below one); creates
    it. Returns whether it was created."""
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"is below {str(p)!r}, which is a file"
            raise RunFolderError(f"out={str(path)!r} {where}: choose a folder")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"out={str(path)!r} cannot be created ({err.strerror}): choose "
                             "a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunFolderError(f"out={str(path)!r} is not writable: choose a folder you can "
                             "write to")
    return created


def _clear_for_new_run(path: Path, overwrite: bool) -> None:
    """Refuse a folder that holds anything but our lock, unless it holds a run and
    `overwrite` says to replace it (then its run files go)."""
    others = sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE
                    and not p.name.startswith("."))
    if not others:
        return
    if not (path / CONFIG_FILE).is_file():
        raise RunFolderError(f"out={str(path)!r} is not empty and holds no run ({others[0]}, "
                             "...): choose a new folder")
    if not overwrite:
        status = _status(path)
        raise RunFolderError(f"out={str(path)!r} already holds a {status} run: continue it "
                             "with --resume (resume() in Python), or replace it with "
                             "--overwrite (overwrite=True)")
    unknown = [name for name in others if name not in RUN_FILES]
    if unknown:
        raise RunFolderError(f"out={str(path)!r} holds files that are not a run's "
                             f"({', '.join(unknown)}): not overwriting; choose a new folder")
    for name in others:
        (path / name).unlink()


def _status(path: Path) -> str:
    """The status a run folder's history records ("completed", "stopped", ...)."""
    try:
        return str(read_netcdf(path / HISTORY_FILE).attrs.get("status", "unfinished"))
    except (OSError, ConfigError):
        return "unfinished"


def read_config(path: Path) -> RunConfig:
    """The config of run folder `path`, or RunFolderError saying what is wrong with it."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise RunFolderError(f"{path} is not a run folder: no {CONFIG_FILE}")
    try:
        doc = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{file} is corrupt (not valid JSON: {err})") from None
    if isinstance(doc, dict) and "format_version" not in doc and "rule" in doc:
        doc = {"format_version": FORMAT_VERSION, "config": doc}  # format 0: the bare config
    if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
        version = doc.get("format_version") if isinstance(doc, dict) else None
        raise RunFolderError(f"{file} is from an incompatible version of pepita-lab "
                             f"(run folder format {version!r}, this version reads "
                             f"{FORMAT_VERSION})")
    try:
        return RunConfig.from_dict(doc["config"], check_rule=False)
    except (ConfigError, TypeError, KeyError) as err:
        raise RunFolderError(f"{file} holds an invalid config: {err}") from None


CHECKPOINT_KEYS = {"config", "net", "velocity", "epoch", "step", "history", "order_gen",
                   "mask_gen"}


def read_checkpoint(path: Path) -> dict:
    file = Path(path) / CHECKPOINT_FILE
    if not file.is_file():
        raise RunFolderError(f"{path} has no {CHECKPOINT_FILE}: nothing to resume or load")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle / zip errors of a damaged or foreign file
        raise RunFolderError(f"{file} is corrupt or not a pepita-lab checkpoint (it cannot be "
                             f"read back: {type(err).__name__}); start a new run, or restore "
                             "the file") from None
    missing = sorted(CHECKPOINT_KEYS - set(state)) if isinstance(state, dict) else ["all"]
    if missing:
        raise RunFolderError(f"{file} is not a pepita-lab checkpoint (no {', '.join(missing)})")
    return state


def load_run(path: str | Path) -> Run:
    """A run folder written by `pepita_lab.train(..., out=path)`, back as a `Run`."""
    path = Path(path)
    config = read_config(path)
    if not (path / HISTORY_FILE).is_file():
        raise RunFolderError(f"{path} has no {HISTORY_FILE}: the run never finished an epoch "
                             "(or the file was removed)")
    history = with_run_coords(read_netcdf(path / HISTORY_FILE), config)
    if "status" not in history.coords:  # written before status became a coordinate
        history = history.assign_coords(status=("run", [history.attrs.get("status", "unknown")]))
    activations = (with_run_coords(read_netcdf(path / ACTIVATIONS_FILE), config)
                   if (path / ACTIVATIONS_FILE).is_file() else None)
    state = read_checkpoint(path)
    check_checkpoint(config, state, path)
    net = Net.from_state_dict(state["net"])
    return Run(config, history, activations, net, history.attrs.get("status", "unknown"), path)


def check_checkpoint(config: RunConfig, state: dict, path: Path) -> None:
    """RunFolderError unless the checkpoint of run folder `path` is a run of `config` (its
    config.json): the same settings but for the epochs, and weights for each of its layers."""
    file = Path(path) / CHECKPOINT_FILE
    try:
        saved = RunConfig.from_dict(state["config"])
        n_weights = len(state["net"]["weights"])
    except (ConfigError, TypeError, KeyError) as err:
        raise RunFolderError(f"{file} holds no valid run ({type(err).__name__}: {err})") from None
    mine, theirs = config.identity(), saved.identity()
    differ = sorted(k for k in set(mine) | set(theirs)
                    if k != "epochs" and mine.get(k) != theirs.get(k))
    if differ:
        k = differ[0]
        raise RunFolderError(
            f"{Path(path) / CONFIG_FILE} does not match {file}: {k}={mine.get(k)!r} in the "
            f"config, {theirs.get(k)!r} in the checkpoint ({', '.join(differ)} differ); "
            f"restore config.json, or start a new run")
    if n_weights != config.n_layers:
        raise RunFolderError(f"{file} holds {n_weights} layers but its config has "
                             f"{config.n_layers}: the folder is damaged")


def load_runs(paths, what: str = "history") -> xr.Dataset:
    """The histories (or `what="activations"`) of several run folders, concatenated along
    `run`, their hyperparameters as coordinates; shorter runs are padded with NaN."""
    paths = list(paths)
    if not paths:
        raise ConfigError("paths is empty: expected at least one run folder")
    datasets = [getattr(load_run(p), what) for p in paths]
    if any(d is None for d in datasets):
        missing = [str(p) for p, d in zip(paths, datasets) if d is None]
        raise RunFolderError(f"{missing[0]} has no {what} dataset ({len(missing)} of "
                             f"{len(paths)} runs lack one)")
    # coords="all": per-run coordinates such as the probe labels get a `run` dimension
    # instead of clashing; join="outer" pads shorter runs and narrower layers with NaN.
    try:
        return xr.concat(datasets, dim="run", join="outer", coords="all", data_vars="all",
                         combine_attrs="drop_conflicts")
    except (ValueError, TypeError) as err:  # e.g. image probes of different shapes
        raise ConfigError(f"these runs cannot be combined into one dataset ({err}); load "
                          "runs of one dataset together") from None
