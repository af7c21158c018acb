"""A/B of two pepita-lab checkouts in one process, their timed blocks interleaved: this
machine's speed drifts by up to 2x on a scale of minutes (docs/performance.md), which
alternating fresh processes (`ab.py`) cannot separate from a few percent between versions;
blocks a fraction of a second apart, old and new in turn, see the same machine.

    git worktree add /tmp/old <commit>
    python benchmarks/interleaved.py --repo /tmp/old [--threads 2] [--pairs 30] [--json PATH]

Both versions' packages are copied into a temporary folder under other names
(`pepita_lab_old`, `pepita_lab_new`; pepita-lab imports itself relatively) and imported side by
side. Figures: one training step (`bench.trainer_step`: each version's own, at the learning
rate its epoch loop passes) of PEPITA and BP on the paper's MNIST net (batch 64) and conv net
(batch 50), blocks of 50 steps; and whole epochs (`Trainer.train_epoch`: the steps, the loss
bookkeeping, the test evaluation) of PEPITA on 12800 random MNIST-shaped samples (200 steps),
2000 test samples, as a single run and as a population of 4 (F scales 0.02 to 0.2). Each pair of blocks runs old-new or new-old, alternating; the report gives
each version's median block and the median and quartiles of the pairs' new / old ratios.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import checkout

HERE = Path(__file__).resolve().parent


def import_as(repo: str, name: str, folder: Path):
    """The pepita_lab package of the checkout at `repo`, imported as `name`."""
    shutil.copytree(Path(repo) / "pepita_lab", folder / name,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return importlib.import_module(name)


def steps(pl, net: str, rule: str, B: int):
    """A callable making one training step of `rule` on `net` with version `pl`."""
    import torch

    bench = importlib.import_module(f"{pl.__name__}.bench")
    training = importlib.import_module(f"{pl.__name__}.training")
    device = torch.device("cpu")
    data = bench.random_data("mnist", B * 8, B, device)
    config = bench._config("mnist", rule, B, device, name=f"paper-{net}")
    step = bench.trainer_step(training.Trainer(config, data, progress=False))
    for _ in range(30):
        step()
    return step


def epochs(pl, K: int = 0):
    """A callable training one PEPITA epoch (12800 samples, 2000 test) with version `pl`: a
    single run, or a population of K (F scales 0.02-0.2)."""
    import torch

    bench = importlib.import_module(f"{pl.__name__}.bench")
    training = importlib.import_module(f"{pl.__name__}.training")
    device = torch.device("cpu")
    data = bench.random_data("mnist", 12800, 2000, device, seed=1)
    config = bench._config("mnist", "pepita", 64, device)
    if K:
        config = [config.replace(f_scale=0.02 * 10 ** (k / max(K - 1, 1))) for k in range(K)]
    trainer = training.Trainer(config, data, progress=False)
    trainer.train_epoch()
    return trainer.train_epoch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", required=True, help="the checkout to compare against (old)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--pairs", type=int, default=30, help="pairs of step blocks per figure")
    p.add_argument("--json", help="write every block's time to this file")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    sys.path.insert(0, str(tmp))
    versions = {"old": import_as(args.repo, "pepita_lab_old", tmp),
                "new": import_as(str(HERE.parent), "pepita_lab_new", tmp)}
    figures = {f"{label} step": ({side: steps(pl, net, rule, B)
                                  for side, pl in versions.items()}, 50, args.pairs, "ms")
               for label, net, rule, B in (("PEPITA", "mnist", "pepita", 64),
                                           ("BP", "mnist", "bp", 64),
                                           ("conv PEPITA", "mnist-conv", "pepita", 50),
                                           ("conv BP", "mnist-conv", "bp", 50))}
    figures["PEPITA epoch"] = ({side: epochs(pl) for side, pl in versions.items()}, 1,
                               max(args.pairs // 3, 4), "s")
    figures["population K=4 epoch"] = ({side: epochs(pl, 4) for side, pl in versions.items()},
                                       1, max(args.pairs // 6, 4), "s")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"interleaved A/B, {started}: old = pepita-lab {versions['old'].__version__} "
          f"({args.repo}), new = pepita-lab {versions['new'].__version__} ({HERE.parent}), "
          f"{torch.get_num_threads()} threads")
    print("| figure | old (median block) | new (median block) | new / old: median of pairs "
          "(quartiles) | pairs |")
    print("| --- | --- | --- | --- | --- |")
    rows = {}
    for name, (fns, calls, pairs, unit) in figures.items():
        found = checkout.paired_ratios(fns["old"], fns["new"], calls, pairs)
        scale = 1e3 if unit == "ms" else 1.0
        old, new = (scale * statistics.median(found[s]) for s in ("old", "new"))
        rows[name] = {"unit": unit, **found}
        print(f"| {name} | {old:.3g} {unit} | {new:.3g} {unit} | "
              f"{checkout.ratio_text(found)} | {pairs} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"started": started, "repo": args.repo,
                                               "threads": torch.get_num_threads(),
                                               "figures": rows}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
