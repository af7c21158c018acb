"""Median training-step time of PEPITA and BP (by hand) on the paper's MNIST net, batch 64, and
on its conv net (`paper-mnist-conv`, batch 50), with conv PEPITA's FLOP rate relative to fully
connected PEPITA's (as `pepita-lab bench` reports it), for the pepita-lab checkout at --repo
(default: this one), to compare versions side by side:

    git worktree add /tmp/old <commit>
    for i in 1 2 3; do
      python benchmarks/step_times.py --repo /tmp/old; python benchmarks/step_times.py
    done

Random data of MNIST's shape, lr 1e-3 (as `pepita-lab bench`), 30 warm-up steps, then the median
of 9 blocks of 100 steps. Run each measurement in a fresh process, alternating versions: this
machine's speed drifts over minutes (docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]),
                   help="a pepita-lab checkout (default: this one)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(args.repo).resolve()))
    import torch

    import pepita_lab
    from pepita_lab.bench import _config, random_data, trainer_step
    from pepita_lab.training import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    from pepita_lab.analysis import conv_step_cost, step_cost

    device = torch.device("cpu")
    times, gflops = {}, {}
    for net, B in (("mnist", 64), ("mnist-conv", 50)):
        data = random_data("mnist", B * 8, B, device)
        for rule in ("pepita", "bp"):
            config = _config("mnist", rule, B, device, name=f"paper-{net}")
            step = trainer_step(Trainer(config, data, progress=False))
            for _ in range(30):
                step()
            blocks = []
            for _ in range(9):
                start = time.perf_counter()
                for _ in range(100):
                    step()
                blocks.append((time.perf_counter() - start) / 100)
            times[net, rule] = t = sorted(blocks)[4]
            cost = (step_cost(rule, [data.n_features, 1024, data.n_classes], B) if net == "mnist"
                    else conv_step_cost(rule, data.image_shape, config.conv_channels,
                                        config.kernel_size, config.pool, config.hidden,
                                        data.n_classes, B))
            gflops[net, rule] = 2 * cost.macs / t / 1e9
    ms = {k: f"{1e3 * t:.2f} ms" for k, t in times.items()}
    print(f"pepita-lab {pepita_lab.__version__} ({args.repo}), {torch.get_num_threads()} "
          f"threads: PEPITA {ms['mnist', 'pepita']}, BP {ms['mnist', 'bp']}; conv PEPITA "
          f"{ms['mnist-conv', 'pepita']}, conv BP {ms['mnist-conv', 'bp']}; conv PEPITA GFLOP/s "
          f"/ FC PEPITA GFLOP/s {gflops['mnist-conv', 'pepita'] / gflops['mnist', 'pepita']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
