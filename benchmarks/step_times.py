"""Median training-step time of PEPITA and BP (by hand) on the paper's MNIST net, batch 64, and
on its conv net (`paper-mnist-conv`, batch 50), with conv PEPITA's FLOP rate relative to fully
connected PEPITA's (as `pepita-lab bench` reports it), for the pepita-lab checkout at --repo
(default: this one), to compare versions side by side:

    git worktree add /tmp/old <commit>
    for i in 1 2 3; do
      python benchmarks/step_times.py --repo /tmp/old; python benchmarks/step_times.py
    done

Random data of MNIST's shape, lr 1e-3 (as `pepita-lab bench`) given as the epoch loop gives it
(`bench.trainer_step`), 30 warm-up steps, then the median of 9 blocks of 100 steps. Run each measurement in a fresh process, alternating versions: this
machine's speed drifts over minutes (docs/performance.md).
"""

from __future__ import annotations

import sys

import checkout


def main(argv: list[str] | None = None) -> int:
    args = checkout.parse_args(__doc__, argv)
    pepita_lab, Trainer, _ = checkout.load(args.repo, args.threads)
    import torch

    from pepita_lab.analysis import conv_step_cost, step_cost
    from pepita_lab.bench import _config, random_data, trainer_step

    device = torch.device("cpu")
    times, gflops = {}, {}
    for net, B in (("mnist", 64), ("mnist-conv", 50)):
        data = random_data("mnist", B * 8, B, device)
        for rule in ("pepita", "bp"):
            config = _config("mnist", rule, B, device, name=f"paper-{net}")
            step = trainer_step(Trainer(config, data, progress=False))
            times[net, rule] = t = checkout.median_block(step, 30, 9, 100)
            cost = (step_cost(rule, [data.n_features, 1024, data.n_classes], B) if net == "mnist"
                    else conv_step_cost(rule, data.image_shape, config.conv_channels,
                                        config.kernel_size, config.pool, config.hidden,
                                        data.n_classes, B))
            gflops[net, rule] = 2 * cost.macs / t / 1e9
    names = {("mnist", "pepita"): "PEPITA", ("mnist", "bp"): "BP",
             ("mnist-conv", "pepita"): "conv PEPITA", ("mnist-conv", "bp"): "conv BP"}
    checkout.report(args, pepita_lab.__version__, "ms per step",
                    {names[k]: 1e3 * t for k, t in times.items()}, "ms")
    print(f"  conv PEPITA GFLOP/s / FC PEPITA GFLOP/s "
          f"{gflops['mnist-conv', 'pepita'] / gflops['mnist', 'pepita']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
