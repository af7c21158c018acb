"""Seconds per training epoch (`train_epoch`: index-sliced batches, the steps, the loss syncs,
the test evaluation) of PEPITA and BP on the paper's MNIST net and of a PEPITA population of
4 members, on random data of MNIST's full size, for the pepita-lab checkout at --repo (default:
this one), to compare versions side by side in fresh processes:

    git worktree add /tmp/old <commit>
    for i in 1 2 3; do
      python benchmarks/epoch_times.py --repo /tmp/old; python benchmarks/epoch_times.py
    done

Each figure is the faster of two epochs after a warm-up epoch (lr 1e-3, as `pepita-lab bench`).
"""

from __future__ import annotations

import sys

import checkout


def main(argv: list[str] | None = None) -> int:
    args = checkout.parse_args(__doc__, argv)
    pepita_lab, Trainer, Population = checkout.load(args.repo, args.threads)
    import torch

    from pepita_lab.bench import _config, random_data

    device = torch.device("cpu")
    data = random_data("mnist", 60000, 10000, device, seed=1)
    loops = {rule: Trainer(_config("mnist", rule, 64, device), data, progress=False)
             for rule in ("pepita", "bp")}
    base = _config("mnist", "pepita", 64, device)
    loops["population K=4"] = Population([base.replace(f_scale=f) for f in (0.02, 0.05, 0.1,
                                                                              0.2)],
                                         data, progress=False)
    seconds = {name: min(checkout.epoch_seconds(loop, 2)) for name, loop in loops.items()}
    checkout.report(args, pepita_lab.__version__, "epoch seconds", seconds, "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
