"""What every rule shares: the forward pass of a bias-free net, checks on its inputs, and the
step from per-layer factors to weight updates.

A net is a list of weights: conv layers first (4-D, `(out_c, in_c, k, k)`: conv2d, stride 1,
no padding, then ReLU), then fully connected ones (2-D, `(out, in)`), the last one the
softmax output. A conv layer's output `h_l` (B, c, H', W') is where rules take their signals;
the next layer sees it max-pooled by `pool` (and flattened if that layer is fully connected).
A net with a conv first layer takes image-shaped inputs (B, C, H, W).

Every rule in this package produces, for each layer l, a pair of factors `(delta_l, a_l)`:
`delta_l` shaped like the layer's output, `a_l` like its input, such that the batch-mean update
is `dW_l = delta_l^T a_l / B` for a fully connected layer and its convolutional form for a conv
layer (the sum over output positions of `delta_l[:, :, i, j]^T patch_ij(a_l)`, over B),
and `db_l = mean(delta_l)` summed over positions for nets with biases. The same code trains a
population of K fully connected nets at once: weights (K, out, in), factors (K, B, ...), every
product batched by broadcasting. The training loop folds that product into the momentum buffer;
the pure `*_updates` functions return it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as nnf
from torch.nn.grad import conv2d_input, conv2d_weight


@dataclass
class Factors:
    """Per-layer factors of a rule's update, plus the clean pass's output for metrics."""

    deltas: list[Tensor]  # deltas[l]: (B, out_l), or (B, c_l, H'_l, W'_l) for a conv layer
    inputs: list[Tensor]  # inputs[l]: (B, in_l), or (B, c_{l-1}, H_l, W_l) for a conv layer
    probs: Tensor  # (B, C) softmax output of the standard (clean) pass


def is_conv(W: Tensor) -> bool:
    """A 4-D weight `(out_c, in_c, k, k)` is a conv layer (population weights are 3-D)."""
    return W.dim() == 4


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


def conv_output_shape(shape: tuple[int, int, int],
                      weight_shape: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """(c, H', W') of a conv layer (stride 1, no padding) with weight (c, c_in, kh, kw) on
    maps of `shape` (c_in, H, W)."""
    return (weight_shape[0], shape[1] - weight_shape[2] + 1, shape[2] - weight_shape[3] + 1)


def pooled_shape(shape: tuple[int, int, int], pool: int) -> tuple[int, int, int]:
    """(c, H // pool, W // pool): max-pooling drops the rows and columns that don't fit."""
    return (shape[0], shape[1] // pool, shape[2] // pool)


def layer_shapes(weights: list[Tensor], in_shape: tuple[int, ...],
                 pool: int = 1) -> list[tuple[int, ...]]:
    """The output shape of each layer, without the batch: (c, H', W') for a conv layer (before
    its pooling), (out,) for a fully connected one; `in_shape` is (C, H, W) or (d,)."""
    shapes, shape = [], tuple(in_shape)
    for l, W in enumerate(weights):
        if l > 0 and is_conv(weights[l - 1]):
            shape = pooled_shape(shape, pool)
        shape = conv_output_shape(shape, tuple(W.shape)) if is_conv(W) else (W.shape[0],)
        shapes.append(shape)
    return shapes


def check_feedback(feedback: list[Tensor], shapes: list[tuple[int, ...]], name: str) -> None:
    if len(feedback) != len(shapes):
        raise ValueError(f"{name} has {len(feedback)} matrices: expected {len(shapes)}")
    for i, (B_i, shape) in enumerate(zip(feedback, shapes)):
        if tuple(B_i.shape) != tuple(shape):
            raise ValueError(f"{name}[{i}] has shape {tuple(B_i.shape)}: expected {shape}")


def max_pool(h: Tensor, pool: int) -> Tensor:
    """`max_pool2d(h, pool)` (B, c, H // pool, W // pool), the same numbers, as maxima of
    strided views (a loop over the window's offsets, not over positions): on the CPU several
    times faster than PyTorch's max-pool kernel (measured for the paper's MNIST maps at batch
    50: 0.07-0.12 ms on channels-last maps, 0.25 ms on channel-first ones, 2.5 ms for
    max_pool2d). The result keeps `h`'s layout."""
    H, W = h.shape[-2] // pool * pool, h.shape[-1] // pool * pool
    cols = h[..., :H, 0:W:pool]
    for j in range(1, pool):
        cols = torch.maximum(cols, h[..., :H, j:W:pool])  # (B, c, H, W // pool)
    out = cols[..., 0::pool, :]
    for i in range(1, pool):
        out = torch.maximum(out, cols[..., i::pool, :])
    return out


def pool_winners(h: Tensor, pool: int) -> Tensor:
    """Where each max-pool window's maximum sits (max_pool2d's indices, ties to the first), from
    a channels-last copy: PyTorch's CPU kernel is several times faster on that layout."""
    return nnf.max_pool2d(h.contiguous(memory_format=torch.channels_last), pool,
                          return_indices=True)[1]


def layer_input(h: Tensor, below: Tensor, W: Tensor, pool: int) -> Tensor:
    """What layer W sees of the output `h` of the layer below (weight `below`): a conv
    layer's output max-pooled (if `pool` > 1), flattened (channel-first) before a fully
    connected layer."""
    if not is_conv(below):
        return h
    if pool > 1:
        h = max_pool(h, pool)  # (B, c, H' // pool, W' // pool)
    return h if is_conv(W) else h.flatten(1)  # channel-first: a copy from channels-last maps


def maps_layout(x: Tensor) -> Tensor:
    """Images or conv maps (B, c, H, W), the same values laid out channels-last on the CPU
    (unchanged elsewhere). On this layout oneDNN's convolution, its weight update and the
    strided max-pool are faster and the convolution needs no reorder of its output; measured
    for the paper's MNIST maps at batch 50: max-pool 0.07 ms against 0.25 ms, `conv2d_weight`
    0.29 against 0.35 ms. A single-channel image has the same memory either way: only its
    strides are restated (no copy)."""
    if x.device.type != "cpu" or x.dim() != 4:
        return x
    B, c, H, W = x.shape
    if c == 1 and x.is_contiguous():
        return x.as_strided(x.shape, (H * W, 1, W, 1))
    return x.contiguous(memory_format=torch.channels_last)


def channel_first(x: Tensor) -> Tensor:
    """The inverse of `maps_layout`: x (B, c, H, W) with channel-first strides."""
    B, c, H, W = x.shape
    if c == 1 and x.is_contiguous():
        return x.as_strided(x.shape, (H * W, H * W, W, 1))
    return x.contiguous()


def _fused_conv_relu(x: Tensor, W: Tensor) -> bool:
    """Whether oneDNN's convolution with a fused ReLU serves: float32 on the CPU, outside
    autograd, autocast and torch.compile (whose own fusions take over)."""
    return (x.device.type == "cpu" and x.dtype == W.dtype == torch.float32
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not (torch.is_grad_enabled() and (x.requires_grad or W.requires_grad))
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def conv_relu(x: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    """`relu(conv2d(x, W) + b)` (stride 1, no padding). On the CPU one oneDNN call with the
    ReLU fused in (the map is written once instead of written, read and rewritten), on
    channels-last maps; elsewhere conv2d, then an in-place ReLU."""
    x = maps_layout(x)
    if _fused_conv_relu(x, W):
        return torch.ops.mkldnn._convolution_pointwise(x, W, b, [0, 0], [1, 1], [1, 1], 1,
                                                       "relu", [], "")
    return nnf.conv2d(x, W, b).relu_()


def forward_pass(weights: list[Tensor], x: Tensor, masks: list[Tensor] | None = None,
                 biases: list[Tensor] | None = None, first_pre: Tensor | None = None,
                 pool: int = 1, softmax: bool = True) -> tuple[list[Tensor], list[Tensor]]:
    """`(hs, ins)`: layer outputs `[h_0 = x, h_1, ..., h_L]` (ReLU hidden layers times their
    dropout masks, softmax output, or the logits if not `softmax`) and each layer's input
    `ins[l]` (`h_l` itself, pooled and flattened after a conv layer). `first_pre`, if given, is
    layer 1's pre-activation already computed. Conv maps are channels-last on the CPU
    (`maps_layout`)."""
    if is_conv(weights[0]):
        x = maps_layout(x)
    hs, ins = [x], []
    h = x
    L = len(weights)
    for l, W in enumerate(weights):
        a_in = h if l == 0 else layer_input(h, weights[l - 1], W, pool)
        ins.append(a_in)
        b = None if biases is None else biases[l]
        a = first_pre if l == 0 and first_pre is not None else None
        if l < L - 1:
            if a is not None:
                h = torch.relu(a)
            elif is_conv(W):
                h = conv_relu(a_in, W, b)  # (B, c, H', W')
            else:
                h = pre_activation(W, a_in, b).relu_()  # a fresh pre-activation: in place
            if masks is not None:
                h = h * masks[l]
        else:
            a = pre_activation(W, a_in, b) if a is None else a  # (B, C)
            h = torch.softmax(a, dim=-1) if softmax else a
        hs.append(h)
    return hs, ins


def forward(weights: list[Tensor], x: Tensor, masks: list[Tensor] | None = None,
            biases: list[Tensor] | None = None, first_pre: Tensor | None = None,
            pool: int = 1) -> list[Tensor]:
    """Activations `[h_0 = x, h_1, ..., h_L]`: ReLU hidden layers (times their dropout masks),
    softmax output. `first_pre`, if given, is layer 1's pre-activation already computed."""
    return forward_pass(weights, x, masks, biases, first_pre, pool)[0]


def pre_activation(W: Tensor, x: Tensor, b: Tensor | None = None) -> Tensor:
    """`x W^T + b`, or `conv2d(x, W) + b` for a conv layer. Also for a population: W (K, out,
    in), x (B, in) or (K, B, in), b (K, 1, out)."""
    if is_conv(W):
        return nnf.conv2d(maps_layout(x), W, b)  # (B, out_c, H - k + 1, W - k + 1)
    if b is None:
        return x @ W.mT
    return torch.addmm(b, x, W.T) if W.dim() == 2 else torch.baddbmm(b, x.expand(
        W.shape[0], *x.shape[-2:]), W.mT)


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
    if is_conv(carrier):
        g = conv2d_input(a_in.shape, carrier, delta)  # (B, c, H_in, W_in)
    else:
        g = delta @ carrier  # (B, in)
    if not is_conv(below):
        return g * relu_grad(h_below, mask)
    B, c, H, W = h_below.shape
    pooled_side = pool > 1 and mask is None
    if pooled_side:
        g = g * torch.sign(a_in)  # relu' at the winners: a_in >= 0 (pooled ReLU outputs)
    g = maps_layout(g.reshape(B, c, H // pool, W // pool))  # undo the flatten
    if pool > 1:  # the gradient goes to the position that won each pooling window
        g = nnf.max_unpool2d(g, pool_winners(h_below, pool), pool, output_size=(H, W))
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
    mixed layouts, which is many times slower)."""
    B, c, H, W = h.shape
    if h.is_contiguous() or not h.is_contiguous(memory_format=torch.channels_last):
        return (s @ B_l).view(h.shape)
    B_hwc = B_l.view(-1, c, H, W).permute(0, 2, 3, 1).reshape(B_l.shape[0], -1)
    return (s @ B_hwc).view(B, H, W, c).permute(0, 3, 1, 2)


def weight_update(delta: Tensor, a: Tensor) -> Tensor:
    """`delta^T a` summed over the batch; for a conv layer its convolutional form, summed over
    the batch and the output positions too (one convolution, no loop over positions)."""
    if delta.dim() == 4:  # both in delta's layout: oneDNN is slow on mixed ones
        kh, kw = a.shape[2] - delta.shape[2] + 1, a.shape[3] - delta.shape[3] + 1
        if delta.is_contiguous(memory_format=torch.channels_last):
            a = maps_layout(a)
        else:
            a, delta = channel_first(a), delta.contiguous()
        return conv2d_weight(a, (delta.shape[1], a.shape[1], kh, kw), delta)
    return delta.mT @ a


def bias_update(delta: Tensor) -> Tensor:
    """`delta` summed over the batch (and a conv layer's output positions): (out,)."""
    return delta.sum((0, 2, 3)) if delta.dim() == 4 else delta.sum(0)


def updates_from_factors(f: Factors) -> list[Tensor]:
    """`dW_l = delta_l^T a_l / B`, the batch mean of the per-sample outer products (conv
    layers: of their convolutional form)."""
    B = f.probs.shape[-2]
    return [weight_update(d, a) / B for d, a in zip(f.deltas, f.inputs)]


def one_hot(y: Tensor, n_classes: int, dtype=torch.float32) -> Tensor:
    return torch.nn.functional.one_hot(y, n_classes).to(dtype)
