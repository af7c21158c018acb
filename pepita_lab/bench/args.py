"""The flags of `pepita-lab bench` (and `python -m pepita_lab.bench`). Only argparse and config:
the CLI builds its parser from this module without importing the benchmark harness or torch.
"""

from __future__ import annotations

import argparse

from ..config import COMPILE_MODES, PRECISIONS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def add_bench_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The bench flags, for `pepita-lab bench` and `python -m pepita_lab.bench` (here, so that
    building the parser does not import the benchmark harness)."""
    p.add_argument("--quick", action="store_true",
                   help="MNIST at batch 64 only, few repeats, small epochs (a smoke run)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="default auto: CUDA when present")
    p.add_argument("--repeats", type=_positive_int, metavar="N",
                   help="each measurement is timed for N x the block time (default 7 x 0.2 s; "
                        "quick 3 x 0.03 s), in as many blocks as blocked_autorange makes")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="products' precision of every step and of the peak (default fp32; "
                        "tf32 for the dense TF32 peak of a GPU)")
    p.add_argument("--compile", default="off", choices=COMPILE_MODES,
                   help="torch.compile every step (default off; reduce-overhead: CUDA graphs)")
    return p
