"""What the version A/B scripts share: the `--repo`, `--threads` and `--json` flags, importing
pepita-lab from that checkout (an older one too), whose populations may be a class of their own
(0.2) or the one loop given a list of configs (0.3), and reporting the figures (a line, and a
JSON file that `ab.py` collects)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def parse_args(doc: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]),
                   help="a pepita-lab checkout (default: this one)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    return p.parse_args(argv)


def report(args: argparse.Namespace, version: str, what: str, figures: dict[str, float],
           unit: str) -> None:
    """Print `figures` (name -> value in `unit`) on one line, and write them to `args.json`."""
    import torch

    threads = torch.get_num_threads()
    print(f"pepita-lab {version} ({args.repo}), {threads} thread{'s' * (threads > 1)}, {what}: "
          + ", ".join(f"{k} {v:.3g} {unit}" for k, v in figures.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"version": version, "repo": args.repo,
                                               "threads": threads, "what": what,
                                               "unit": unit, "figures": figures}))


def load(repo: str, threads: int | None = None):
    """(pepita_lab, Trainer, Population) imported from the checkout at `repo`; `threads`: torch's
    thread count, if given."""
    sys.path.insert(0, str(Path(repo).resolve()))
    import torch

    if threads:
        torch.set_num_threads(threads)
    import pepita_lab
    from pepita_lab.training import Trainer

    try:  # pepita-lab 0.2: populations had a class of their own
        from pepita_lab.population import Population
    except ImportError:
        Population = Trainer  # one loop: a list of configs is a population
    return pepita_lab, Trainer, Population


def seconds_per_call(fn, calls: int) -> float:
    """Mean seconds of `calls` calls of `fn`, timed as one block."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def paired_ratios(old, new, calls: int, pairs: int) -> dict:
    """Blocks of `calls` calls of `old` and `new` in turn (old-new, then new-old, alternating),
    `pairs` of each: {"old": [s a call], "new": [...], "ratio_median", "ratio_quartiles"} of the
    pairs' new / old ratios. Blocks a fraction of a second apart see the same machine."""
    blocks = {"old": [], "new": []}
    sides = {"old": old, "new": new}
    for i in range(pairs):
        for side in ("old", "new") if i % 2 == 0 else ("new", "old"):
            blocks[side].append(seconds_per_call(sides[side], calls))
    ratios = sorted(b / a for a, b in zip(blocks["old"], blocks["new"]))
    q = statistics.quantiles(ratios, n=4)
    return {**blocks, "ratio_median": statistics.median(ratios),
            "ratio_quartiles": [q[0], q[2]]}


def ratio_text(found: dict) -> str:
    """`paired_ratios`'s new / old as "median (lower-upper quartile)"."""
    low, high = found["ratio_quartiles"]
    return f"{found['ratio_median']:.3f} ({low:.3f}-{high:.3f})"


def median_block(fn, warmup: int, blocks: int, calls: int) -> float:
    """Seconds per call of `fn`: the median of `blocks` blocks of `calls` calls, after
    `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(seconds_per_call(fn, calls) for _ in range(blocks))


def epoch_seconds(loop, repeats: int) -> list[float]:
    """Seconds of `repeats` epochs of `loop` (a Trainer), after one untimed warm-up epoch."""
    loop.train_epoch()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loop.train_epoch()
        times.append(time.perf_counter() - start)
    return times
