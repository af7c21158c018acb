"""Pre-flight checks: what a run needs, refused before anything is loaded or written.

`memory_estimate` models the bytes a run of a config takes on its device (from the rules' cost
models); `check_memory` refuses a run that cannot fit, naming the settings to change.
"""

from __future__ import annotations

import psutil

from .analysis import _conv_layers, conv_step_cost, step_cost
from .config import IMAGE_SHAPES, INPUT_SIZES, N_CLASSES, SPLIT_SIZES, ConfigError, RunConfig
from .devices import resolve_device

def memory_estimate(config: RunConfig) -> dict[str, int]:
    """Bytes a run of `config` needs on its device (float32), by part: the dataset as tensors,
    the trained tensors with their momentum and the fixed feedback matrices, a training step's
    activations (`step_cost` or `conv_step_cost`, doubled for the temporaries around it) and an
    evaluation chunk. A conv net whose kernels do not fit its images counts as its fully
    connected layers only (building it refuses it with a clear message)."""
    d, C = INPUT_SIZES[config.dataset], N_CLASSES[config.dataset]
    n_train, n_test = SPLIT_SIZES[config.dataset]
    n_train = min(n_train, config.subset or n_train)
    B, conv = config.batch_size, None
    options = {"streamed": True} if config.streamed else {}
    if config.model == "conv":
        conv = (IMAGE_SHAPES[config.dataset], config.conv_channels, config.kernel_size,
                config.pool, config.hidden)
        try:
            _, units, per_layer = _conv_layers(*conv, C)
        except ValueError:  # kernels that do not fit the images
            conv = None
    if conv is None:
        sizes = [d, *config.hidden, C]
        units, per_layer = sizes[1:], [a * b for a, b in zip(sizes, sizes[1:])]
        step = step_cost(config.rule, sizes, B, **options).activation_bytes
    else:
        step = conv_step_cost(config.rule, *conv, C, B, **options).activation_bytes
    return {
        "data": 4 * (n_train + n_test) * (d + 2),
        "weights": 4 * (3 * sum(per_layer) + d * C),  # W, momentum, feedback (<= W's size), F
        "step": 2 * step,
        "evaluation": 4 * 2 * config.eval_batch_size * (d + sum(units)),
    }


def available_memory(device) -> int:
    """Bytes free on `device`: CUDA's free memory, or the host's available memory."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def check_memory(config: RunConfig) -> None:
    """Refuse, before anything is loaded, a run that cannot fit in its device's memory."""
    device = resolve_device(config.device)
    parts = memory_estimate(config)
    need, free = sum(parts.values()), available_memory(device)
    if need > free:
        detail = ", ".join(f"{k} {v / 2**30:.2f}" for k, v in parts.items())
        conv = (f"conv_channels={list(config.conv_channels)!r}, " if config.model == "conv"
                else "")
        raise ConfigError(f"{conv}hidden={list(config.hidden)!r} with batch_size="
                          f"{config.batch_size} needs about {need / 2**30:.1f} GiB ({detail}) "
                          f"but {device.type} has {free / 2**30:.1f} GiB available: use "
                          "narrower or fewer layers (or a smaller batch)")
