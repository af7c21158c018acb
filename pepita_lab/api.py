"""The Python API the CLI, the notebooks and the widgets share: train, resume, populations
(grids: `pepita_lab.grid`, in `sweep.grid`, which trains its points through this module).

The run folder (what is written, how it is read back) is `pepita_lab.store`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import ConfigError, RunConfig
from .data import TensorData, run_data
from .devices import resolve_device
from .records import run_id
from .store import (Run, RunFolderError, RunStore, check_checkpoint, load_run, load_runs,
                    read_checkpoint, read_config, run_datasets, warn_outcome)
from .traces import Tracer
from .preflight import check_memory
from .rules.validation import resolve
from .training import Trainer, trains_as_population

__all__ = ["train", "resume", "train_population", "load_run", "load_runs", "Run"]


def _check_trace_every(trace_every) -> None:
    if trace_every is not None and (isinstance(trace_every, bool)
                                    or not isinstance(trace_every, int) or trace_every < 1):
        raise ConfigError(f"trace_every={trace_every!r} is not allowed: expected an integer >= 1")


def _check_snapshot_epochs(snapshot_epochs) -> tuple[int, ...] | None:
    if snapshot_epochs is None:
        return None
    values = ([snapshot_epochs] if isinstance(snapshot_epochs, int) else
              list(snapshot_epochs) if isinstance(snapshot_epochs, (list, tuple)) else None)
    if values is None or not values or any(isinstance(e, bool) or not isinstance(e, int)
                                           or e < 0 for e in values):
        raise ConfigError(f"snapshot_epochs={snapshot_epochs!r} is not allowed: expected "
                          "epochs, integers >= 0 (0: the initial net)")
    return tuple(sorted(set(values)))


def as_config(config) -> RunConfig:
    """`config` as a RunConfig (a RunConfig, or a dict of its fields); `resolve` makes it the
    config that trains."""
    if isinstance(config, dict):
        return RunConfig.from_dict(config)
    if not isinstance(config, RunConfig):
        raise ConfigError(f"config={_kind(config)} is not allowed: expected a RunConfig "
                          "(pepita_lab.preset(...) or RunConfig(...)) or a dict of its fields")
    return config


def _kind(value) -> str:
    """What a refused value is, in a few words (never a whole config's repr)."""
    return f"{type(value).__name__}" + (f" of {len(value)}" if isinstance(value, (list, tuple))
                                        else "")


def _check_memory(configs: list[RunConfig]) -> None:
    """The Trainer's preflight: a population needs the memory of one net K times as wide."""
    K, base = len(configs), configs[0]
    check_memory(base.replace(hidden=tuple(K * w for w in base.hidden)))


def _fit(trainer: Trainer, tracer: Tracer | None, store: RunStore | None,
         callbacks: tuple, should_stop) -> Run:
    """Run `trainer` to its end (or stop / divergence) with the store writing as it goes. A
    run that fails before finishing its first epoch leaves no folder it created."""
    trainer.callbacks = [cb for cb in (tracer, store) if cb is not None] + list(callbacks)
    try:
        status = trainer.run(should_stop)
        if store is not None:
            history, activations = store.save(trainer, status,
                                              checkpoint=status == "completed")
        else:
            history, activations = run_datasets(trainer, tracer, status)
    except BaseException as err:
        if store is not None and trainer.epoch == 0 and not isinstance(err, KeyboardInterrupt):
            store.abandon()  # nothing worth keeping: the next try starts afresh
        raise
    finally:
        if store is not None:
            store.close()
    run = Run(trainer.config, history, activations, trainer.members[0].net, status,
              None if store is None else store.path)
    warn_outcome([run], stacklevel=3)  # a diverged run, or one that did not learn, says so
    return run


def train(config: RunConfig, *, out: str | Path | None = None, data: TensorData | None = None,
          progress: bool = True, callbacks: tuple = (), trace_every: int | None = None,
          snapshot_epochs: tuple[int, ...] | None = None, traces: bool = True,
          should_stop: Callable[[], bool] | None = None, overwrite: bool = False) -> Run:
    """Train one run of `config`; with `out`, write it to that folder as it goes. `data`:
    your own data instead of the config's dataset, as `data.as_tensor_data` takes it
    (`(x_train, y_train, x_test, y_test)` arrays or tensors, a `(train, test)` pair of torch
    Datasets, or a `TensorData`), checked before anything is written.

    The config is validated before anything is written; then `out` is locked (a folder
    another process is writing to is refused) and checked: a folder that already holds a run
    is refused unless `overwrite` (its files are then replaced); a start that fails (bad data,
    a full disk before the first epoch ends) removes the folder it created. Traces
    (`traces=True`) are recorded after every epoch, and every `trace_every` steps if given;
    activation snapshots at `snapshot_epochs` (default: every epoch of short runs, 0, 1, 2, 5,
    10, 20, 50, ... of long ones). `should_stop` (checked every step) ends the run early with
    status "stopped"; a diverging run ends with status "diverged". Either way the checkpoint
    is that of the last complete epoch, so `resume(out)` continues from it.
    """
    config = resolve(as_config(config))  # the rule's own settings where you set none
    _check_trace_every(trace_every)
    snapshot_epochs = _check_snapshot_epochs(snapshot_epochs)
    # resolved, memory and data checked, before anything is written
    trainer = Trainer(config, data, progress=progress, preflight=_check_memory)
    tracer = Tracer(trace_every, snapshot_epochs) if traces else None
    store = None
    if out is not None:
        store = RunStore(Path(out), tracer)
        store.open(trainer.config, overwrite=overwrite)
    return _fit(trainer, tracer, store, callbacks, should_stop)


def resume(path: str | Path, *, data: TensorData | None = None, progress: bool = True,
           callbacks: tuple = (), should_stop: Callable[[], bool] | None = None,
           epochs: int | None = None) -> Run:
    """Continue the run in folder `path` from its last complete epoch (to `epochs` if given,
    else to the epochs of its config; fewer epochs than it has done are refused). The folder
    is locked first; its config.json must match its checkpoint (rule, architecture, dataset,
    F, ...). On the CPU the result equals that of an uninterrupted run bit for bit: weights,
    momentum, data order and dropout streams are all restored."""
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"{path} is not a run folder: nothing to resume")
    store = RunStore(path)
    store.lock()
    try:
        config = read_config(path)
        state = read_checkpoint(path)
        check_checkpoint(config, state, path)
        if epochs is not None:
            if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs < state["epoch"]:
                raise ConfigError(f"epochs={epochs!r} is not allowed: {path} has "
                                  f"{state['epoch']} epochs done; resuming can only extend a "
                                  "run (or keep its length)")
            config = config.replace(epochs=epochs)
        config = resolve(config)
        trace_state = state.get("callbacks", {}).get("Tracer")
        tracer = None if trace_state is None else Tracer(trace_state.get("every_steps"))
        trainer = Trainer(config, data, progress=progress, preflight=_check_memory)
        trainer.callbacks = [tracer] if tracer is not None else []
        trainer.load_state_dict(state)
        store.tracer = tracer
        store.write_config(config)
    except BaseException:
        store.close()
        raise
    return _fit(trainer, tracer, store, callbacks, should_stop)


