"""Timers and the machine: `time_calls` (blocked_autorange, synchronised, with page faults),
the statistics and FLOP rates of a timing, peak memory (`peak_memory_bytes`), and the
matrix-product peak that every fraction of peak is relative to (`measure_peak`).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from typing import Callable

import torch
from torch.utils import benchmark

from ..config import INPUT_SIZES
from ..devices import precision, synchronize
from .settings import HIDDEN, SHAPES, _min_run_time

PEAK_DEFINITION = ("the highest median rate among the matrix products measured here (the nets' "
                   "forward and weight-gradient shapes and a large square); every fraction of "
                   "peak is relative to it")
MEMORY_KIND = {
    "cuda": "torch.cuda.max_memory_allocated, reset before each measurement (it includes the "
            "data and weights resident on the device)",
    "cpu": "peak resident set size of the whole process (getrusage ru_maxrss): process-wide "
           "and never decreasing, so a later measurement includes every earlier one",
}


def _stats(per_call: list[float]) -> dict:
    """Median, quartiles, min and max of per-call seconds (one value per timed block)."""
    # not Measurement.median / .iqr: those round to float32, and it gives no quartiles
    xs = sorted(per_call)
    q1, med, q3 = (statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1
                   else (xs[0],) * 3)
    return {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1, "min_s": xs[0],
            "max_s": xs[-1], "blocks_s": per_call}


def _own_usage():
    """`resource.getrusage` of this process, or None where `resource` is missing (Windows)."""
    # not psutil: it counts no page faults and, on Linux, no peak resident size
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF)


def minor_page_faults() -> int | None:
    """This process's minor page faults so far (None where they are not counted)."""
    usage = _own_usage()
    return None if usage is None else usage.ru_minflt


def time_calls(fn: Callable[[], object], device: torch.device, *, min_run_time: float,
               warmup: int = 3) -> dict:
    """Seconds per call of `fn`: `warmup` untimed calls, then `blocked_autorange`: an untimed
    calibration that picks the calls per block, then timed blocks, each synchronised before
    and after, until `min_run_time` seconds are timed (garbage collection off, as in `timeit`).
    Returns `_stats` of the blocks plus `calls_per_block` and `page_faults_per_call` (minor
    faults of the process per call, the calibration's included; None where not counted):
    hundreds a call mean the allocator handed freed memory back to the OS and each call faults
    it in again, which can double a CPU time (docs/performance.md)."""
    for _ in range(warmup):
        fn()

    def now() -> float:  # the measured device, not torch.accelerator's current one
        synchronize(device)
        return time.perf_counter()

    calls = itertools.count()  # counted in the statement (a C call): the calibration's too
    timer = benchmark.Timer("fn(); next(calls)", timer=now, globals={"fn": fn, "calls": calls},
                            num_threads=torch.get_num_threads())  # its default is 1
    faults_before = minor_page_faults()
    m = timer.blocked_autorange(min_run_time=min_run_time)
    faults_after, n_calls = minor_page_faults(), next(calls)
    faults = None if faults_before is None else (faults_after - faults_before) / n_calls
    return {**_stats(m.times), "calls_per_block": m.number_per_run,
            "page_faults_per_call": faults}


def _rates(flops: int, t: dict) -> dict:
    """GFLOP/s at the median time and at the quartiles (slow quartile first)."""
    return {"gflops": flops / t["median_s"] / 1e9,
            "gflops_iqr": [flops / t["q3_s"] / 1e9, flops / t["q1_s"] / 1e9]}


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """See MEMORY_KIND: per measurement on CUDA, the whole process's peak RSS on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    usage = _own_usage()
    if usage is None:
        return None
    rss = usage.ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS: bytes; Linux: KiB


def _matmul_shapes(shapes: list[str], large: int) -> list[dict]:
    """The products a step spends its time in, in the layouts training uses, and a square."""
    out, seen = [], set()
    for name in shapes:
        dataset, B = SHAPES[name]
        d = INPUT_SIZES[dataset]
        for what, m, k, n, lhs_t, rhs_t in (
                ("forward", B, d, HIDDEN, False, True),  # x (B, d) @ W_1.T (d, n_1)
                ("weight gradient", HIDDEN, B, d, True, False)):  # delta.T (n_1, B) @ h (B, d)
            if (m, k, n, lhs_t, rhs_t) not in seen:
                seen.add((m, k, n, lhs_t, rhs_t))
                out.append({"name": f"{name} {what}", "m": m, "k": k, "n": n,
                            "lhs_transposed": lhs_t, "rhs_transposed": rhs_t})
    out.append({"name": f"square {large}", "m": large, "k": large, "n": large,
                "lhs_transposed": False, "rhs_transposed": False})
    return out


def measure_peak(shapes: list[str], device: torch.device, s: dict, log=None) -> dict:
    """The float32 `torch.mm` rate (2 M N K / time) at each shape of `_matmul_shapes`, under
    the settings' precision (TF32 products with "tf32"); the peak is the highest median rate
    (PEAK_DEFINITION)."""
    entries = []
    for e in _matmul_shapes(shapes, s["large_square"]):
        if log:
            log(f"matrix product {e['name']}: {e['m']} x {e['k']} x {e['n']}")
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.rand(*((e["k"], e["m"]) if e["lhs_transposed"] else (e["m"], e["k"])),
                       generator=g, device=device)
        b = torch.rand(*((e["n"], e["k"]) if e["rhs_transposed"] else (e["k"], e["n"])),
                       generator=g, device=device)
        a, b = (a.T if e["lhs_transposed"] else a), (b.T if e["rhs_transposed"] else b)
        c = torch.empty(e["m"], e["n"], device=device)
        with precision(s["precision"], device):
            t = time_calls(lambda: torch.mm(a, b, out=c), device,
                           min_run_time=_min_run_time(s), warmup=s["warmup_calls"])
        flops = 2 * e["m"] * e["k"] * e["n"]
        entries.append({**e, "flops": flops, "time": t, **_rates(flops, t)})
        del a, b, c
    return {"gflops": max(e["gflops"] for e in entries), "definition": PEAK_DEFINITION,
            "dtype": "float32", "matmuls": entries}
