"""Run configuration, presets and validation: the one place where bad input is refused.

Each field is checked here (`check_fields`: types, ranges, choices), whatever builds the
`RunConfig` (the CLI, the Python API, the widgets); what needs the rules (the rule's name, the
options and nets it takes) is checked above them, by `pepita_lab.rules.validate`, the one door
into training, which calls `check_fields` first. An error reads the same wherever it comes from:
it names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic")
# Each dataset's images (C, H, W) and classes; synthetic data: flat vectors of the default size.
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32),
                "cifar100": (3, 32, 32), "synthetic": (1, 1, 32)}
N_CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10, "cifar100": 100, "synthetic": 10}
INPUT_SIZES = {name: math.prod(shape) for name, shape in IMAGE_SHAPES.items()}
# (training, test) samples of each dataset (synthetic: the default teacher task's)
SPLIT_SIZES = {"mnist": (60000, 10000), "fashion-mnist": (60000, 10000),
               "cifar10": (50000, 10000), "cifar100": (50000, 10000), "synthetic": (5000, 1000)}
DEVICES = ("auto", "cpu", "cuda")
OUTPUT_ERRORS = ("modulated", "clean")
F_DISTRIBUTIONS = ("uniform", "gaussian", "factorised")
INITS = ("default", "he-uniform", "he-normal", "torch")
MOMENTUM_STYLES = ("paper", "torch")
PEPITA_VARIANTS = ("modulated", "forward", "time-local")
TIME_LOCAL_MASKS = ("fresh", "shared")
MODELS = ("fc", "conv")
CONV_UPDATES = ("rule", "icml-code")
PRECISIONS = ("fp32", "tf32", "bf16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
CONV_FIELDS = ("conv_channels", "kernel_size", "pool", "conv_update")  # used by model "conv" only


# A run draws from generators seeded with seed, seed + 1 and seed + 2 (torch's seeds are
# 64-bit); a million epochs is beyond any run this lab makes (and catches 1e20 typos).
MAX_SEED, MAX_EPOCHS = 2**63 - 3, 10**6
MAX_INT = 2**63 - 1  # any integer setting: torch's int64


class ConfigError(ValueError):
    """A config field holds a value that is not allowed."""


def setting(default, doc: str, *, member: bool = False, identity: bool = True,
            join: str = ",", added: bool = False, rule_option: bool = False):
    """A `RunConfig` field and what the rest of the lab derives from it: `doc` is its help
    (CLI flags, docs), `member` whether population members may differ in it (they then train
    together), `identity` whether it changes what a run computes (then it is part of the run
    id and a coordinate of the run's records; not so for where it runs), `join` the separator
    of a tuple's values in a record's coordinate. `added`: a field added after pepita-lab
    0.2.2, left out of a run's identity at its default, so run ids made before it existed stay
    the same. `rule_option`: only rules that list it in their `options` take a value other
    than the default (`Rule.options`)."""
    factory = {"default_factory": lambda: default} if isinstance(default, list) else {
        "default": default}
    return dataclasses.field(**factory, metadata={
        "doc": doc, "member": member, "identity": identity, "join": join, "added": added,
        "rule_option": rule_option})


@dataclass
class RunConfig:
    """Everything that defines a training run. Defaults are the paper's MNIST settings. Each
    field's `doc` (see `setting`) is its CLI help; `python -m pepita_lab.config` lists them."""

    rule: str = setting("pepita", "learning rule, by its registered name")
    dataset: str = setting("mnist", "dataset: " + ", ".join(DATASETS))
    model: str = setting("fc", "fc: fully connected layers `hidden`; conv: conv layers "
                         "`conv_channels` (k x k kernels, no padding, ReLU, max-pool `pool`), "
                         "then fully connected `hidden` (may be empty)")
    hidden: tuple[int, ...] = setting((1024,), "fully connected hidden layer widths (none: a "
                                      "conv net straight to the output)", join="x")
    bias: bool = setting(False, "add biases to every layer")
    conv_channels: tuple[int, ...] = setting((32,), "filters of each conv layer (model conv)",
                                             join="x")
    kernel_size: int = setting(5, "conv kernel size (model conv)")
    pool: int = setting(2, "max-pool size after each conv layer (model conv)")
    conv_update: str = setting("rule", "conv layers' PEPITA update: rule (the rule's "
                               "convolutional form) or icml-code (the authors' conv code: "
                               "opposite sign, mean over positions, divided by the batch "
                               "twice; docs/conv.md)")
    epochs: int = setting(100, "training epochs")
    lr: float = setting(0.1, "learning rate", member=True)
    momentum: float = setting(0.9, "SGD momentum as the paper's code: v = m v + lr dW; W -= v")
    momentum_style: str = setting("paper", "paper: v = m v + lr dW; W -= v (the paper's code); "
                                  "torch: b = m b + dW; W -= lr b (torch.optim.SGD, the ICLR "
                                  "code; differs from paper only after an lr change)",
                                  added=True)
    weight_decay: float = setting(0.0, "weight decay: dW + weight_decay W in place of dW, "
                                  "biases included (ICLR 2024 PEPITA: 1e-4)", member=True,
                                  added=True)
    batch_size: int = setting(64, "training batch size")
    lr_milestones: tuple[int, ...] = setting((60, 90), "epochs after which lr is multiplied by "
                                             "lr_gamma", member=True)
    lr_gamma: float = setting(0.1, "lr factor at each milestone", member=True)
    keep_prob: float = setting(0.9, "dropout keep probability on hidden layers (1: no dropout)")
    f_scale: float = setting(0.05, "PEPITA: scale of F (std f_scale sqrt(2/d))", member=True)
    f_distribution: str = setting("uniform", "PEPITA: F's distribution: uniform, gaussian "
                                  "(same std) or factorised (F = B_1 ... B_L, B_l shaped like "
                                  "W_l^T, Gaussian, rescaled to the same std; ICLR 2024)",
                                  member=True)
    sign: float = setting(1.0, "PEPITA: modulation x + sign F e (ICML code: 1, ICLR code: -1)",
                          member=True)
    output_error: str = setting("modulated", "PEPITA: last layer's error, from the modulated "
                                "pass or the first (clean) pass")
    init: str = setting("default", "forward weights' init: default (he-uniform for fully "
                        "connected nets as the paper, torch for conv nets as its conv code), "
                        "he-uniform U(+-sqrt(6/fan_in)), he-normal N(0, 2/fan_in) (ICLR "
                        "2024), torch U(+-1/sqrt(fan_in))", added=True)
    normalize: bool = setting(False, "PEPITA: divide each hidden layer's output by its norm "
                              "over the batch (Frobenius norm of the (B, n) batch), in both "
                              "passes and at evaluation (ICLR 2024)", added=True,
                              rule_option=True)
    pepita_variant: str = setting("modulated", "PEPITA: modulated (the paper: presynaptic "
                                  "factors from the modulated pass), forward (from the clean "
                                  "pass), time-local (the clean pass's anti-Hebbian update "
                                  "applied before the modulated pass's Hebbian one; ICLR "
                                  "2024)", added=True, rule_option=True)
    time_local_masks: str = setting("fresh", "PEPITA time-local variant: the modulated pass's "
                                    "dropout masks, fresh (drawn again, as the ICLR code's "
                                    "mixed_tl) or shared (the clean pass's)", added=True,
                                    rule_option=True)
    weight_mirroring: bool = setting(False, "PEPITA: learn F = B_1 ... B_L by weight "
                                     "mirroring (needs f_distribution factorised; ICLR 2024)",
                                     added=True, rule_option=True)
    mirror_lr: float = setting(0.1, "weight mirroring: learning rate of the B_l (the ICLR "
                               "code's train.py default)", added=True)
    mirror_decay: float = setting(0.5, "weight mirroring: weight decay of the B_l (the ICLR "
                                  "code's train.py default)", added=True)
    mirror_noise: float = setting(0.1, "weight mirroring: std of the noise input",
                                  added=True)
    premirror_epochs: int = setting(1, "weight mirroring: first epochs that only mirror (the "
                                    "forward weights wait)", added=True)
    mirror_period: int = setting(1, "weight mirroring: after the pre-mirroring epochs, mirror "
                                 "during epochs e with (e + 1) % mirror_period == 0",
                                 added=True)
    streamed: bool = setting(False, "PEPITA: the streamed step: the clean pass once for the "
                             "error, then both passes layer by layer, each layer updated and "
                             "its activations dropped at once (less memory, the same weights; "
                             "docs/memory.md)", added=True, rule_option=True)
    ff_threshold: float = setting(1.0, "Forward-Forward: goodness threshold per unit (a "
                                  "layer's sum of squares is compared with threshold x "
                                  "units)", added=True, rule_option=True)
    feedback_scale: float = setting(1.0, "FA / DFA / DRTP: scale of the fixed random feedback "
                                    "matrices (He-uniform times this)", member=True)
    seed: int = setting(0, "seed of weights, F, feedback, data order and dropout", member=True)
    device: str = setting("auto", "auto (CUDA when present), cpu or cuda", identity=False)
    precision: str = setting("fp32", "products' precision: fp32 (full, also cuDNN "
                             "convolutions), tf32 (TF32 products and convolutions on CUDA), "
                             "bf16 (passes and updates' products under bf16 autocast, state "
                             "in fp32); anything but fp32 changes results "
                             "(docs/performance.md)", added=True)
    compile: str = setting("off", "torch.compile of the rule's step: off, default, "
                           "reduce-overhead (CUDA graphs on a GPU) or max-autotune",
                           added=True)
    data_dir: str | None = setting(None, "dataset folder (default $PEPITA_LAB_DATA, else "
                                   "./data)", identity=False)
    subset: int | None = setting(None, "train on the first N training samples only")
    download: bool = setting(True, "download missing datasets", identity=False)
    eval_batch_size: int = setting(2000, "chunk size of the test evaluation", identity=False)

    def replace(self, **changes) -> "RunConfig":
        """A copy with `changes` applied (its fields checked: `check_fields`)."""
        return check_fields(dataclasses.replace(self, **changes))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["lr_milestones"] = list(self.lr_milestones)
        d["conv_channels"] = list(self.conv_channels)
        return d

    def identity(self) -> dict:
        """The settings that change what a run computes (not where: device, data folder). A
        fully connected run leaves out the conv settings, so its identity (and run id) is what
        it was before conv nets existed."""
        skip = tuple(f.name for f in dataclasses.fields(self) if not f.metadata["identity"])
        if self.model == "fc":
            skip += ("model",) + CONV_FIELDS
        skip += tuple(f.name for f in dataclasses.fields(self)
                      if f.metadata["added"] and getattr(self, f.name) == field_default(f.name))
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    @property
    def n_layers(self) -> int:
        """Trained layers: conv layers (model "conv"), hidden layers and the output."""
        return (len(self.conv_channels) if self.model == "conv" else 0) + len(self.hidden) + 1

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; allowed: {sorted(known)}")
        return check_fields(cls(**d))


PRESETS: dict[str, dict] = {
    "paper-mnist": dict(dataset="mnist", hidden=(1024,), lr=0.1, batch_size=64, epochs=100,
                        lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
    "paper-fashion-mnist": dict(dataset="fashion-mnist", hidden=(1024,), lr=0.1, batch_size=64,
                                epochs=100, lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
    "paper-cifar10": dict(dataset="cifar10", hidden=(1024,), lr=0.01, batch_size=64, epochs=100,
                          lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
    # The paper does not state CIFAR-100's learning rate; 0.01 as for CIFAR-10 (docs/pepita.md).
    "paper-cifar100": dict(dataset="cifar100", hidden=(1024,), lr=0.01, batch_size=64, epochs=100,
                           lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
}
# The paper's conv net (the ICML code's Net1conv1fcXL): 32 filters 5x5, ReLU, max-pool 2, then
# the output layer; PyTorch default init, lr 0.01, batch 50, no dropout, no lr decay; the last
# layer learns from the first pass's error as in the ICML conv code. The conv layer learns by
# the rule's convolutional form, not the ICML code's scaling (docs/conv.md says why).
_PAPER_CONV = dict(model="conv", conv_channels=(32,), kernel_size=5, pool=2, hidden=(), lr=0.01,
                   batch_size=50, epochs=100, lr_milestones=(), keep_prob=1.0, f_scale=0.05,
                   output_error="clean", conv_update="rule")
PRESETS.update({f"{name}-conv": dict(_PAPER_CONV, dataset=PRESETS[name]["dataset"])
                for name in ("paper-mnist", "paper-fashion-mnist", "paper-cifar10",
                             "paper-cifar100")})


def preset(name: str, **overrides) -> RunConfig:
    """Preset `name` with `overrides` on top, alone (`pepita_lab.preset` adds the rule's own)."""
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r} is unknown; allowed: {', '.join(PRESETS)}")
    return check_fields(RunConfig(**{**PRESETS[name], **overrides}))


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


def _int_tuple(name, value, *, low):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        _fail(name, value, "expected a list of integers")
    return tuple(check_int(name, v, low=low) for v in value)


def check_fields(cfg: RunConfig) -> RunConfig:
    """Check every field of `cfg` on its own (types, ranges, choices); return it normalised
    (tuples, floats) or raise ConfigError. What needs the rules (the rule's name, the options
    and nets it takes) is checked by `pepita_lab.rules.validate`, the door into training, which
    calls this first."""
    if not isinstance(cfg.rule, str) or not cfg.rule:
        _fail("rule", cfg.rule, "expected a rule's name")
    cfg.dataset = _choice("dataset", cfg.dataset, DATASETS)
    cfg.model = _choice("model", cfg.model, MODELS)
    cfg.hidden = _int_tuple("hidden", cfg.hidden, low=1)
    if not cfg.hidden and cfg.model == "fc":
        _fail("hidden", cfg.hidden, "expected at least one hidden layer width (only "
              "model='conv' may go from its conv layers straight to the output)")
    cfg.conv_channels = _int_tuple("conv_channels", cfg.conv_channels, low=1)
    if not cfg.conv_channels and cfg.model == "conv":
        _fail("conv_channels", cfg.conv_channels, "expected at least one conv layer width "
              "for model='conv'")
    cfg.kernel_size = check_int("kernel_size", cfg.kernel_size, low=1)
    cfg.pool = check_int("pool", cfg.pool, low=1)
    cfg.conv_update = _choice("conv_update", cfg.conv_update, CONV_UPDATES)
    if not isinstance(cfg.bias, bool):
        _fail("bias", cfg.bias, "expected true or false")
    cfg.epochs = check_int("epochs", cfg.epochs, low=1, high=MAX_EPOCHS)
    cfg.lr = _float("lr", cfg.lr, low=0.0, low_open=True)
    cfg.momentum = _float("momentum", cfg.momentum, low=0.0, high=1.0)
    cfg.batch_size = check_int("batch_size", cfg.batch_size, low=1)
    cfg.lr_milestones = tuple(sorted(_int_tuple("lr_milestones", cfg.lr_milestones, low=1)))
    cfg.lr_gamma = _float("lr_gamma", cfg.lr_gamma, low=0.0, low_open=True)
    cfg.keep_prob = _float("keep_prob", cfg.keep_prob, low=0.0, high=1.0, low_open=True)
    cfg.f_scale = _float("f_scale", cfg.f_scale, low=0.0)
    cfg.f_distribution = _choice("f_distribution", cfg.f_distribution, F_DISTRIBUTIONS)
    cfg.sign = _float("sign", cfg.sign)
    if cfg.sign not in (1.0, -1.0):
        _fail("sign", cfg.sign, "expected 1 or -1")
    cfg.output_error = _choice("output_error", cfg.output_error, OUTPUT_ERRORS)
    cfg.feedback_scale = _float("feedback_scale", cfg.feedback_scale, low=0.0)
    cfg.seed = check_int("seed", cfg.seed, low=0, high=MAX_SEED)
    cfg.device = _choice("device", cfg.device, DEVICES)
    cfg.precision = _choice("precision", cfg.precision, PRECISIONS)
    cfg.compile = _choice("compile", cfg.compile, COMPILE_MODES)
    if cfg.data_dir is not None and not isinstance(cfg.data_dir, str):
        cfg.data_dir = str(cfg.data_dir)
    cfg.subset = check_int("subset", cfg.subset, low=1, allow_none=True)
    if not isinstance(cfg.download, bool):
        _fail("download", cfg.download, "expected true or false")
    cfg.eval_batch_size = check_int("eval_batch_size", cfg.eval_batch_size, low=1)
    cfg.momentum_style = _choice("momentum_style", cfg.momentum_style, MOMENTUM_STYLES)
    cfg.weight_decay = _float("weight_decay", cfg.weight_decay, low=0.0)
    cfg.init = _choice("init", cfg.init, INITS)
    if not isinstance(cfg.normalize, bool):
        _fail("normalize", cfg.normalize, "expected true or false")
    cfg.pepita_variant = _choice("pepita_variant", cfg.pepita_variant, PEPITA_VARIANTS)
    cfg.time_local_masks = _choice("time_local_masks", cfg.time_local_masks, TIME_LOCAL_MASKS)
    if not isinstance(cfg.weight_mirroring, bool):
        _fail("weight_mirroring", cfg.weight_mirroring, "expected true or false")
    cfg.mirror_lr = _float("mirror_lr", cfg.mirror_lr, low=0.0)
    cfg.mirror_decay = _float("mirror_decay", cfg.mirror_decay, low=0.0)
    cfg.mirror_noise = _float("mirror_noise", cfg.mirror_noise, low=0.0, low_open=True)
    cfg.premirror_epochs = check_int("premirror_epochs", cfg.premirror_epochs, low=0)
    cfg.mirror_period = check_int("mirror_period", cfg.mirror_period, low=1)
    if not isinstance(cfg.streamed, bool):
        _fail("streamed", cfg.streamed, "expected true or false")
    cfg.ff_threshold = _float("ff_threshold", cfg.ff_threshold, low=0.0)
    if cfg.model == "conv" and (cfg.normalize or cfg.f_distribution == "factorised"):
        name = "normalize" if cfg.normalize else "f_distribution"
        _fail(name, getattr(cfg, name), "fully connected nets only (model='fc')")
    if cfg.weight_mirroring and cfg.f_distribution != "factorised":
        _fail("weight_mirroring", True, "mirroring learns the factors of F = B_1 ... B_L: "
              "add f_distribution='factorised' (--f-distribution factorised)")
    return cfg


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


def field_default(name: str):
    """Field `name`'s default value."""
    return _DEFAULTS[name]


def field_doc(name: str) -> str:
    return _FIELDS[name].metadata["doc"]


def field_join(name: str) -> str:
    """The separator of a tuple field's values in a record's coordinate."""
    return _FIELDS[name].metadata["join"]


def field_kind(name: str) -> str:
    """The type of field `name` as the CLI and sweeps read it: "bool", "int", "float", "str",
    "ints" (a tuple of integers), "int?" / "str?" (may be None)."""
    return _KINDS[_FIELDS[name].type]


# Member fields: the settings population members may differ in (each member's own seed,
# initial F and feedback, learning-rate schedule and modulation sign); all others are shared.
MEMBER_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.metadata["member"])
# Identity fields: what changes a run's numbers; each is a coordinate of the run's records.
IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.metadata["identity"])
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_DEFAULTS = {
    f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
    for f in dataclasses.fields(RunConfig)}
_KINDS = {"bool": "bool", "int": "int", "float": "float", "str": "str",
          "tuple[int, ...]": "ints", "int | None": "int?", "str | None": "str?"}


def parse_field(name: str, text: str):
    """A command-line / sweep value of field `name` read as the field's type (widths as
    `256x128` or `256,128`; booleans as true/false/yes/no/1/0; `none` for optional fields);
    ConfigError naming the field otherwise. Values are checked by `check_fields` afterwards."""
    if name not in _FIELDS:
        raise ConfigError(f"config field {name!r} is unknown; allowed: "
                          f"{', '.join(field_names())}")
    kind, text = field_kind(name), str(text).strip()
    if kind.endswith("?") and text.lower() == "none":
        return None
    try:
        if kind == "ints":
            return tuple(int(v) for v in text.replace(",", "x").split("x") if v.strip())
        if kind == "bool":
            return {"true": True, "yes": True, "1": True, "false": False, "no": False,
                    "0": False}[text.lower()]
        if kind.startswith("int"):
            return int(text)
        if kind == "float":
            return float(text)
    except (ValueError, KeyError):
        expected = {"ints": "integers like 256x128", "bool": "true or false",
                    "float": "a number"}.get(kind, "an integer")
        raise ConfigError(f"{name}={text!r} is not allowed: expected {expected}") from None
    return text


__all__ = ["RunConfig", "ConfigError", "PRESETS", "preset", "check_fields", "DATASETS",
           "IMAGE_SHAPES", "N_CLASSES", "INPUT_SIZES", "SPLIT_SIZES", "MODELS", "CONV_UPDATES", "PRECISIONS", "COMPILE_MODES",
           "MEMBER_FIELDS", "IDENTITY_FIELDS", "field_names", "field_doc", "field_kind", "field_join",
           "field_default", "INITS", "MOMENTUM_STYLES", "PEPITA_VARIANTS",
           "check_int",
           "parse_field", "setting"]


if __name__ == "__main__":  # the fields and their docs
    for f in dataclasses.fields(RunConfig):
        print(f"{f.name} ({f.type}, default {getattr(RunConfig(), f.name)!r}): "
              f"{f.metadata['doc']}")
