"""Each field's allowed values declared (`ALLOWED`) and checked (`checked_values`: types,
ranges, choices, and the fields that need each other), whatever builds the config; an error
names the field, the value and what is allowed. Checking never changes what it is given."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .facts import (COMPILE_MODES, CONV_UPDATES, DATASETS, DEVICES, F_DISTRIBUTIONS,
                    IMAGE_SHAPES, INITS,
                    MAX_EPOCHS, MAX_INT, MAX_SEED, MODELS, MOMENTUM_STYLES, OUTPUT_ERRORS,
                    PEPITA_VARIANTS, PRECISIONS, TIME_LOCAL_MASKS, ConfigError)


def _fail(name: str, value, allowed: str):
    raise ConfigError(f"{name}={_shown(value)} is not allowed: {allowed}")


def _shown(value) -> str:
    """`repr(value)`, but an integer too long to read (or to print: Python refuses ints of
    more than 4300 digits) as its number of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        digits = int(math.log10(abs(value))) + 1
        return f"{'-' if value < 0 else ''}<an integer of {digits} digits>"
    return repr(value)


def check_int(name, value, *, low=None, high=None, allow_none=False):
    """`value` as an integer (a float with an integer value is taken) within [low, high], or
    ConfigError naming `name`; the one integer check of configs and sweep specs."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            _fail(name, value, "expected an integer")
    if low is not None and value < low:
        _fail(name, value, f"expected an integer >= {low}")
    high = MAX_INT if high is None else high  # beyond: overflows torch and float arithmetic
    if value > high:
        _fail(name, value, f"expected an integer <= {high}")
    return value


def _float(name, value, *, low=None, high=None, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(name, value, "expected a number")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float range (10**400)
        _fail(name, value, "expected a finite number")
    if not math.isfinite(value):
        _fail(name, value, "expected a finite number")
    if low is not None and (value <= low if low_open else value < low):
        _fail(name, value, f"expected a number {'>' if low_open else '>='} {low}")
    if high is not None and value > high:
        _fail(name, value, f"expected a number <= {high}")
    return value


def _choice(name, value, allowed):
    if value not in allowed:
        _fail(name, value, f"expected one of {', '.join(map(str, allowed))}")
    return value


BUILTIN_RULES = ("pepita", "bp", "fa", "dfa", "drtp", "ff")


def rule_names() -> list[str]:
    """The rules a config may name: the built-in ones, those registered in this process
    (`pepita_lab.register_rule`; read from the registry only if it is loaded, since the config
    layer imports no rule) and those of installed packages' `pepita_lab.rules` entry points."""
    import sys
    from importlib.metadata import entry_points

    names = set(BUILTIN_RULES)
    rules = sys.modules.get("pepita_lab.rules")
    if rules is not None and hasattr(rules, "rule_names"):
        names.update(rules.rule_names())
    names.update(ep.name for ep in entry_points(group="pepita_lab.rules"))
    return sorted(names)


def _known_rule(name: str, value: str) -> str:
    if value in BUILTIN_RULES:
        return value
    names = rule_names()
    if value not in names:
        from .names import nearest

        guess = nearest(value, names)
        hint = f"did you mean {guess!r}? " if guess is not None and guess != value else ""
        _fail(name, value, f"{hint}expected one of {', '.join(names)} (a rule of your own: "
                           "pepita_lab.register_rule before making the config, or an entry "
                           "point; docs/adding-a-rule.md)")
    return value


def _int_tuple(name, value, *, low):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        _fail(name, value, "expected a list of integers")
    return tuple(check_int(name, v, low=low) for v in value)


