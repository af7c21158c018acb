"""What every rule shares: the forward pass of a bias-free MLP, checks on its inputs, and the
step from per-layer factors to weight updates.

Every rule in this package produces, for each layer l, a pair of factors `(delta_l, a_l)` with
shapes (B, out_l) and (B, in_l) such that the batch-mean update is `dW_l = delta_l^T a_l / B`
(and `db_l = mean(delta_l)` for nets with biases). The same code trains a population of K nets
at once: weights (K, out, in), factors (K, B, ...), every product batched by broadcasting. The training loop folds that outer product
into the momentum buffer in one fused matrix product; the pure `*_updates` functions return it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Factors:
    """Per-layer factors of a rule's update, plus the clean pass's output for metrics."""

    deltas: list[Tensor]  # deltas[l]: (B, out_l)
    inputs: list[Tensor]  # inputs[l]: (B, in_l)
    probs: Tensor  # (B, C) softmax output of the standard (clean) pass


def check_mlp(weights: list[Tensor], x: Tensor, target: Tensor) -> None:
    """Refuse weights that don't chain, or x / target of the wrong shape, with one clear line."""
    if len(weights) == 0:
        raise ValueError("weights is empty: expected at least one (out, in) matrix")
    for i, W in enumerate(weights):
        if W.dim() != 2:
            raise ValueError(f"weights[{i}] has shape {tuple(W.shape)}: expected (out, in)")
    for i in range(1, len(weights)):
        if weights[i].shape[1] != weights[i - 1].shape[0]:
            raise ValueError(
                f"weights do not chain: weights[{i - 1}] has shape {tuple(weights[i - 1].shape)} "
                f"but weights[{i}] has shape {tuple(weights[i].shape)} "
                f"(expected in = {weights[i - 1].shape[0]})")
    if x.dim() != 2 or x.shape[1] != weights[0].shape[1]:
        raise ValueError(f"x has shape {tuple(x.shape)}: expected (B, {weights[0].shape[1]})")
    C = weights[-1].shape[0]
    if target.shape != (x.shape[0], C):
        raise ValueError(f"target has shape {tuple(target.shape)}: expected one-hot "
                         f"(B, C) = ({x.shape[0]}, {C})")


def check_feedback(feedback: list[Tensor], shapes: list[tuple[int, int]], name: str) -> None:
    if len(feedback) != len(shapes):
        raise ValueError(f"{name} has {len(feedback)} matrices: expected {len(shapes)}")
    for i, (B_i, shape) in enumerate(zip(feedback, shapes)):
        if tuple(B_i.shape) != shape:
            raise ValueError(f"{name}[{i}] has shape {tuple(B_i.shape)}: expected {shape}")


def forward(weights: list[Tensor], x: Tensor, masks: list[Tensor] | None = None,
            biases: list[Tensor] | None = None, first_pre: Tensor | None = None) -> list[Tensor]:
    """Activations `[h_0 = x, h_1, ..., h_L]`: ReLU hidden layers (times their dropout masks),
    softmax output. `first_pre`, if given, is layer 1's pre-activation already computed."""
    hs = [x]
    h = x
    L = len(weights)
    for l, W in enumerate(weights):
        if l == 0 and first_pre is not None:
            a = first_pre
        else:
            a = pre_activation(W, h, None if biases is None else biases[l])  # (B, out_l)
        if l < L - 1:
            h = torch.relu(a)
            if masks is not None:
                h = h * masks[l]
        else:
            h = torch.softmax(a, dim=-1)
        hs.append(h)
    return hs


def pre_activation(W: Tensor, x: Tensor, b: Tensor | None = None) -> Tensor:
    """`x W^T + b`. Also for a population: W (K, out, in), x (B, in) or (K, B, in),
    b (K, 1, out)."""
    if b is None:
        return x @ W.mT
    return torch.addmm(b, x, W.T) if W.dim() == 2 else torch.baddbmm(b, x.expand(
        W.shape[0], *x.shape[-2:]), W.mT)


def relu_grad(h: Tensor, mask: Tensor | None) -> Tensor:
    """d h / d a for h = relu(a) * mask, written from h itself (h > 0 exactly where a > 0 and the
    mask keeps the unit)."""
    g = (h > 0).to(h.dtype)
    return g if mask is None else g * mask


def updates_from_factors(f: Factors) -> list[Tensor]:
    """`dW_l = delta_l^T a_l / B`, the batch mean of the per-sample outer products."""
    B = f.probs.shape[-2]
    return [d.mT @ a / B for d, a in zip(f.deltas, f.inputs)]


def one_hot(y: Tensor, n_classes: int, dtype=torch.float32) -> Tensor:
    return torch.nn.functional.one_hot(y, n_classes).to(dtype)
