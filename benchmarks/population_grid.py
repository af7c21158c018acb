"""A grid of PEPITA runs as one population against the same runs one by one (wall time).

    python benchmarks/population_grid.py [--dataset mnist] [--epochs 1] [--subset N]
                                         [--f-scale 0.01 0.03 0.05 0.1] [--lr 0.01 0.03 0.05 0.1]
                                         [--device auto] [--json PATH]

Trains every F scale x lr point of the paper's net (preset `paper-DATASET`) with
`pepita_lab.train_grid` (the points share an architecture, so they train as one population),
then each point with `pepita_lab.train`, one after the other in this process, and prints both
wall times and the final test accuracies of each point both ways. The data are loaded before
either is timed, and no run folders are written. This is the "16 points in less time than 16
separate runs" check of docs/performance.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when not installed

import pepita_lab as pl  # noqa: E402
from pepita_lab.data import load_data  # noqa: E402
from pepita_lab.devices import resolve_device  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--subset", type=int)
    p.add_argument("--f-scale", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.1])
    p.add_argument("--lr", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.1])
    p.add_argument("--device", default="auto")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    base = pl.preset(f"paper-{args.dataset}", epochs=args.epochs, subset=args.subset,
                     device=args.device)
    data = load_data(base.dataset, subset=base.subset, device=resolve_device(base.device))
    points = list(itertools.product(args.f_scale, args.lr))

    start = time.perf_counter()
    grid = pl.train_grid(base, f_scale=args.f_scale, lr=args.lr, progress=False, traces=False,
                         data=data)
    population_s = time.perf_counter() - start
    population_acc = grid.test_acc.isel(epoch=-1).values.tolist()

    start = time.perf_counter()
    separate_acc = []
    for f, lr in points:
        run = pl.train(base.replace(f_scale=f, lr=lr), data=data, progress=False, traces=False)
        separate_acc.append(float(run.history.test_acc.values.ravel()[-1]))
    separate_s = time.perf_counter() - start

    print(f"{len(points)} points ({args.dataset}, {args.epochs} epoch(s), PEPITA, paper net):")
    print(f"  one population: {population_s:.1f} s   separate runs: {separate_s:.1f} s   "
          f"ratio {population_s / separate_s:.2f}")
    print(f"  {'F scale':>8} {'lr':>6} {'acc (population)':>17} {'acc (separate)':>15}")
    for (f, lr), a, b in zip(points, population_acc, separate_acc):
        print(f"  {f:>8g} {lr:>6g} {a:>17.4f} {b:>15.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "points": [{"f_scale": f, "lr": lr} for f, lr in points],
            "population_s": population_s, "separate_s": separate_s,
            "population_test_acc": population_acc, "separate_test_acc": separate_acc},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