@dataclass(frozen=True)
class Allowed:
    """What a field takes: `kind` "name" (a non-empty string: a rule's name, checked by
    `rules.resolve`), "choice" (one of `choices`), "bool", "int" / "float" (within `low` ..
    `high`, `low` excluded if `low_open`; a float among `choices` if given), "ints" (a list
    of integers >= `low`), "path" (any path, kept as text); `none`: None is allowed too."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple = ()
    none: bool = False

    def check(self, name: str, value):
        """`value` normalised (tuples, floats), or ConfigError naming `name`."""
        if value is None and self.none:
            return None
        if self.kind == "name":
            if not isinstance(value, str) or not value:
                _fail(name, value, "expected a rule's name")
            return _known_rule(name, value)
        if self.kind == "choice":
            return _choice(name, value, self.choices)
        if self.kind == "bool":
            if not isinstance(value, bool):
                _fail(name, value, "expected true or false")
            return value
        if self.kind == "int":
            return check_int(name, value, low=self.low, high=self.high)
        if self.kind == "ints":
            return _int_tuple(name, value, low=self.low)
        if self.kind == "float":
            value = _float(name, value, low=self.low, high=self.high, low_open=self.low_open)
            if self.choices and value not in self.choices:
                _fail(name, value, f"expected {' or '.join(f'{c:g}' for c in self.choices)}")
            return value
        return value if value is None or isinstance(value, str) else str(value)  # a path

    def describe(self) -> str:
        """What is allowed, in words (`help(RunConfig)`)."""
        none = " or None" if self.none else ""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices) + none
        if self.kind in ("int", "float", "ints") and self.choices:
            return " or ".join(f"{c:g}" for c in self.choices)
        if self.kind in ("int", "float", "ints"):
            what = {"int": "an integer", "float": "a number", "ints": "integers"}[self.kind]
            bounds = [f"{'>' if self.low_open else '>='} {self.low}"] if self.low is not None \
                else []
            bounds += [f"<= {self.high}"] if self.high is not None else []
            return (f"{what} {' and '.join(bounds)}" if bounds else what) + none
        return {"bool": "true or false", "name": "a registered rule's name",
                "path": "a folder"}[self.kind] + none


_NUMBER = Allowed("float", low=0.0)  # any number >= 0
_POSITIVE = Allowed("float", low=0.0, low_open=True)


# Every field's declared values: `checked_values` checks them, `help(RunConfig)` says them,
# and the tests draw invalid values from them (a field without an entry is refused there).
ALLOWED: dict[str, Allowed] = {
    "rule": Allowed("name"), "dataset": Allowed("choice", choices=DATASETS),
    "model": Allowed("choice", choices=MODELS), "hidden": Allowed("ints", low=1),
    "bias": Allowed("bool"), "conv_channels": Allowed("ints", low=1),
    "kernel_size": Allowed("int", low=1), "pool": Allowed("int", low=1),
    "conv_update": Allowed("choice", choices=CONV_UPDATES),
    "epochs": Allowed("int", low=1, high=MAX_EPOCHS), "lr": _POSITIVE,
    "momentum": Allowed("float", low=0.0, high=1.0),
    "momentum_style": Allowed("choice", choices=MOMENTUM_STYLES), "weight_decay": _NUMBER,
    "batch_size": Allowed("int", low=1), "lr_milestones": Allowed("ints", low=1),
    "lr_gamma": _POSITIVE, "keep_prob": Allowed("float", low=0.0, high=1.0, low_open=True),
    "f_scale": _NUMBER, "f_distribution": Allowed("choice", choices=F_DISTRIBUTIONS),
    "sign": Allowed("float", choices=(1.0, -1.0)),
    "output_error": Allowed("choice", choices=OUTPUT_ERRORS),
    "init": Allowed("choice", choices=INITS), "normalize": Allowed("bool"),
    "pepita_variant": Allowed("choice", choices=PEPITA_VARIANTS),
    "time_local_masks": Allowed("choice", choices=TIME_LOCAL_MASKS),
    "weight_mirroring": Allowed("bool"), "mirror_lr": _NUMBER, "mirror_decay": _NUMBER,
    "mirror_noise": _POSITIVE, "premirror_epochs": Allowed("int", low=0),
    "mirror_period": Allowed("int", low=1), "streamed": Allowed("bool"),
    "ff_threshold": _NUMBER, "feedback_scale": _NUMBER,
    "seed": Allowed("int", low=0, high=MAX_SEED), "device": Allowed("choice", choices=DEVICES),
    "precision": Allowed("choice", choices=PRECISIONS),
    "compile": Allowed("choice", choices=COMPILE_MODES), "data_dir": Allowed("path", none=True),
    "subset": Allowed("int", low=1, none=True), "download": Allowed("bool"),
    "eval_batch_size": Allowed("int", low=1),
}


def checked_values(values: dict) -> dict:
    """The fields `values` (field: value, every field) checked on their own (`ALLOWED`) and
    together (conv maps that shrink to nothing, options that need each other): a new dict,
    normalised (tuples, floats), or ConfigError naming the field. `values` is not changed.
    What needs the rules (the rule's name, the options and nets it takes) is checked by
    `pepita_lab.rules.resolve`."""
    v = dict(values)
    for name, allowed in ALLOWED.items():
        v[name] = allowed.check(name, v[name])
    v["lr_milestones"] = tuple(sorted(v["lr_milestones"]))
    if not v["hidden"] and v["model"] == "fc":
        _fail("hidden", v["hidden"], "expected at least one hidden layer width (only "
              "model='conv' may go from its conv layers straight to the output)")
    if not v["conv_channels"] and v["model"] == "conv":
        _fail("conv_channels", v["conv_channels"], "expected at least one conv layer width "
              "for model='conv'")
    if v["model"] == "conv" and (v["normalize"] or v["f_distribution"] == "factorised"):
        name = "normalize" if v["normalize"] else "f_distribution"
        _fail(name, v[name], "fully connected nets only (model='fc')")
    if v["weight_mirroring"] and v["f_distribution"] != "factorised":
        _fail("weight_mirroring", True, "mirroring learns the factors of F = B_1 ... B_L: "
              "add f_distribution='factorised' (--f-distribution factorised)")
    _check_conv_maps(v)
    return v


def _check_conv_maps(v: dict) -> None:
    """A conv net whose kernels and pools shrink the dataset's images below one pixel is
    refused (stride 1, no padding, as `nets.conv_shapes`). Synthetic data has no images of
    its own (your own images come as `data`: `nets.conv_shapes` checks them)."""
    if v["model"] != "conv" or v["dataset"] == "synthetic":
        return
    C, H, W = IMAGE_SHAPES[v["dataset"]]
    k, pool = v["kernel_size"], v["pool"]
    h, w = H, W
    for i, _ in enumerate(v["conv_channels"]):
        h, w = h - k + 1, w - k + 1
        if min(h, w) < 1 or min(h // pool, w // pool) < 1:
            raise ConfigError(
                f"conv_channels={list(v['conv_channels'])!r} with kernel_size={k} and "
                f"pool={pool} shrinks the {H}x{W} images of {v['dataset']} below one pixel at "
                f"conv layer {i + 1}: use fewer conv layers, a smaller kernel or pool")
        h, w = h // pool, w // pool


def check_fields(cfg):
    """`cfg` (a RunConfig) if its fields pass `checked_values`, else ConfigError; `cfg` is
    never changed (a RunConfig is checked and normalised when it is made)."""
    import dataclasses

    checked_values({f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
    return cfg
