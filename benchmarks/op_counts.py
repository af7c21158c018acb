"""The PyTorch ops one training step dispatches (a TorchDispatchMode count), for the paper's
MNIST net (batch 64) and conv net (batch 50), PEPITA and BP, of the pepita-lab checkout at
--repo (default: this one). Unlike a time, the count does not drift with the machine's load,
so it shows what a version adds to a step even where timings cannot resolve it:

    python benchmarks/op_counts.py --repo /tmp/old; python benchmarks/op_counts.py

--ops lists each op's count.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    p.add_argument("--ops", action="store_true", help="each op's count")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(args.repo).resolve()))
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    import pepita_lab
    from pepita_lab.bench import _config, random_data, trainer_step
    from pepita_lab.training import Trainer

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[str(func)] += 1
            return func(*args, **(kwargs or {}))

    device = torch.device("cpu")
    print(f"pepita-lab {pepita_lab.__version__} ({args.repo}): ops per step")
    for net, B in (("mnist", 64), ("mnist-conv", 50)):
        data = random_data("mnist", B * 8, B, device)
        for rule in ("pepita", "bp"):
            step = trainer_step(Trainer(_config("mnist", rule, B, device, name=f"paper-{net}"),
                                        data, progress=False))
            for _ in range(3):
                step()
            with Count() as count:
                step()
            print(f"  {net} {rule}: {sum(count.ops.values())}"
                  + (f" {dict(count.ops.most_common())}" if args.ops else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
