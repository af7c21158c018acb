"""The dropout draw that was tried for 0.6.0 and left out, measured against the one the loop
uses (`kernels.draw_dropout_mask`: `uniform_`, compared with keep, which rounds keep up to a
multiple of 2^-24). The tried draw (`exact_draw`, below) is exact: 24 random bits an element
(3 bytes of `random_`'s 64-bit words, half `uniform_`'s generator calls), a tie with
floor(keep 2^24) resolved by 24 more bits, so P(kept) is within 2^-49 of keep.

    python benchmarks/dropout_draw.py [--pairs 12] [--threads N] [--draw-only]

Default: the paper's MNIST epoch (`interleaved.epochs`: 12800 random MNIST-shaped samples, 200
steps at batch 64, 2000 test samples) with each draw swapped in by name, blocks interleaved in
one process (`checkout.paired_ratios`). `--draw-only`: the draw alone on one (64, 1024) mask,
blocks of 300 draws, median of 7.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import checkout


def exact_draw(mask, keep: float, generator):
    """`mask` (contiguous) filled with 1 / keep with probability within 2^-49 of keep, else 0:
    an integer U uniform on [0, 2^24) an element, kept if U < T = floor(keep 2^24); where
    U = T, 24 more bits V decide, kept if V < round(frac(keep 2^24) 2^24)."""
    import torch

    flat = mask.view(-1)
    s = keep * 2 ** 24
    u = _bits24(flat, generator).sub_(math.floor(s) - 2 ** 23)  # kept where < 0, a tie at 0
    R = round((s - math.floor(s)) * 2 ** 24) - 2 ** 23  # a tie is kept if V - 2^23 < R
    if R > -2 ** 23 and bool(u.abs().amin() == 0):
        ties = (u == 0).nonzero().view(-1)
        u[ties] = torch.where(_bits24(u.new_empty(ties.numel()), generator) < R, -1.0, 1.0)
    return u.lt_(0).div_(keep).view_as(mask)


def _bits24(out, generator):
    """`out` (flat float32) filled with integers U - 2^23, U uniform on [0, 2^24): 3 bytes
    each of 64-bit words, a signed 16-bit part times 256 plus an 8-bit part."""
    import torch

    n = out.numel()
    words = torch.empty(-(-3 * n // 8), dtype=torch.int64, device=out.device)
    b = words.random_(-2 ** 63, None, generator=generator).view(torch.uint8)
    return out.copy_(b[:2 * n].view(torch.int16)).mul_(256).add_(b[2 * n:3 * n])


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
    draws = {"uniform_": training.draw_dropout_mask, "exact": exact_draw}
    if args.draw_only:
        g, mask = torch.Generator().manual_seed(0), torch.empty(64, 1024)
        for name, draw in draws.items():
            blocks = sorted(checkout.seconds_per_call(lambda: draw(mask, 0.9, g), 300)
                            for _ in range(7))
            print(f"{name}: {1e6 * blocks[3]:.0f} us a draw")
        return 0
    data = bench.random_data("mnist", 12800, 2000, torch.device("cpu"), seed=1)
    config = bench._config("mnist", "pepita", 64, torch.device("cpu"))
    trainer = training.Trainer(config, data, progress=False)

    def epoch(side):
        def run():
            training.draw_dropout_mask = draws[side]
            trainer.train_epoch()
        return run

    epoch("exact")(), epoch("uniform_")()  # warm-up
    found = checkout.paired_ratios(epoch("uniform_"), epoch("exact"), 1, args.pairs)
    training.draw_dropout_mask = draws["uniform_"]
    print(f"{torch.get_num_threads()} threads: epoch with uniform_ "
          f"{statistics.median(found['old']):.3f} s, with the exact draw "
          f"{statistics.median(found['new']):.3f} s, exact / uniform_ "
          f"{checkout.ratio_text(found)}, {args.pairs} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
