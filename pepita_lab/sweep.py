"""Sweeps: a grid (and random search) over config fields times seeds, packed into populations
and run in-process, on a local Dask cluster, or on any Dask scheduler, with the same results.

Points that share an architecture train together as one population (`train_population`; conv
nets one after the other); each pack of points is one task for the engine. Every finished point
is written at once to `OUT/points/<point id>.nc` (atomically), so a stopped sweep restarts
where it was; the whole sweep is assembled into `OUT/sweep.nc` with the swept fields as
dimensions. Optional successive halving stops hopeless points early and records where.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random as pyrandom
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from .config import (MAX_SEED, ConfigError, RunConfig, check_int, field_kind, field_names,
                     parse_field)
from .records import DamagedFileError, read_netcdf, write_json, write_netcdf

SPEC_FILE, RESULT_FILE, POINTS_DIR = "sweep.json", "sweep.nc", "points"


@dataclass
class SweepSpec:
    """What to sweep: `grid` (field -> values) times `seeds`, plus `n_random` points drawn
    from `random` (field -> [low, high] on a log scale, or a list of choices)."""

    base: RunConfig
    grid: dict[str, list] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    random: dict[str, list] = field(default_factory=dict)
    n_random: int = 0
    random_seed: int = 0
    pack_size: int = 16  # most points one task trains as one population
    halving_epochs: list[int] = field(default_factory=list)  # rungs of successive halving
    halving_keep: float = 0.5  # fraction of points continued at each rung
    threads: int = 1  # torch threads per task (the same everywhere, so results agree)

    def __post_init__(self):
        names = set(field_names())
        for k in list(self.grid) + list(self.random):
            if k not in names or k == "seed":
                raise ConfigError(f"sweep field {k!r} is not allowed: expected config fields "
                                  f"other than seed ({', '.join(sorted(names - {'seed'}))})")
        for k, values in self.grid.items():
            _check_values(f"grid {k}", values)
        _check_values("seeds", self.seeds)
        self.seeds = [check_int("seeds", s, low=0, high=MAX_SEED) for s in self.seeds]
        for k, spec in self.random.items():
            if _is_range(spec):
                if not 0 < spec[0] < spec[1]:
                    raise ConfigError(f"random {k}={spec[0]}:{spec[1]} is not allowed: a "
                                      "log-uniform range needs 0 < LOW < HIGH")
            else:
                _check_values(f"random {k}", spec)
        self.n_random = check_int("n_random", self.n_random, low=0)
        if self.random and not self.n_random:
            raise ConfigError("a random search needs the number of points: n_random (--n-random "
                              "N) >= 1")
        if self.n_random and not self.random:
            raise ConfigError(f"n_random={self.n_random} is not allowed without random ranges "
                              "(--random FIELD=LOW:HIGH)")
        self.pack_size = check_pack_size(self.pack_size)
        self.threads = check_threads(self.threads)
        self.random_seed = check_int("random_seed", self.random_seed, low=0)
        self.halving_keep = check_halving_keep(self.halving_keep)
        if not isinstance(self.halving_epochs, (list, tuple)):
            raise ConfigError(f"halving_epochs={self.halving_epochs!r} is not allowed: expected "
                              "a list of epochs")
        self.halving_epochs = [check_int("halving_epochs", e, low=1) for e in self.halving_epochs]
        if sorted(set(self.halving_epochs)) != list(self.halving_epochs) or any(
                e >= self.base.epochs for e in self.halving_epochs):
            raise ConfigError(f"halving_epochs={self.halving_epochs!r} is not allowed: "
                              f"expected increasing epochs between 1 and {self.base.epochs - 1}")
        if self.halving_epochs and "epochs" in self.swept:
            raise ConfigError("halving_epochs cannot be used while epochs is swept: the rungs "
                              "need one length for every point")

    @property
    def swept(self) -> list[str]:
        return list(self.grid) + [k for k in self.random if k not in self.grid]

    def points(self) -> list[RunConfig]:
        """Every point, validated: the grid times seeds, then the random points."""
        rows = [dict(zip(self.grid, v)) for v in itertools.product(*self.grid.values())]
        rng = pyrandom.Random(self.random_seed)
        for _ in range(self.n_random):
            rows.append({k: _draw(rng, v, integer=field_kind(k).startswith("int"))
                         for k, v in self.random.items()})
        return [self.base.replace(**row, seed=s) for row in rows for s in self.seeds]

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("grid", "seeds", "random", "n_random", "random_seed",
                                          "pack_size", "halving_epochs", "halving_keep",
                                          "threads")}
        return {"base": self.base.to_dict(), **json.loads(json.dumps(d))}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepSpec":
        d = dict(d)
        base = RunConfig.from_dict(d.pop("base", {}))
        return cls(base=base, **d)


def check_pack_size(value, name: str = "pack_size") -> int:
    """The most points one task trains together: an integer >= 1, or ConfigError naming
    `name` (the field, a flag or a spec file's key)."""
    return check_int(name, value, low=1)


def check_threads(value, name: str = "threads") -> int:
    """Torch threads per task: an integer >= 1, or ConfigError naming `name`."""
    return check_int(name, value, low=1)


def check_halving_keep(value, name: str = "halving_keep") -> float:
    """The fraction of points successive halving keeps at each rung: a number strictly between
    0 and 1, or ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{name}={value!r} is not allowed: expected a fraction between 0 and "
                          "1, both excluded (the share of points kept at each rung)")
    return float(value)


def _is_range(spec) -> bool:
    return (isinstance(spec, (list, tuple)) and len(spec) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec))


def _draw(rng, spec, integer: bool = False):
    """A log-uniform draw from the range [low, high] (rounded for integer fields), or one of
    a list of choices."""
    if _is_range(spec):
        lo, hi = spec
        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return round(value) if integer else value
    return rng.choice(spec)


def _check_values(what: str, values) -> None:
    """ConfigError unless `values` is a non-empty list without repeats."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{what}={values!r} is not allowed: expected a non-empty list of "
                          "values")
    if len({json.dumps(v, sort_keys=True, default=str) for v in values}) < len(values):
        raise ConfigError(f"{what}={list(values)!r} is not allowed: a value is repeated")


