"""What a sweep is: its base config, grid, seeds, random draws, packing and halving
(`SweepSpec`), read from flags or a spec file and checked before anything runs."""

from __future__ import annotations

import itertools
import json
import math
import random as pyrandom
from dataclasses import dataclass, field
from pathlib import Path


from ..config import (MAX_SEED, ConfigError, RunConfig, check_int, field_kind, field_names,
                      parse_field, unknown_field)


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
            if k == "seed":
                raise ConfigError("seed is not swept as a field: give the seeds as seeds "
                                  "(--seed 0 1 on the command line)")
            if k not in names:
                raise unknown_field(k, "a sweep")
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
        """Every point, resolved for training (`rules.resolve`, as `pepita_lab.train`
        resolves it): the grid times seeds, then the random points."""
        rows = [dict(zip(self.grid, v)) for v in itertools.product(*self.grid.values())]
        rng = pyrandom.Random(self.random_seed)
        for _ in range(self.n_random):
            rows.append({k: _draw(rng, v, integer=field_kind(k).startswith("int"))
                         for k, v in self.random.items()})
        from ..rules.validation import resolve  # the one door: as pl.train and the CLI

        return [resolve(self.base.replace(**row, seed=s)) for row in rows for s in self.seeds]

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


def parse_assignments(items: list[str], kind: str) -> dict[str, list]:
    """`FIELD=V1,V2` (grid) or `FIELD=LOW:HIGH` / `FIELD=A,B` (random) to a dict."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{kind}={item!r} is not allowed: expected FIELD=VALUES")
        name, values = item.split("=", 1)
        name = name.strip().replace("-", "_")
        if name not in field_names():
            raise unknown_field(name, f"--{kind}")
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
