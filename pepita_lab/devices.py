"""Device handling, in one place: the rest of the code follows its tensors' device."""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager, nullcontext
from typing import Callable

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


_MALLOC_TUNED: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MiB for reuse instead of handing them
    back to the OS; returns whether that is in effect (False without glibc). Activations
    allocated afresh every step (MiBs for conv maps and large batches) otherwise cost up to
    thousands of page faults a step: measured on the CPU, a step of the paper's MNIST conv net
    went from about 15 ms (4400 faults) to about 6 ms (none), and the conv layer alone from
    1.4-1.8 ms (340-500 faults) to 0.65 ms (docs/performance.md). Process-wide, done once;
    the trainers and `pepita-lab bench` call it on the CPU. The cost: up to 1 GiB of freed
    heap stays with the process."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            # M_MMAP_THRESHOLD: blocks below 32 MiB come from the heap; M_TRIM_THRESHOLD:
            # keep up to 1 GiB of free heap. mallopt returns 1 on success.
            mmap_set = libc.mallopt(-3, 32 << 20) == 1
            trim_set = libc.mallopt(-1, 1 << 30) == 1
            _MALLOC_TUNED = mmap_set and trim_set
        except (OSError, AttributeError):
            _MALLOC_TUNED = False
    return _MALLOC_TUNED


# ---------------------------------------------------------------- speed settings

@contextmanager
def precision(name: str, device: torch.device):
    """Run the block's products at `name` precision (RunConfig.precision), then restore the
    backends' flags: "fp32" full float32 products and cuDNN convolutions (PyTorch's own default
    lets cuDNN convolutions use TF32); "tf32" TF32 products and convolutions on CUDA (no effect
    on CPUs without TF32); "bf16" also bf16 autocast on `device` (forward products in bf16)."""
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    saved = [f.fp32_precision for f in flags]
    for f in flags:
        f.fp32_precision = "tf32" if name == "tf32" else "ieee"
    try:
        with (torch.autocast(device.type, dtype=torch.bfloat16) if name == "bf16"
              else nullcontext()):
            yield
    finally:
        for f, old in zip(flags, saved):
            f.fp32_precision = old


def _own_kernel_cache() -> None:
    """Under `ATEN_CPU_CAPABILITY` (PyTorch's CPU kernels limited to a set, say "default"),
    torch.compile's kernels go to a cache of their own: inductor's cache key leaves that
    setting out, so a kernel compiled for AVX2 would be found again and fail to build against
    the scalar headers. A cache folder the user chose (TORCHINDUCTOR_CACHE_DIR) is kept."""
    capability = os.environ.get("ATEN_CPU_CAPABILITY")
    if capability and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{default_cache_dir()}-{capability}"


def fast_step(fn: Callable, precision_name: str, compile_mode: str,
              device: torch.device) -> Callable:
    """`fn` (a rule's factor function) under `precision`, compiled with `torch.compile` unless
    `compile_mode` is "off" ("reduce-overhead" replays CUDA graphs on a GPU); its factors come
    back in float32, so the momentum update and the traces stay in float32 whatever the
    precision. Compiling takes tens of seconds at the first step and at each new batch size.
    With CUDA graphs the factors live in the graph's memory: use them before the next step."""
    if compile_mode != "off":
        _own_kernel_cache()
    if compile_mode == "off" and precision_name != "bf16" and device.type != "cuda":
        return fn  # `precision` sets only CUDA's flags: nothing to do here
    run = fn if compile_mode == "off" else torch.compile(fn, mode=compile_mode, dynamic=False)
    graphs = compile_mode == "reduce-overhead" and device.type == "cuda"

    def step(*args, **kwargs):
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are consumed
        with precision(precision_name, device):
            f = run(*args, **kwargs)
        if precision_name == "bf16":
            f = type(f)(deltas=[d.float() for d in f.deltas],
                        inputs=[a.float() for a in f.inputs], probs=f.probs.float())
        return f
    return step
