"""Each op of a conv PEPITA step timed alone, on hot caches, for the paper's MNIST conv net
(`paper-mnist-conv`: 32 filters 5x5, ReLU, 2x2 max-pool, 4608 -> 10; batch 50), their sum
weighted by how often a step calls them, and the conv/FC FLOP-rate ratio that sum would give
against a fully connected PEPITA step (MNIST 784-1024-10, batch 64) timed in the same process:
an upper bound on what any arrangement of these library calls can reach (docs/performance.md).

    python benchmarks/conv_step_budget.py [--threads N]

The ops are called 50 times in a row on the same tensors, in 15 blocks interleaved across ops
(the median block is reported), so each is timed with its operands in cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def median_seconds(fns: dict, calls: int = 50, blocks: int = 15) -> dict:
    """Median seconds per call of each function, blocks interleaved across functions."""
    per_call = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(3):
            fn()
    for _ in range(blocks):
        for k, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            per_call[k].append((time.perf_counter() - start) / calls)
    return {k: sorted(v)[len(v) // 2] for k, v in per_call.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from pepita_lab.analysis import conv_step_cost, step_cost
    from pepita_lab.bench import _config, random_data, trainer_step
    from pepita_lab.devices import keep_freed_memory
    from pepita_lab.kernels import conv_relu, maps_layout, max_pool
    from pepita_lab.rules.factors import weight_update
    from pepita_lab.training import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the trainers do
    cpu = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    B, C = 50, 10
    x = maps_layout(torch.rand(B, 1, 28, 28, generator=g))
    W1 = 0.1 * torch.randn(32, 1, 5, 5, generator=g)
    W2 = 0.01 * torch.randn(C, 4608, generator=g)
    F = 0.05 * torch.randn(784, C, generator=g)
    v2 = torch.zeros(C, 4608)
    h, h_err = conv_relu(x, W1), conv_relu(x, W1)
    pooled = max_pool(h, 2)
    a = pooled.flatten(1)
    e = torch.softmax(a @ W2.mT, -1)

    def rest():  # e F^T, the modulated input, the two softmaxes
        x + (e @ F.mT).view(x.shape)
        torch.softmax(e, -1)
        torch.softmax(e, -1)

    ops = {  # name: (calls per step, function)
        "convolution + ReLU": (2, lambda: conv_relu(x, W1)),
        "conv2d_weight": (1, lambda: weight_update(h, x)),
        "max-pool": (2, lambda: max_pool(h, 2)),
        "flatten (channel-first copy)": (2, lambda: pooled.flatten(1)),
        "4608 -> 10 forward": (2, lambda: a @ W2.mT),
        "4608 -> 10 momentum update": (1, lambda: v2.addmm_(e.T, a, beta=0.9, alpha=0.01)),
        "h - h_err (in place)": (1, lambda: h.sub_(h_err)),
        "e F^T, x + F e, softmaxes": (1, rest),
    }
    seconds = median_seconds({k: fn for k, (_, fn) in ops.items()})
    total = sum(n * seconds[k] for k, (n, _) in ops.items())
    for k, (n, _) in ops.items():
        print(f"{k:<30} {1e3 * seconds[k]:7.3f} ms x {n}")
    print(f"{'sum':<30} {1e3 * total:7.3f} ms")

    data = random_data("mnist", 64 * 8, 64, cpu)
    fc = trainer_step(Trainer(_config("mnist", "pepita", 64, cpu, name="paper-mnist"), data,
                              progress=False))
    fc_step = median_seconds({"fc": fc}, calls=20, blocks=9)["fc"]
    fc_flops = 2 * step_cost("pepita", [784, 1024, C], 64).macs
    cfg = _config("mnist", "pepita", B, cpu, name="paper-mnist-conv")
    conv_flops = 2 * conv_step_cost("pepita", (1, 28, 28), cfg.conv_channels, cfg.kernel_size,
                                    cfg.pool, cfg.hidden, C, B).macs
    fc_rate = fc_flops / fc_step
    print(f"FC PEPITA step {1e3 * fc_step:.3f} ms, {fc_rate / 1e9:.1f} GFLOP/s; conv PEPITA "
          f"{conv_flops / 1e6:.1f} MFLOP at that rate: {1e3 * conv_flops / fc_rate:.3f} ms; "
          f"bound on conv / FC GFLOP/s from the sum: {conv_flops / total / fc_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