SPEC_KEYS = ("base", "grid", "seeds", "random", "n_random", "random_seed", "pack_size",
             "halving_epochs", "halving_keep", "threads")


def load_spec_file(path: str | Path) -> dict:
    """A sweep described in YAML or TOML: `base` (config fields), `grid`, `seeds`, `random`,
    `n_random`, ... (the fields of `SweepSpec`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"spec={str(path)!r} cannot be read ({err})") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            doc = tomllib.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text) or {}
    except Exception as err:  # yaml.YAMLError, tomllib.TOMLDecodeError
        kind = "TOML" if path.suffix == ".toml" else "YAML"
        first = " ".join(str(err).split())[:160]
        raise ConfigError(f"spec={str(path)!r} is not valid {kind}: {first}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"spec={str(path)!r} holds a {type(doc).__name__}: expected a "
                          f"mapping of {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(doc) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"spec={str(path)!r}: unknown key(s) {unknown}; allowed: "
                          f"{', '.join(SPEC_KEYS)}")
    for key in ("base", "grid", "random"):
        if not isinstance(doc.get(key, {}), dict):
            raise ConfigError(f"spec={str(path)!r}: {key} must be a mapping of config fields, "
                              f"not {doc[key]!r:.60}")
    for key, check in (("pack_size", check_pack_size), ("threads", check_threads),
                       ("halving_keep", check_halving_keep)):
        if key in doc:
            check(doc[key], f"spec={str(path)!r}: {key}")
    return doc


def point_id(config: RunConfig) -> str:
    return hashlib.sha1(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:12]


def run_pack(configs: list[RunConfig], threads: int = 1) -> list[xr.Dataset]:
    """One task: train `configs` as one population (conv nets one after the other); their
    histories. Runs on a worker."""
    import torch

    from .api import train_together

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runs = train_together(configs, progress=False)
    finally:
        torch.set_num_threads(before)
    return [r.history for r in runs]


def packs(configs: list[RunConfig], pack_size: int, n_workers: int = 1) -> list[list[RunConfig]]:
    """Points grouped by architecture, each group cut into packs, enough to keep every worker
    busy and at most `pack_size` points each."""
    from .training import shared_settings

    groups: dict[str, list[RunConfig]] = {}
    for c in configs:
        groups.setdefault(repr(sorted(shared_settings(c).items())), []).append(c)
    out = []
    for group in groups.values():
        n = max(math.ceil(len(group) / pack_size), min(n_workers, len(group)))
        size = math.ceil(len(group) / n)
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


class Engine:
    """Where packs run: in this process, on a local Dask cluster, or on a scheduler."""

    def __init__(self, workers: int = 0, scheduler: str | None = None):
        self.client = self.cluster = None
        self.workers = max(workers, 1)
        if scheduler or workers:
            from dask.distributed import Client, LocalCluster

            if scheduler:
                self.client = Client(scheduler)
            else:
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=":0")
                self.client = Client(self.cluster)
            self.workers = max(len(self.client.scheduler_info()["workers"]), 1)

    @property
    def dashboard(self) -> str | None:
        return None if self.client is None else self.client.dashboard_link

    def map(self, tasks: list[list[RunConfig]], threads: int):
        """Yield (pack, histories) as packs finish."""
        if self.client is None:
            for pack in tasks:
                yield pack, run_pack(pack, threads)
            return
        from dask.distributed import as_completed

        futures = {self.client.submit(run_pack, pack, threads, pure=False, retries=3): pack
                   for pack in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


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
    from .data import prepare_dataset

    for dataset, data_dir, download in sorted({(c.dataset, c.data_dir, c.download)
                                               for c in points if c.dataset != "synthetic"},
                                              key=repr):
        prepare_dataset(dataset, data_dir, download=download)


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


def parse_assignments(items: list[str], kind: str) -> dict[str, list]:
    """`FIELD=V1,V2` (grid) or `FIELD=LOW:HIGH` / `FIELD=A,B` (random) to a dict."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{kind}={item!r} is not allowed: expected FIELD=VALUES")
        name, values = item.split("=", 1)
        name = name.strip().replace("-", "_")
        if name not in field_names():
            raise ConfigError(f"{kind} field {name!r} is unknown; allowed: "
                              f"{', '.join(field_names())}")
        try:
            if kind == "random" and ":" in values:
                lo, hi = values.split(":")
                out[name] = [float(lo), float(hi)]
            else:
                sep = ";" if field_kind(name) == "ints" else ","
                out[name] = [parse_field(name, v) for v in values.split(sep)]
        except ConfigError:
            raise
        except ValueError:
            raise ConfigError(f"{kind} {item!r}: a value of {name} is not valid") from None
    return out


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
    from .analysis import final_values

    spec = json.loads(ds.attrs.get("sweep", "{}"))
    df = final_values(flatten(ds), metric)
    by = [k for k in list(spec.get("grid", {})) + list(spec.get("random", {})) if k in df]
    if not by:  # seeds only: one point, over its seeds
        by = ["rule"]
    table = df.groupby(by)[metric].agg(["mean", "std", "count"]).reset_index()
    return table.sort_values("mean", ascending=False).head(n)
