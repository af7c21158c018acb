"""`RunConfig`: everything that defines a training run, each field declared with `setting`
(its doc, and what the rest of the lab derives from it)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .checks import ALLOWED, BUILTIN_RULES, checked_values
from .facts import CONV_FIELDS, DATASETS, ConfigError
from .names import unknown_name


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


@dataclass(frozen=True, init=False)
class RunConfig:
    """Everything that defines a training run. Defaults are the paper's MNIST settings.

    A value: checked when it is made (an invalid value, or an unknown field name, is a
    ConfigError naming the field), never changed afterwards (`replace` makes a changed copy).
    It remembers which fields were given (`RunConfig(rule="ff", lr=0.1)`: rule and lr, though
    0.1 is the default; `replace` adds the fields it changes; `dataclasses.replace` counts
    every field as given), so that `pepita_lab.resolve` puts a rule's own settings in the
    others only. Each field's
    `doc` (see `setting`) is its CLI help; `python -m pepita_lab.config` lists them."""

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

    def __init__(self, *args, **kwargs):
        names = [f.name for f in dataclasses.fields(self)]
        if len(args) > len(names):
            raise ConfigError(f"RunConfig takes at most {len(names)} values by position, "
                              f"got {len(args)}: name them (RunConfig(lr=0.01, ...))")
        given = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise unknown_name(name, "RunConfig", names)
            if name in given:
                raise ConfigError(f"{name} is given twice (by position and by name)")
            given[name] = value
        values = {f.name: given[f.name] if f.name in given else _default(f)
                  for f in dataclasses.fields(self)}
        for name, value in checked_values(values).items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_set", frozenset(given))

    @property
    def set_fields(self) -> frozenset:
        """The fields given when this config (or the configs it was made from by `replace`)
        was made: the user's choices, which a rule's own settings never override."""
        return self.__dict__.get("_set", frozenset())

    def replace(self, **changes) -> "RunConfig":
        """A copy with `changes` applied, checked as a new config is; the fields it changes
        count as given (`set_fields`)."""
        names = [f.name for f in dataclasses.fields(self)]
        for name in changes:
            if name not in names:
                raise unknown_name(name, "RunConfig.replace", names)
        new = RunConfig(**{**{n: getattr(self, n) for n in names}, **changes})
        object.__setattr__(new, "_set", self.set_fields | frozenset(changes))
        return new

    def with_set_fields(self, names) -> "RunConfig":
        """This config, with `names` the fields counted as given (`set_fields`)."""
        new = object.__new__(RunConfig)  # the same values, already checked
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "_set", frozenset(names))
        return new

    def __reduce__(self):  # pickled (Dask workers, copies) with the fields it was given
        return (_rebuild, (self.to_dict(), tuple(sorted(self.set_fields))))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
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
                      if f.metadata["added"] and getattr(self, f.name) == _default(f))
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    @property
    def n_layers(self) -> int:
        """Trained layers: conv layers (model "conv"), hidden layers and the output."""
        return (len(self.conv_channels) if self.model == "conv" else 0) + len(self.hidden) + 1

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict, *, check_rule: bool = True) -> "RunConfig":
        """The config of `d` (field: value; a stored run's config.json): every field it holds
        counts as given. An unknown name is a ConfigError naming the nearest field.
        `check_rule=False` takes a rule name that no registered rule has (a stored run of a
        rule of your own is read without registering the rule; training it needs the rule)."""
        names = [f.name for f in dataclasses.fields(cls)]
        for name in d:
            if name not in names:
                raise unknown_name(name, "RunConfig.from_dict", names)
        rule = d.get("rule")
        if check_rule or not isinstance(rule, str) or not rule or rule in BUILTIN_RULES:
            return cls(**d)
        config = cls(**{**d, "rule": "pepita"})
        object.__setattr__(config, "rule", rule)
        return config


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _rebuild(values: dict, given: tuple) -> RunConfig:
    # Unpickled (a Dask worker, a copy): checked where it was made. A worker may unpickle a
    # config of a rule registered by a module it imports only when the task starts.
    return RunConfig.from_dict(values, check_rule=False).with_set_fields(given)


def _field_help(f: dataclasses.Field) -> str:
    """One field in `help(RunConfig)`: name, type and default; its doc; what it allows."""
    import textwrap

    text = f"{f.metadata['doc']}. Allowed: {ALLOWED[f.name].describe()}."
    return (f"    {f.name}: {f.type} = {_default(f)!r}\n"
            + textwrap.fill(text, 88, initial_indent=" " * 8, subsequent_indent=" " * 8,
                           break_on_hyphens=False))


# help(RunConfig) lists every field with its doc, default and allowed values, made from the
# declarations when the class is made (so it never lags behind them)
RunConfig.__doc__ += "\n\n    Fields:\n\n" + "\n".join(
    _field_help(f) for f in dataclasses.fields(RunConfig)) + "\n"
