"""Feedback alignment (FA) and direct feedback alignment (DFA): fixed random matrices in place
of the transposed forward weights, so no weight transport."""

from __future__ import annotations

import torch
from torch import Tensor

from .backprop import chain_factors
from .common import (Factors, check_feedback, check_mlp, forward, relu_grad,
                     updates_from_factors)


def fa_factors(weights, x, target, feedback, masks=None, biases=None) -> Factors:
    return chain_factors(weights, x, target, feedback, masks, biases)


def fa_updates(weights: list[Tensor], x: Tensor, target: Tensor,
               feedback: list[Tensor]) -> list[Tensor]:
    """FA: `feedback[i]` (shape of `weights[i+1]`) stands in for `weights[i+1]` going backwards."""
    check_mlp(weights, x, target)
    check_feedback(feedback, [tuple(W.shape) for W in weights[1:]], "feedback")
    return updates_from_factors(fa_factors(weights, x, target, feedback))


@torch.no_grad()
def direct_factors(weights: list[Tensor], x: Tensor, target: Tensor, feedback: list[Tensor],
                   signal: str, masks=None, biases=None) -> Factors:
    """Each hidden layer l gets `(s B_l) * relu'(a_l)` straight from the output, where the
    projected signal s is the error e (DFA) or the target t (DRTP); B_l: (C, n_l)."""
    hs = forward(weights, x, masks, biases)
    e = hs[-1] - target  # (B, C)
    s = e if signal == "error" else target
    deltas = []
    for l, B_l in enumerate(feedback):
        mask = None if masks is None else masks[l]
        deltas.append((s @ B_l) * relu_grad(hs[l + 1], mask))  # (B, n_l)
    deltas.append(e)
    return Factors(deltas=deltas, inputs=hs[:-1], probs=hs[-1])


def dfa_factors(weights, x, target, feedback, masks=None, biases=None) -> Factors:
    return direct_factors(weights, x, target, feedback, "error", masks, biases)


def direct_shapes(weights: list[Tensor]) -> list[tuple[int, int]]:
    C = weights[-1].shape[0]
    return [(C, W.shape[0]) for W in weights[:-1]]


def dfa_updates(weights: list[Tensor], x: Tensor, target: Tensor,
                feedback: list[Tensor]) -> list[Tensor]:
    """DFA: hidden layer i learns from `(e feedback[i]) * relu'`, feedback[i]: (C, n_i)."""
    check_mlp(weights, x, target)
    check_feedback(feedback, direct_shapes(weights), "feedback")
    return updates_from_factors(dfa_factors(weights, x, target, feedback))
