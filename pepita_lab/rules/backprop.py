"""Backpropagation of the mean cross-entropy, written by hand (tested against autograd).

`chain_factors` is the backward pass with a choice of matrix carrying the error down one
layer: BP uses `W_{l+1}`, feedback alignment a fixed random `B_l` of the same shape.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import Factors, check_mlp, forward, relu_grad, updates_from_factors


@torch.no_grad()
def chain_factors(weights: list[Tensor], x: Tensor, target: Tensor, carriers: list[Tensor],
                  masks: list[Tensor] | None = None,
                  biases: list[Tensor] | None = None) -> Factors:
    """Backward pass where `carriers[l]` (shape of `weights[l+1]`) carries the error from layer
    l+1 down to layer l. With `carriers = weights[1:]` this is exact backprop."""
    hs = forward(weights, x, masks, biases)
    L = len(weights)
    deltas = [None] * L
    deltas[-1] = hs[-1] - target  # (B, C): B * dLoss/dlogits for the mean cross-entropy
    for l in range(L - 2, -1, -1):
        mask = None if masks is None else masks[l]
        deltas[l] = (deltas[l + 1] @ carriers[l]) * relu_grad(hs[l + 1], mask)  # (B, n_l)
    return Factors(deltas=deltas, inputs=hs[:L], probs=hs[-1])


def bp_factors(weights, x, target, masks=None, biases=None) -> Factors:
    return chain_factors(weights, x, target, weights[1:], masks, biases)


def bp_updates(weights: list[Tensor], x: Tensor, target: Tensor) -> list[Tensor]:
    """Gradient of the mean cross-entropy of softmax(MLP(x)) against one-hot `target`."""
    check_mlp(weights, x, target)
    return updates_from_factors(bp_factors(weights, x, target))
