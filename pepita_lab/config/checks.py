"""Each field checked on its own (`check_fields`: types, ranges, choices), whatever builds the
config; an error names the field, the value and what is allowed."""

from __future__ import annotations

import math

from .facts import (COMPILE_MODES, CONV_UPDATES, DATASETS, DEVICES, F_DISTRIBUTIONS, INITS,
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


def _int_tuple(name, value, *, low):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        _fail(name, value, "expected a list of integers")
    return tuple(check_int(name, v, low=low) for v in value)


def check_fields(cfg):
    """Check every field of `cfg` (a RunConfig) on its own (types, ranges, choices); return it
    normalised (tuples, floats) or raise ConfigError. What needs the rules (the rule's name,
    the options and nets it takes) is checked by `pepita_lab.rules.validate`, the door into
    training, which calls this first."""
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