def train_population(configs: list[RunConfig], *, out: str | Path | None = None,
                     data: TensorData | None = None, progress: bool = True,
                     trace_every: int | None = None,
                     snapshot_epochs: tuple[int, ...] | None = None, traces: bool = True,
                     should_stop: Callable[[], bool] | None = None,
                     overwrite: bool = False) -> list[Run]:
    """Train `configs` (one architecture; they may differ in seed, F scale, lr, sign and
    feedback scale) at once as one population with batched products; return one `Run` per
    member. With `out`, each member gets a run folder `out/<run id>` like a separate run's
    (locked, checked and cleaned up on a failed start as `train`'s, `overwrite` as there)."""
    if not isinstance(configs, (list, tuple)) or not configs:
        raise ConfigError(f"configs={_kind(configs)} is not allowed: expected a non-empty list "
                          "of RunConfig")
    configs = resolve([as_config(c) for c in configs])
    _check_trace_every(trace_every)
    snapshot_epochs = _check_snapshot_epochs(snapshot_epochs)
    pop = Trainer(list(configs), data, progress=progress, preflight=_check_memory)
    stores = []
    try:
        for member in pop.members:
            tracer = Tracer(trace_every, snapshot_epochs) if traces else None
            store = None
            if out is not None:
                store = RunStore(Path(out) / run_id(member.config), tracer)
                try:
                    store.open(member.config, overwrite=overwrite)
                except BaseException:
                    for opened in stores:  # a failed start leaves nothing it created
                        opened.abandon()
                    raise
                stores.append(store)
            member.callbacks = [cb for cb in (tracer, store) if cb is not None]
        try:
            statuses = pop.run(should_stop)
        except BaseException as err:
            if pop.epoch == 0 and not isinstance(err, KeyboardInterrupt):
                for opened in stores:
                    opened.abandon()
            raise
        runs = []
        for member, status in zip(pop.members, statuses):
            store = next((cb for cb in member.callbacks if isinstance(cb, RunStore)), None)
            tracer = next((cb for cb in member.callbacks if isinstance(cb, Tracer)), None)
            if store is not None:
                history, activations = store.save(member, status,
                                                  checkpoint=status == "completed")
            else:
                history, activations = run_datasets(member, tracer, status)
            runs.append(Run(member.config, history, activations, member.net, status,
                            None if store is None else store.path))
        warn_outcome(runs, stacklevel=2)
        return runs
    finally:
        for store in stores:
            store.close()


def train_together(configs: list[RunConfig], *, out: str | Path | None = None,
                   **kwargs) -> list[Run]:
    """`configs` of one architecture as one population (`train_population`), or one run
    after the other where populations cannot take them (conv nets, rules without population
    support); each run in `out/<run id>` either way; `kwargs` are `train_population`'s."""
    if trains_as_population(configs[0]):
        return train_population(configs, out=out, **kwargs)
    if kwargs.get("data") is None:
        kwargs["data"] = run_data(configs[0], resolve_device(configs[0].device))
    return [train(c, out=None if out is None else Path(out) / run_id(c), **kwargs)
            for c in configs]
