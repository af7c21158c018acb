"""The deeper-net table answered fairly: every cell (variant x depth) at its own settings, found
by the lab's search on a validation split (`reproduce.search`), then trained long over seeds.

`run_searched` is the one resumable command (`pepita-lab reproduce deeper --search`): it works
through the searches, then the long runs (`long_run_order`), skipping what is finished (a long
run's folder whose history says completed or diverged, for exactly the config it should hold),
resuming what was interrupted from its last checkpoint (`pepita_lab.resume`: a killed process
loses at most the epoch in progress), and training the rest, a cell's seeds as one population
(`pepita_lab.grid` with run folders). Processes share the work by claiming items with file
locks (`claims/`), so two one-thread processes started with the same command split it; each
writes the tables from what is finished when it runs out of work (`searched_tables`).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import locks
from ..config import ConfigError, RunConfig
from ..records import run_id
from . import search
from .deeper import DEEPER_DEPTHS, DEEPER_VARIANTS, deeper_plan
from .state import (depth_of, epochs_done, long_configs, run_state, search_result,
                    variant_of_cell)

EPOCHS = 30  # the long runs; lr x0.1 after 18 and 27 (the paper's 60 and 90 of 100)
EPOCH_S = {1: 7.0, 2: 15.0, 3: 35.0}  # one thread, 1024 wide, 60000 samples: before measuring


@dataclass
class SearchedSpec:
    """What `run_searched` does: the cells (`depths` x `variants` on `dataset`, hidden layers of
    `width`), the search's budget per cell (the same for every cell) and the long runs
    (`epochs`, `seeds` for PEPITA's variants, `baseline_seeds` for BP, FA and FF)."""

    dataset: str = "mnist"
    depths: tuple = DEEPER_DEPTHS
    variants: tuple = tuple(DEEPER_VARIANTS)
    width: int = 1024
    epochs: int = EPOCHS
    seeds: int = 3
    baseline_seeds: int = 2
    candidates: int = search.CANDIDATES
    rungs: tuple = search.RUNGS
    keep: float = search.KEEP
    search_train: int = search.SEARCH_TRAIN
    search_val: int = search.SEARCH_VAL
    overrides: dict = field(default_factory=dict)  # data_dir, device, ...

    def __post_init__(self):
        self.depths, self.variants, self.rungs = (tuple(self.depths), tuple(self.variants),
                                                  tuple(self.rungs))
        if not self.rungs or list(self.rungs) != sorted(set(self.rungs)) or self.rungs[0] < 1:
            raise ConfigError(f"rungs={self.rungs!r} is not allowed: expected increasing epochs")
        for name in ("seeds", "baseline_seeds", "candidates", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed: expected >= 1")

    def cells(self) -> dict[str, RunConfig]:
        """Cell name `h<depth>-<variant>` -> its base config (seed 0), resolved as pl.train
        resolves it: the paper's settings, the rule's and the variant's own, the long runs'
        epochs and scaled milestones."""
        plan = deeper_plan(self.dataset, depths=self.depths, width=self.width, seeds=1,
                           baseline_seeds=1, variants=self.variants, epochs=self.epochs,
                           **self.overrides)
        return {name.rsplit("-s", 1)[0]: config for name, config in plan.runs}

    def seeds_of(self, config: RunConfig) -> list[int]:
        return list(range(self.seeds if config.rule == "pepita" else self.baseline_seeds))

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items() if k != "overrides"}


def ensure_search(spec: SearchedSpec, out: Path, cell: str, config: RunConfig,
                  log) -> dict:
    """The search result of `cell`: read if written, else searched now and written."""
    from ..files import atomic_write_bytes

    done = search_result(out, cell)
    budget = {"base": config.identity(), "candidates": spec.candidates,
              "rungs": list(spec.rungs), "keep": spec.keep,
              "split": [spec.search_train, spec.search_val]}
    if done is not None:
        if done["budget"] != json.loads(json.dumps(budget)):
            raise ConfigError(f"{out / 'search' / cell} holds a search of other settings: "
                              "choose a new --out (or rerun the command that made it)")
        return done
    start, cpu = time.perf_counter(), time.process_time()
    data, split = search.validation_split(search.training_data(config), spec.search_train,
                                          spec.search_val)
    found = search.search_cell(config, out / "search" / cell, data, n=spec.candidates,
                               rungs=spec.rungs, keep=spec.keep)
    result = {"cell": cell, "budget": budget, "split": split, **found}
    atomic_write_bytes(out / "search" / cell / "result.json",
                       json.dumps(result, indent=1).encode())
    log({"item": f"search {cell}", "depth": depth_of(cell),
         "wall_s": round(time.perf_counter() - start, 1),
         "cpu_s": round(time.process_time() - cpu, 1),
         "sample_epochs": spec.search_train * sum(
             spec.candidates * spec.keep ** i * e for i, e in enumerate(spec.rungs))})
    return result


def train_cell(out: Path, cell: str, configs: list[RunConfig], progress: bool) -> int:
    """Finish the long runs of a cell: partial ones resumed, fresh ones trained together as
    one population (a grid of seeds with run folders); returns the run-epochs trained."""
    import pepita_lab as pl

    folder = out / "runs" / cell
    paths = [folder / run_id(c) for c in configs]
    states = [run_state(p, c) for p, c in zip(paths, configs)]
    trained = 0
    for path, config, state in zip(paths, configs, states):
        if state == "partial":
            before = epochs_done(path)
            pl.resume(path, progress=progress)
            trained += epochs_done(path) - before
    fresh = [c for c, s in zip(configs, states) if s == "fresh"]
    if fresh:
        for path, state in zip(paths, states):
            if state == "fresh" and path.exists():
                shutil.rmtree(path)  # a stale or unfinished run without a checkpoint
        base = fresh[0]
        pl.grid(base, seeds=[c.seed for c in fresh], run_folders=folder, progress=progress)
        trained += sum(epochs_done(folder / run_id(c)) for c in fresh)
    return trained


def run_searched(spec: SearchedSpec, out: str | Path, *, progress: bool = True,
                 figures: bool = True, command: str = "", train: bool = True) -> list[Path]:
    """Run (or finish) the searches and the long runs of `spec` in `out`, sharing the work
    with any other process running the same command there; then write the tables and
    figures from what is finished (`searched_tables.write_searched`). `train=False` only
    writes them (from what is finished so far). Returns the files written."""
    from .searched_tables import write_searched

    out = Path(out)
    (out / "claims").mkdir(parents=True, exist_ok=True)
    cells = spec.cells()

    def log(entry):
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")

    def say(text):
        if progress:
            print(f"[deeper] {text}", flush=True)

    if command and train:
        from .. import __version__
        from ..records import git_revision, write_json

        write_json({"command": command, "pepita_lab_version": __version__,
                    "git_revision": git_revision(), "python": sys.version.split()[0]},
                   out / "made_by.json")
    bars = progress and sys.stderr.isatty()  # step bars on a terminal, not in a log file
    items = ([("search", c) for c in cells] + [("runs", c) for c in long_run_order(cells)]
             if train else [])
    waiting = []
    for kind, cell in items:
        if _item_done(spec, out, kind, cell, cells[cell]):
            continue
        if kind == "runs" and search_result(out, cell) is None and not _try(
                out, "search", cell, lambda: None):
            waiting.append((kind, cell))  # its search is running in another process
            continue
        _try(out, kind, cell, lambda: _work(spec, out, kind, cell, cells[cell], log, bars))
        say(progress_line(spec, out, cells))
    for kind, cell in waiting:
        _hold(out, "search", cell)  # wait for the other process's search, then go on
        _try(out, kind, cell, lambda: _work(spec, out, kind, cell, cells[cell], log, bars))
        say(progress_line(spec, out, cells))
    lock = locks.acquire(out / "claims" / "tables.lock")
    try:
        written = write_searched(spec, out, cells, figures=figures)
    finally:
        locks.release(lock)
    say(progress_line(spec, out, cells))
    return written


# Within a depth, the long runs of PEPITA and its baselines first, then the follow-up's
# options, FF last: the question is how close PEPITA's variants come to BP and FA.
LONG_RUN_ORDER = ("pepita", "pepita-minus", "bp", "fa", "pepita+wd+norm", "pepita+mirror",
                  "ff")


def long_run_order(cells) -> list[str]:
    """The cells' long runs in the order they are trained: deepest first (three hidden
    layers is the question the table answers), then `LONG_RUN_ORDER`."""
    def key(cell):
        variant = variant_of_cell(cell)
        rank = LONG_RUN_ORDER.index(variant) if variant in LONG_RUN_ORDER else len(LONG_RUN_ORDER)
        return -depth_of(cell), rank

    return sorted(cells, key=key)


def _work(spec, out, kind, cell, config, log, progress) -> None:
    if kind == "runs" and search_result(out, cell) is None:  # searched here, claimed
        lock = locks.acquire(out / "claims" / f"search-{cell}.lock")
        try:
            ensure_search(spec, out, cell, config, log)
        finally:
            locks.release(lock)
    result = ensure_search(spec, out, cell, config, log)
    if kind == "runs" and result["settings"] is not None:
        start, cpu = time.perf_counter(), time.process_time()
        trained = train_cell(out, cell, long_configs(spec, config, result["settings"]),
                             progress)
        log({"item": f"runs {cell}", "depth": depth_of(cell), "run_epochs": trained,
             "wall_s": round(time.perf_counter() - start, 1),
             "cpu_s": round(time.process_time() - cpu, 1)})


def _item_done(spec, out, kind, cell, config) -> bool:
    result = search_result(out, cell)
    if kind == "search" or result is None:
        return result is not None
    if result["settings"] is None:
        return True  # no stable setting: nothing to train
    configs = long_configs(spec, config, result["settings"])
    return all(run_state(out / "runs" / cell / run_id(c), c) == "done" for c in configs)


def _try(out: Path, kind: str, cell: str, work) -> bool:
    """Run `work` holding the claim of the item, unless another process holds it (False)."""
    import filelock

    try:
        lock = locks.acquire(out / "claims" / f"{kind}-{cell}.lock", timeout=0)
    except filelock.Timeout:
        return False
    try:
        work()
    finally:
        locks.release(lock)
    return True


def _hold(out: Path, kind: str, cell: str) -> None:
    locks.release(locks.acquire(out / "claims" / f"{kind}-{cell}.lock"))


def progress_line(spec: SearchedSpec, out: Path, cells: dict) -> str:
    """How many searches and long runs are finished, and about how long the rest takes at
    the seconds per epoch measured so far (`log.jsonl`; before any, `EPOCH_S`)."""
    rate = epoch_seconds(out)
    searched = runs_done = runs_total = 0
    left_s = 0.0
    for cell, config in cells.items():
        d = depth_of(cell)
        sec = rate.get(d, EPOCH_S.get(d, 35.0) * (spec.width / 1024) ** 2)
        result = search_result(out, cell)
        searched += result is not None
        n = len(spec.seeds_of(config))
        runs_total += n
        if result is None:
            left_s += sec * sum(spec.candidates * spec.keep ** i * e
                                for i, e in enumerate(spec.rungs)) * spec.search_train / 60000
            left_s += sec * n * spec.epochs
            continue
        if result["settings"] is None:
            runs_done += n
            continue
        for c in long_configs(spec, config, result["settings"]):
            path = out / "runs" / cell / run_id(c)
            if run_state(path, c) == "done":
                runs_done += 1
            else:
                left_s += sec * (spec.epochs - epochs_done(path))
    return (f"searches {searched}/{len(cells)}, long runs {runs_done}/{runs_total} done; "
            f"about {left_s / 3600:.1f} h of one core left")


def epoch_seconds(out: Path) -> dict[int, float]:
    """Measured seconds per epoch of 60000 samples by depth, from `log.jsonl`: the long
    runs' run-epochs, and the searches' candidate-epochs until a long run has finished."""
    total: dict[int, list[float]] = {}
    searched: dict[int, list[float]] = {}
    log = out / "log.jsonl"
    for line in log.read_text().splitlines() if log.exists() else []:
        entry = json.loads(line)
        epochs = entry.get("run_epochs") or 0
        t = total if epochs else searched
        epochs = epochs or entry.get("sample_epochs", 0) / 60000
        if epochs:
            t = t.setdefault(entry["depth"], [0.0, 0.0])
            t[0] += entry["wall_s"]
            t[1] += epochs
    total = {**searched, **total}
    return {d: s / n for d, (s, n) in total.items() if n}
