"""The training loop's own cost, where the products take microseconds and what the loop does in
Python and in dispatching ops dominates: an epoch of a tiny net (synthetic data, 32-16-10, batch
8, dropout on; microseconds per step) as a single run and as a population of 4, and one step
(`bench.trainer_step`) of PEPITA and BP on the paper's MNIST nets cut to batch 2 with 16 hidden
units (the conv net: its conv layer, 16 units, the output), for the checkout at --repo (default:
this one). One thread (`--threads`), so a busy second core disturbs it little. Compare versions
in fresh processes, alternating (or with `ab.py`):

    for i in 1 2 3; do
      python benchmarks/loop_overhead.py --repo /tmp/old; python benchmarks/loop_overhead.py
    done
"""

from __future__ import annotations

import statistics
import sys

import checkout


def main(argv: list[str] | None = None) -> int:
    args = checkout.parse_args(__doc__, argv)
    pepita_lab, Trainer, Population = checkout.load(args.repo, args.threads or 1)
    import torch

    from pepita_lab.bench import _config, random_data, trainer_step
    from pepita_lab.config import RunConfig

    cfg = RunConfig(dataset="synthetic", hidden=(16,), batch_size=8, lr=0.01, device="cpu")
    figures = {}
    for name, loop in (("run", Trainer(cfg, progress=False)),
                       ("population K=4", Population([cfg.replace(seed=s) for s in range(4)],
                                                     progress=False))):
        steps = -(-5000 // cfg.batch_size)
        figures[f"{name} epoch"] = 1e6 * statistics.median(checkout.epoch_seconds(loop, 5)) / steps
    device = torch.device("cpu")
    data = random_data("mnist", 16, 16, device)
    for net in ("mnist", "mnist-conv"):
        for rule in ("pepita", "bp"):
            config = _config("mnist", rule, 2, device, name=f"paper-{net}").replace(hidden=(16,))
            step = trainer_step(Trainer(config, data, progress=False))
            seconds = checkout.median_block(step, 100, 15, 200)
            label = ("conv " if net == "mnist-conv" else "") + ("PEPITA" if rule == "pepita"
                                                                else "BP")
            figures[f"{label} step"] = 1e6 * seconds
    checkout.report(args, pepita_lab.__version__, "us per step, tiny nets", figures, "us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
