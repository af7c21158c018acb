"""Facts the settings are checked against: the datasets (shapes, classes, split sizes), each
choice field's allowed values, the integer limits; and `ConfigError`."""

from __future__ import annotations

import math


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
