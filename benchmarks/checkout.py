"""What the version A/B scripts share: the `--repo` flag and importing pepita-lab from that
checkout (an older one too), whose populations may be a class of their own (0.2) or the one
loop given a list of configs (0.3)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(doc: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]),
                   help="a pepita-lab checkout (default: this one)")
    return p.parse_args(argv)


def load(repo: str):
    """(pepita_lab, Trainer, Population) imported from the checkout at `repo`."""
    sys.path.insert(0, str(Path(repo).resolve()))
    import pepita_lab
    from pepita_lab.training import Trainer

    try:  # pepita-lab 0.2: populations had a class of their own
        from pepita_lab.population import Population
    except ImportError:
        Population = Trainer  # one loop: a list of configs is a population
    return pepita_lab, Trainer, Population


def epoch_seconds(loop, repeats: int) -> list[float]:
    """Seconds of `repeats` epochs of `loop` (a Trainer), after one untimed warm-up epoch."""
    loop.train_epoch()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loop.train_epoch()
        times.append(time.perf_counter() - start)
    return times
