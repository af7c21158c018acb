"""The whole benchmark and its command: `run_bench` runs every measurement in order and returns
JSON-able results; `run_from_args` and `main` are `pepita-lab bench` (progress on stderr, the
report on stdout, the JSON to a file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from ..config import COMPILE_MODES, PRECISIONS, ConfigError
from ..devices import keep_freed_memory, resolve_device
from .args import add_bench_arguments
from .measure import measure_conv, measure_epochs, measure_population, measure_steps
from .report import SCHEMA, _environment, format_report
from .settings import _settings
from .timing import MEMORY_KIND, measure_peak, peak_memory_bytes


def run_bench(quick: bool = False, device: str = "auto", repeats: int | None = None, *,
              precision: str = "fp32", compile: str = "off",
              log: Callable[[str], None] | None = None) -> dict:
    """Run every measurement (see the module docstring) and return JSON-able results:
    environment, settings, peak (the matrix products), shapes (per shape: rules, ratios,
    epoch), conv (`measure_conv`), population (`measure_population`) and memory. `quick`:
    MNIST at batch 64 only, few repeats, small epochs, K = 1 and 4. `precision` and `compile`
    are RunConfig's speed settings, used by every step. `log`, if given, gets one line per
    measurement."""
    dev = resolve_device(device)
    if precision not in PRECISIONS or compile not in COMPILE_MODES:
        raise ConfigError(f"precision={precision!r} / compile={compile!r}: expected one of "
                          f"{', '.join(PRECISIONS)} / {', '.join(COMPILE_MODES)}")
    s = _settings(quick, dev, repeats, precision, compile)
    results = {"schema": SCHEMA, "environment": _environment(dev), "settings": s}
    if dev.type == "cpu":  # every figure under the trainers' allocator policy, from the first
        results["environment"]["freed_memory_kept"] = keep_freed_memory()
    results["peak"] = peak = measure_peak(s["shapes"], dev, s, log)
    shapes = []
    for name in s["shapes"]:
        entry = measure_steps(name, dev, s, peak["gflops"], log)
        entry["epoch"] = measure_epochs(name, dev, s, entry, log)
        shapes.append(entry)
    results["shapes"] = shapes
    fc_pepita = shapes[0]["rules"]["pepita"]["gflops"]  # MNIST, batch 64
    results["conv"] = measure_conv(dev, s, peak["gflops"], fc_pepita, log)
    results["population"] = measure_population(dev, s, peak["gflops"], log)
    results["memory"] = {"kind": MEMORY_KIND[dev.type],
                         "process_peak_bytes": peak_memory_bytes(dev)}
    if hasattr(os, "getloadavg"):
        results["environment"]["load_average_end"] = list(os.getloadavg())
    return results


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The bench flags (`args.add_bench_arguments`, which the CLI imports without this
    module)."""
    return add_bench_arguments(p)


def build_parser(prog: str = "pepita-lab bench") -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog=prog, description=(
        "Time the training step of every rule, a whole epoch and the matrix-product peak on "
        "this machine; print a table and optionally write JSON.")))


def run_from_args(args: argparse.Namespace) -> int:
    """Run with parsed `add_arguments` flags: progress on stderr, the report on stdout, the
    JSON to `args.json`. Returns the exit status (2 on a refused setting)."""
    log = lambda line: print(f"bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        results = run_bench(args.quick, args.device, args.repeats, precision=args.precision,
                            compile=args.compile, log=log)
    except ConfigError as err:
        print(f"pepita-lab bench: error: {err}", file=sys.stderr)
        return 2
    print(format_report(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`pepita-lab bench [--quick] [--json PATH] [--device auto|cpu|cuda] [--repeats N]
    [--precision fp32|tf32|bf16] [--compile MODE]`
    (`argv` without the program name; None: sys.argv[1:]). Returns the exit status."""
    return run_from_args(build_parser().parse_args(argv))
