"""What the dropout draw gains on the paper's MNIST epoch (`interleaved.epochs`: 12800 random
MNIST-shaped samples, 200 steps at batch 64, 2000 test samples): this checkout's
`kernels.draw_dropout_mask` (24 bits per element from `random_`) against 0.5.0's
(`uniform_`, then `lt_`), swapped in by name, blocks interleaved in one process.

    python benchmarks/dropout_draw.py [--pairs 12] [--threads N] [--draw-only]

`--draw-only`: the draw alone on one (64, 1024) mask, blocks of 300 draws, median of 7.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import checkout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int)
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--draw-only", action="store_true")
    args = p.parse_args(argv)
    import torch

    from pepita_lab import bench, training

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.draw_only:
        g, mask = torch.Generator().manual_seed(0), torch.empty(64, 1024)
        for name, draw in (("0.5.0", lambda m: m.uniform_(generator=g).lt_(0.9).div_(0.9)),
                           ("new", lambda m: training.draw_dropout_mask(m, 0.9, g))):
            blocks = sorted(checkout.seconds_per_call(lambda: draw(mask), 300)
                            for _ in range(7))
            print(f"{name}: {1e6 * blocks[3]:.0f} us a draw")
        return 0
    data = bench.random_data("mnist", 12800, 2000, torch.device("cpu"), seed=1)
    config = bench._config("mnist", "pepita", 64, torch.device("cpu"))
    trainer = training.Trainer(config, data, progress=False)
    draws = {"new": training.draw_dropout_mask,
             "0.5.0": lambda m, keep, g: m.uniform_(generator=g).lt_(keep).div_(keep)}

    def epoch(side):
        def run():
            training.draw_dropout_mask = draws[side]
            trainer.train_epoch()
        return run

    epoch("new")(), epoch("0.5.0")()  # warm-up
    found = checkout.paired_ratios(epoch("0.5.0"), epoch("new"), 1, args.pairs)
    training.draw_dropout_mask = draws["new"]
    print(f"{torch.get_num_threads()} threads: epoch with 0.5.0's draw "
          f"{statistics.median(found['old']):.3f} s, with the new draw "
          f"{statistics.median(found['new']):.3f} s, new / old {checkout.ratio_text(found)}, "
          f"{args.pairs} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
