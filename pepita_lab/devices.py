"""Device handling, in one place: the rest of the code follows its tensors' device."""

from __future__ import annotations

import torch

from .config import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for `cuda` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but no CUDA device is available "
                           "(use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r} is not allowed: expected auto, cpu or cuda")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (for honest timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
