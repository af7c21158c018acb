"""Run configuration, presets and validation: the one place where bad input is refused.

The CLI, the Python API and the widgets all build a `RunConfig` and call `validate`, so an
error reads the same wherever it comes from: it names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

RULES = ("pepita", "bp", "fa", "dfa", "drtp")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic")
# Each dataset's images (C, H, W) and classes; synthetic data: flat vectors of the default size.
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32),
                "cifar100": (3, 32, 32), "synthetic": (1, 1, 32)}
N_CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10, "cifar100": 100, "synthetic": 10}
DEVICES = ("auto", "cpu", "cuda")
OUTPUT_ERRORS = ("modulated", "clean")
F_DISTRIBUTIONS = ("uniform", "gaussian")
MODELS = ("fc", "conv")
CONV_UPDATES = ("rule", "icml-code")
PRECISIONS = ("fp32", "tf32", "bf16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
# Speed settings: left out of a run's identity at their defaults, so run ids made before they
# existed stay the same.
SPEED_DEFAULTS = {"precision": "fp32", "compile": "off"}
CONV_FIELDS = ("conv_channels", "kernel_size", "pool", "conv_update")  # used by model "conv" only


class ConfigError(ValueError):
    """A config field holds a value that is not allowed."""


@dataclass
class RunConfig:
    """Everything that defines a training run. Defaults are the paper's MNIST settings."""

    rule: str = "pepita"
    dataset: str = "mnist"
    # "fc": fully connected layers `hidden`; "conv": conv layers `conv_channels` (k x k kernels,
    # no padding, ReLU, max-pool `pool`), then fully connected `hidden` (may be empty)
    model: str = "fc"
    hidden: tuple[int, ...] = (1024,)
    bias: bool = False
    conv_channels: tuple[int, ...] = (32,)
    kernel_size: int = 5
    pool: int = 2
    # conv layers' PEPITA update: "rule" (the rule's convolutional form) or "icml-code" (the
    # authors' conv code: opposite sign, mean over positions, divided by the batch twice)
    conv_update: str = "rule"
    epochs: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 64
    lr_milestones: tuple[int, ...] = (60, 90)
    lr_gamma: float = 0.1
    keep_prob: float = 0.9  # dropout keep probability on hidden layers (1 = no dropout)
    # PEPITA
    f_scale: float = 0.05
    f_distribution: str = "uniform"
    sign: float = 1.0  # modulation x + sign * F e (ICML code: +1, ICLR code: -1)
    output_error: str = "modulated"  # last layer's error: modulated pass or first ("clean")
    # FA / DFA / DRTP: scale of the fixed random feedback matrices (He-uniform times this)
    feedback_scale: float = 1.0
    # run
    seed: int = 0
    device: str = "auto"
    # products' precision: "fp32" (full, also cuDNN convolutions), "tf32" (TF32 products and
    # convolutions on CUDA), "bf16" (forward passes and updates' products under bf16 autocast,
    # weights and momentum in fp32); anything but fp32 changes results (docs/performance.md)
    precision: str = "fp32"
    # torch.compile of the rule's step: "off", or a torch.compile mode ("reduce-overhead" uses
    # CUDA graphs on a GPU)
    compile: str = "off"
    data_dir: str | None = None
    subset: int | None = None  # use only the first `subset` training samples
    download: bool = True
    eval_batch_size: int = 2000

    def replace(self, **changes) -> "RunConfig":
        """A copy with `changes` applied (validated)."""
        return validate(dataclasses.replace(self, **changes))

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
        skip = ("device", "data_dir", "download", "eval_batch_size")
        if self.model == "fc":
            skip += ("model",) + CONV_FIELDS
        skip += tuple(k for k, v in SPEED_DEFAULTS.items() if getattr(self, k) == v)
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
        return validate(cls(**d))


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
    """The config of preset `name` with `overrides` applied on top."""
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r} is unknown; allowed: {', '.join(PRESETS)}")
    return validate(RunConfig(**{**PRESETS[name], **overrides}))


def _fail(name: str, value, allowed: str):
    raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")


def _int(name, value, *, low=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            _fail(name, value, "expected an integer")
    if low is not None and value < low:
        _fail(name, value, f"expected an integer >= {low}")
    return value


def _float(name, value, *, low=None, high=None, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(name, value, "expected a number")
    value = float(value)
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
    return tuple(_int(name, v, low=low) for v in value)


def validate(cfg: RunConfig) -> RunConfig:
    """Check every field of `cfg`; return it normalised (tuples, floats) or raise ConfigError."""
    cfg.rule = _choice("rule", cfg.rule, RULES)
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
    cfg.kernel_size = _int("kernel_size", cfg.kernel_size, low=1)
    cfg.pool = _int("pool", cfg.pool, low=1)
    cfg.conv_update = _choice("conv_update", cfg.conv_update, CONV_UPDATES)
    if not isinstance(cfg.bias, bool):
        _fail("bias", cfg.bias, "expected true or false")
    cfg.epochs = _int("epochs", cfg.epochs, low=1)
    cfg.lr = _float("lr", cfg.lr, low=0.0, low_open=True)
    cfg.momentum = _float("momentum", cfg.momentum, low=0.0, high=1.0)
    cfg.batch_size = _int("batch_size", cfg.batch_size, low=1)
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
    cfg.seed = _int("seed", cfg.seed, low=0)
    cfg.device = _choice("device", cfg.device, DEVICES)
    cfg.precision = _choice("precision", cfg.precision, PRECISIONS)
    cfg.compile = _choice("compile", cfg.compile, COMPILE_MODES)
    if cfg.data_dir is not None and not isinstance(cfg.data_dir, str):
        cfg.data_dir = str(cfg.data_dir)
    cfg.subset = _int("subset", cfg.subset, low=1, allow_none=True)
    if not isinstance(cfg.download, bool):
        _fail("download", cfg.download, "expected true or false")
    cfg.eval_batch_size = _int("eval_batch_size", cfg.eval_batch_size, low=1)
    return cfg


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


__all__ = ["RunConfig", "ConfigError", "PRESETS", "preset", "validate", "RULES", "DATASETS",
           "IMAGE_SHAPES", "N_CLASSES", "MODELS", "CONV_UPDATES", "PRECISIONS", "COMPILE_MODES",
           "field_names"]
