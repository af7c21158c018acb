"""Backpropagation of the mean cross-entropy, written by hand (tested against autograd).

`chain_factors` is the backward pass with a choice of tensor carrying the error down one
layer: BP uses `W_{l+1}`, feedback alignment a fixed random `B_l` of the same shape. Through a
conv layer the error goes back by the transposed convolution, through a max-pool to the
position that won each window.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nets import forward_pass
from .interface import Rule
from .factors import Factors, carry_down, check_mlp, updates_from_factors


@torch.no_grad()
def chain_factors(weights: list[Tensor], x: Tensor, target: Tensor, carriers: list[Tensor],
                  masks: list[Tensor] | None = None,
                  biases: list[Tensor] | None = None, pool: int = 1) -> Factors:
    """Backward pass where `carriers[l]` (shape of `weights[l+1]`) carries the error from layer
    l+1 down to layer l. With `carriers = weights[1:]` this is exact backprop."""
    hs, ins = forward_pass(weights, x, masks, biases, pool=pool)
    L = len(weights)
    deltas = [None] * L
    deltas[-1] = hs[-1] - target  # (B, C): B * dLoss/dlogits for the mean cross-entropy
    for l in range(L - 2, -1, -1):
        mask = None if masks is None else masks[l]
        deltas[l] = carry_down(deltas[l + 1], carriers[l], ins[l + 1], weights[l], hs[l + 1],
                               pool, mask)  # (B, n_l) or (B, c_l, H'_l, W'_l)
    return Factors(deltas=deltas, inputs=ins, probs=hs[-1])


def bp_factors(weights, x, target, masks=None, biases=None, pool=1) -> Factors:
    return chain_factors(weights, x, target, weights[1:], masks, biases, pool)


def bp_updates(weights: list[Tensor], x: Tensor, target: Tensor, *,
               pool: int = 1) -> list[Tensor]:
    """Gradient of the mean cross-entropy of softmax(net(x)) against one-hot `target`
    (conv layers first, each followed by a max-pool of size `pool`)."""
    check_mlp(weights, x, target, pool)
    return updates_from_factors(bp_factors(weights, x, target, pool=pool))


class Backprop(Rule):
    """Backprop of the mean cross-entropy, the error carried down by the forward weights."""

    name, label = "bp", "BP"
    table1_models, baseline = ("fc", "conv"), False
    error_path = "chain"  # for the cost model: the error goes down layer by layer

    def factors(self, net, x, target, masks, settings) -> Factors:
        return bp_factors(net.weights, net.shape_input(x), target, masks, net.biases, net.pool)
