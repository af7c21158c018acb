"""The training loop's own cost: median step and epoch time on a tiny net (synthetic data,
32-16-10, batch 8, dropout on), where the products take microseconds and what the loop does
in Python (dropout draws, the rule's call, the momentum update, the divergence check)
dominates, for a single run and a population of 4, for the checkout at --repo (default: this
one). One thread, so a busy second core disturbs it little. Compare versions in fresh
processes, alternating:

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
    pepita_lab, Trainer, Population = checkout.load(args.repo)
    import torch

    from pepita_lab.config import RunConfig

    torch.set_num_threads(1)
    cfg = RunConfig(dataset="synthetic", hidden=(16,), batch_size=8, lr=0.01, device="cpu")
    out = []
    for name, loop in (("run", Trainer(cfg, progress=False)),
                       ("population K=4", Population([cfg.replace(seed=s) for s in range(4)],
                                                     progress=False))):
        steps = -(-5000 // cfg.batch_size)
        med = statistics.median(checkout.epoch_seconds(loop, 5))
        out.append(f"{name}: epoch {1e3 * med:.0f} ms, {1e6 * med / steps:.0f} us/step")
    print(f"pepita-lab {pepita_lab.__version__} ({args.repo}), 1 thread, tiny net: "
          + "; ".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
