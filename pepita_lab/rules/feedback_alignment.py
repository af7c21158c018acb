"""Feedback alignment (FA) and direct feedback alignment (DFA): fixed random matrices in place
of the transposed forward weights, so no weight transport. Conv layers: FA carries the error
down through a fixed random kernel shaped like the forward one; DFA projects it straight onto
the conv layer's output map, `B_l` of shape (C, c_l H'_l W'_l)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..kernels import mm
from ..nets import forward_pass, layer_shapes
from .backprop import chain_factors
from .interface import Rule
from .factors import (Factors, check_feedback, check_mlp, project_onto_map, relu_grad,
                     updates_from_factors)


def fa_factors(weights, x, target, feedback, masks=None, biases=None, pool=1) -> Factors:
    return chain_factors(weights, x, target, feedback, masks, biases, pool)


def fa_updates(weights: list[Tensor], x: Tensor, target: Tensor,
               feedback: list[Tensor], *, pool: int = 1) -> list[Tensor]:
    """FA: `feedback[i]` (shape of `weights[i+1]`) stands in for `weights[i+1]` going backwards."""
    check_mlp(weights, x, target, pool)
    check_feedback(feedback, [tuple(W.shape) for W in weights[1:]], "feedback")
    return updates_from_factors(fa_factors(weights, x, target, feedback, pool=pool))


@torch.no_grad()
def direct_factors(weights: list[Tensor], x: Tensor, target: Tensor, feedback: list[Tensor],
                   signal: str, masks=None, biases=None, pool=1) -> Factors:
    """Each hidden layer l gets `(s B_l) * relu'(a_l)` straight from the output, where the
    projected signal s is the error e (DFA) or the target t (DRTP); B_l: (C, n_l), n_l the
    units of layer l (a conv layer: c H' W', channel-first)."""
    hs, ins = forward_pass(weights, x, masks, biases, pool=pool)
    e = hs[-1] - target  # (B, C)
    s = e if signal == "error" else target
    deltas = []
    for l, B_l in enumerate(feedback):
        mask = None if masks is None else masks[l]
        h = hs[l + 1]
        # (B, n_l), or a conv layer's map (B, c, H', W') in h's layout
        projected = project_onto_map(s, B_l, h) if h.dim() >= 4 else mm(s, B_l)
        deltas.append(projected * relu_grad(h, mask))
    deltas.append(e)
    return Factors(deltas=deltas, inputs=ins, probs=hs[-1])


def dfa_factors(weights, x, target, feedback, masks=None, biases=None, pool=1) -> Factors:
    return direct_factors(weights, x, target, feedback, "error", masks, biases, pool)


def direct_shapes(weights: list[Tensor], x: Tensor | None = None,
                  pool: int = 1) -> list[tuple[int, int]]:
    """(C, n_l) per hidden layer; a conv net needs `x` for the sizes of its maps."""
    C = weights[-1].shape[0]
    if x is None or x.dim() != 4:
        return [(C, W.shape[0]) for W in weights[:-1]]
    return [(C, math.prod(shape)) for shape in layer_shapes(weights, x.shape[1:], pool)[:-1]]


def dfa_updates(weights: list[Tensor], x: Tensor, target: Tensor,
                feedback: list[Tensor], *, pool: int = 1) -> list[Tensor]:
    """DFA: hidden layer i learns from `(e feedback[i]) * relu'`, feedback[i]: (C, n_i)."""
    check_mlp(weights, x, target, pool)
    check_feedback(feedback, direct_shapes(weights, x, pool), "feedback")
    return updates_from_factors(dfa_factors(weights, x, target, feedback, pool=pool))


class FeedbackAlignment(Rule):
    """FA: a fixed random `B_l` shaped like `W_{l+1}` carries the error down."""

    name, label, feedback = "fa", "FA", "chain"
    table1_models = ("fc",)

    def factors(self, net, x, target, masks, settings) -> Factors:
        return chain_factors(net.weights, net.shape_input(x), target, net.feedback, masks,
                             net.biases, net.pool)


class DirectFeedbackAlignment(Rule):
    """DFA: hidden layer l gets `(e B_l) * relu'` straight from the output error."""

    name, label, feedback = "dfa", "DFA", "direct"
    signal = "error"  # what B_l projects: the error (DFA) or the target (DRTP)

    def factors(self, net, x, target, masks, settings) -> Factors:
        return direct_factors(net.weights, net.shape_input(x), target, net.feedback,
                              self.signal, masks, net.biases, net.pool)
