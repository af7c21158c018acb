"""`Factors`, what every rule returns, and the layer arithmetic on them: checks on the pure
functions' inputs, the error's way down through a layer (BP, FA, DFA), and the step from
per-layer factors to weight updates. The nets and their forward pass are in `pepita_lab.nets`,
the CPU kernels of the conv path in `pepita_lab.kernels`.

Every rule produces, for each layer l, a pair of factors `(delta_l, a_l)`: `delta_l` shaped
like the layer's output, `a_l` like its input, such that the batch-mean update is
`dW_l = delta_l^T a_l / B` for a fully connected layer and its convolutional form for a conv
layer (the sum over output positions of `delta_l[:, :, i, j]^T patch_ij(a_l)`, over B),
and `db_l = mean(delta_l)` summed over positions for nets with biases. The same code trains a
population of K nets at once (the training loop's only shape; K = 1 for a single run): weights
(K, out, in) or (K, out_c, in_c, k, k), factors (K, B, ...), every fully connected product
batched by broadcasting, every conv primitive applied member by member (`kernels.per_member`).
The training loop folds that product into the momentum buffer; the pure `*_updates` functions
take one net's weights (no K) and return it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn.grad import conv2d_input

from ..kernels import (channel_first, maps_layout, max_unpool, mm, per_member,
                       pool_winners)
from ..nets import conv_output_shape, is_conv, pooled_shape


class Factors(NamedTuple):
    """Per-layer factors of a rule's update, plus the clean pass's output for metrics (a
    record: made once per step, read by the loop)."""

    # in the loop each with a leading K (an input the members share may lack it: the data)
    deltas: list[Tensor]  # deltas[l]: (B, out_l), or (B, c_l, H'_l, W'_l) for a conv layer
    inputs: list[Tensor]  # inputs[l]: (B, in_l), or (B, c_{l-1}, H_l, W_l) for a conv layer
    # (B, C) softmax output of the standard (clean) pass; None for a rule without a softmax
    # output (Forward-Forward), which gives `loss` and `batch` instead
    probs: Tensor | None
    loss: Tensor | None = None  # (B,) or (K, B): each sample's loss (the rule's own)
    n: int | None = None  # the batch size B, when `probs` is None (the deltas may hold 2B rows)

    @property
    def batch(self) -> int:
        """B, the divisor of the batch-mean update."""
        return self.probs.shape[-2] if self.probs is not None else self.n


def check_mlp(weights: list[Tensor], x: Tensor, target: Tensor, pool: int = 1) -> None:
    """Refuse weights that don't chain, or x / target of the wrong shape, with one clear line.
    Conv layers (4-D weights) may come first, then fully connected ones (2-D)."""
    if len(weights) == 0:
        raise ValueError("weights is empty: expected at least one (out, in) matrix")
    for i, W in enumerate(weights):
        fc_below = any(V.dim() == 2 for V in weights[:i])
        if W.dim() != 2 and not (is_conv(W) and not fc_below and i < len(weights) - 1):
            raise ValueError(f"weights[{i}] has shape {tuple(W.shape)}: expected (out, in), "
                             "or (out_c, in_c, k, k) for conv layers before every (out, in) one")
    n_in = weights[0].shape[1]
    if is_conv(weights[0]) and (x.dim() != 4 or x.shape[1] != n_in):
        raise ValueError(f"x has shape {tuple(x.shape)}: expected images (B, {n_in}, H, W) "
                         "for a conv first layer")
    if not is_conv(weights[0]) and (x.dim() != 2 or x.shape[1] != n_in):
        raise ValueError(f"x has shape {tuple(x.shape)}: expected (B, {n_in})")
    shape = tuple(x.shape[1:])  # what the next layer sees, without the batch
    for i, W in enumerate(weights):
        n_in = shape[0] if is_conv(W) else math.prod(shape)
        if i > 0 and W.shape[1] != n_in:
            raise ValueError(
                f"weights do not chain: weights[{i - 1}] has shape {tuple(weights[i - 1].shape)} "
                f"but weights[{i}] has shape {tuple(W.shape)} (expected in = {n_in})")
        if not is_conv(W):
            shape = (W.shape[0],)
            continue
        if shape[1] < W.shape[2] or shape[2] < W.shape[3]:
            raise ValueError(f"weights[{i}] has a {W.shape[2]}x{W.shape[3]} kernel but its "
                             f"input maps are {shape[1]}x{shape[2]}")
        shape = pooled_shape(conv_output_shape(shape, tuple(W.shape)), pool)
    C = weights[-1].shape[0]
    if target.shape != (x.shape[0], C):
        raise ValueError(f"target has shape {tuple(target.shape)}: expected one-hot "
                         f"(B, C) = ({x.shape[0]}, {C})")


def check_feedback(feedback: list[Tensor], shapes: list[tuple[int, ...]], name: str) -> None:
    if len(feedback) != len(shapes):
        raise ValueError(f"{name} has {len(feedback)} matrices: expected {len(shapes)}")
    for i, (B_i, shape) in enumerate(zip(feedback, shapes)):
        if tuple(B_i.shape) != tuple(shape):
            raise ValueError(f"{name}[{i}] has shape {tuple(B_i.shape)}: expected {shape}")


def carry_down(delta: Tensor, carrier: Tensor, a_in: Tensor, below: Tensor, h_below: Tensor,
               pool: int, mask: Tensor | None = None) -> Tensor:
    """dLoss/da of the layer below (its delta) from `delta` (dLoss/da of the layer above, whose
    input was `a_in`), carried back through `carrier` (shaped like the layer above's weight:
    that weight for BP, a fixed random stand-in for FA), through the flatten and the max-pool
    if the layer below (weight `below`, output `h_below`, dropout `mask`) is a conv layer, and
    through its ReLU (and mask).

    Below a max-pool without dropout, the ReLU's derivative is taken on the pooled side: the
    winner of each window holds the pooled value `a_in`, so `relu'` there is `a_in > 0`, and
    every other position gets nothing; the same numbers as on the full map, at a quarter of
    the work for a 2x2 pool."""
    if is_conv(carrier):  # (B, c, H_in, W_in), members' (K, B, ...)
        g = per_member(lambda d, C, a: conv2d_input(a.shape, C, d), delta, carrier, a_in,
                       base=(4, 4, 4))
    else:
        g = mm(delta, carrier)  # (B, in)
    if not is_conv(below):
        return g * relu_grad(h_below, mask)
    *lead, c, H, W = h_below.shape  # lead: (B,) or (K, B)
    pooled_side = pool > 1 and mask is None
    if pooled_side:
        g = g * torch.sign(a_in)  # relu' at the winners: a_in >= 0 (pooled ReLU outputs)
    g = maps_layout(g.reshape(*lead, c, H // pool, W // pool))  # undo the flatten
    if pool > 1:  # the gradient goes to the position that won each pooling window
        g = per_member(lambda g, h: max_unpool(g, pool_winners(h, pool), (H, W)), g, h_below,
                       base=(4, 4))
    return g if pooled_side else g * relu_grad(h_below, mask)


def relu_grad(h: Tensor, mask: Tensor | None) -> Tensor:
    """d h / d a for h = relu(a) * mask, written from h itself (h > 0 exactly where a > 0 and the
    mask keeps the unit) as `sign(h)`: h >= 0, so its sign is 1 or 0, and `sign` is a plain
    float kernel (on the CPU about 10x faster than `(h > 0).to(float)`, and a product with a
    bool mask is as slow)."""
    g = torch.sign(h)
    return g if mask is None else g * mask


def project_onto_map(s: Tensor, B_l: Tensor, h: Tensor) -> Tensor:
    """`s @ B_l` (B, n) viewed as the map `h` (B, c, H, W), B_l's columns channel-first like
    every flattened map, computed straight into `h`'s layout: for channels-last maps from a
    copy of B_l with its columns reordered (n C numbers instead of B n, and no product of
    mixed layouts, which is many times slower). Members' (s (K, B, C), B_l (K, C, n), h
    (K, B, c, H, W)) member by member."""
    return per_member(_project_onto_map, s, B_l, h, base=(2, 2, 4))


def _project_onto_map(s: Tensor, B_l: Tensor, h: Tensor) -> Tensor:
    B, c, H, W = h.shape
    if h.is_contiguous() or not h.is_contiguous(memory_format=torch.channels_last):
        return (s @ B_l).view(h.shape)
    B_hwc = B_l.view(-1, c, H, W).permute(0, 2, 3, 1).reshape(B_l.shape[0], -1)
    return (s @ B_hwc).view(B, H, W, c).permute(0, 3, 1, 2)


def weight_update(delta: Tensor, a: Tensor) -> Tensor:
    """`delta^T a` summed over the batch; for a conv layer its convolutional form, summed over
    the batch and the output positions too (one convolution, no loop over positions). Members'
    factors give (K, out, in) (a shared input broadcasts), or (K, out_c, in_c, k, k)."""
    if delta.dim() >= 4:
        return per_member(_conv_weight_update, delta, a, base=(4, 4))
    return mm(delta.mT, a)


def _conv_weight_update(delta: Tensor, a: Tensor) -> Tensor:
    kh, kw = a.shape[2] - delta.shape[2] + 1, a.shape[3] - delta.shape[3] + 1
    if delta.is_contiguous(memory_format=torch.channels_last):  # both in delta's layout:
        a = maps_layout(a)  # oneDNN is slow on mixed ones
    else:
        a, delta = channel_first(a), delta.contiguous()
    # torch.nn.grad.conv2d_weight's own call, without its Python argument parsing
    shape = delta.new_empty(1).expand(delta.shape[1], a.shape[1], kh, kw)
    return torch.ops.aten.convolution_backward(delta, a, shape, None, [1, 1], [0, 0], [1, 1],
                                               False, [0], 1, (False, True, False))[1]


def bias_update(delta: Tensor, keepdim: bool = False) -> Tensor:
    """`delta` summed over the batch (and a conv layer's output positions): (out,), members'
    (K, out); with `keepdim` a fully connected layer's keeps the batch's axis, (K, 1, out), as
    the loop holds its biases."""
    if delta.dim() >= 4:
        return delta.sum((-4, -2, -1))
    return delta.sum(-2, keepdim=keepdim)


def updates_from_factors(f: Factors) -> list[Tensor]:
    """`dW_l = delta_l^T a_l / B`, the batch mean of the per-sample outer products (conv
    layers: of their convolutional form)."""
    B = f.batch
    return [weight_update(d, a) / B for d, a in zip(f.deltas, f.inputs)]


def one_hot(y: Tensor, n_classes: int, dtype=torch.float32) -> Tensor:
    return torch.nn.functional.one_hot(y, n_classes).to(dtype)
