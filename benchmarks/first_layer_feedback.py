"""Does the tracked `W_1 F` pay? The paper's MNIST epoch (`interleaved.epochs`: 12800 random
MNIST-shaped samples, 200 steps at batch 64, 2000 test samples) with PEPITA's modulated first
layer from `W_1 F` tracked through the momentum update (0.2.0 to 0.5.0's
`FirstLayerFeedback`) against the stateless form (`W_1 F` computed afresh each step, n_1 d C
multiply-adds), blocks interleaved in one process as `interleaved.py` does.

    git worktree add /tmp/v050 6ebccd5
    python benchmarks/first_layer_feedback.py --repo /tmp/v050 [--pairs 12] [--threads N]

`--repo`: a checkout whose loop holds the state as `Trainer.state` (0.2.0 to 0.5.0; measured
at f24ea13, the last commit before issue 32); the stateless side drops it
(`Trainer.state = None`), and its factors then compute `W_1 F` afresh each step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import checkout
from interleaved import import_as

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", required=True, help="a checkout with Trainer.state (<= 0.5.0)")
    p.add_argument("--threads", type=int)
    p.add_argument("--pairs", type=int, default=12)
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    sys.path.insert(0, str(tmp))
    pl = import_as(args.repo, "pepita_lab_tracked", tmp)
    import importlib

    bench = importlib.import_module("pepita_lab_tracked.bench")
    training = importlib.import_module("pepita_lab_tracked.training")
    data = bench.random_data("mnist", 12800, 2000, torch.device("cpu"), seed=1)
    config = bench._config("mnist", "pepita", 64, torch.device("cpu"))
    trainers = {"tracked": training.Trainer(config, data, progress=False),
                "stateless": training.Trainer(config, data, progress=False)}
    trainers["stateless"].state = None
    assert trainers["tracked"].state is not None
    for t in trainers.values():
        t.train_epoch()
    found = checkout.paired_ratios(trainers["tracked"].train_epoch,
                                   trainers["stateless"].train_epoch, 1, args.pairs)
    print(f"pepita-lab {pl.__version__}, {torch.get_num_threads()} threads: epoch tracked "
          f"{statistics.median(found['old']):.3f} s, stateless "
          f"{statistics.median(found['new']):.3f} s, stateless / tracked "
          f"{checkout.ratio_text(found)}, {args.pairs} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
