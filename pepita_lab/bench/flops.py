"""Multiply-adds of a step counted by a library: `torch.utils.flop_counter.FlopCounterMode`,
which counts the matrix products and convolutions PyTorch dispatches (mm, addmm, bmm,
baddbmm, convolution and its backward, ...) as 2 x their multiply-adds, and leaves out
element-wise work (ReLU, softmax, masks, the momentum update's axpy). The cost model
(`analysis.step_cost`, `Rule.step_cost`) counts the same products, so the two should agree;
`tests/test_flops.py` checks every rule and docs/memory.md explains what remains apart.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode


# (formulas of shapes, as the library's own: 2 x multiply-adds; its registered ones are
# already wrapped for its registry and cannot be passed again)
def _addmm_flop(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    (m, k), n = a_shape, b_shape[-1]
    return 2 * m * n * k


def _baddbmm_flop(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    (K, m, k), n = a_shape, b_shape[-1]
    return 2 * K * m * n * k


def _conv_pointwise_flop(x_shape, w_shape, bias, padding, stride, dilation, groups, *args,
                         out_shape=None, **kwargs) -> int:
    return flop_counter.conv_flop_count(list(x_shape), list(w_shape), list(out_shape))


# Products the lab dispatches that FlopCounterMode's registry (keyed by operator, without its
# in-place forms) leaves out, counted by the library's own formulas through its
# `custom_mapping`: the momentum update's in-place product `v.addmm_(delta^T, a)` (batched:
# `baddbmm_`) and oneDNN's convolution with the ReLU fused in (`kernels.conv_relu`).
LAB_OPS = {torch.ops.aten.addmm_: _addmm_flop, torch.ops.aten.baddbmm_: _baddbmm_flop,
           torch.ops.mkldnn._convolution_pointwise: _conv_pointwise_flop}


def _counter(lab_ops: bool) -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=LAB_OPS if lab_ops else None)


def count_macs(fn: Callable[[], object], *, lab_ops: bool = True) -> int:
    """Multiply-adds of the products `fn()` dispatches (FlopCounterMode's FLOPs / 2); with
    `lab_ops` (default) the in-place and fused products of `LAB_OPS` too."""
    counter = _counter(lab_ops)
    with counter:
        fn()
    return int(counter.get_total_flops()) // 2


def macs_by_op(fn: Callable[[], object], *, lab_ops: bool = True) -> dict[str, int]:
    """`count_macs` per operator (e.g. {"aten.mm": ..., "aten.convolution": ...})."""
    counter = _counter(lab_ops)
    with counter:
        fn()
    totals = counter.get_flop_counts().get("Global", {})
    return {str(op): int(n) // 2 for op, n in totals.items()}


__all__ = ["count_macs", "macs_by_op", "LAB_OPS"]
