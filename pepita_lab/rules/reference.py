"""The rules in their readable form: per-sample loops written straight from the equations in
docs/pepita.md (one sample at a time, explicit outer products), for fully connected nets
without biases. Slow by design; the oracle tests run them in float64 against the batched rules.
Each returns the batch-mean updates `dW` (shapes of `weights`), applied as `W -= lr * dW`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def forward_one(weights: list[Tensor], x: Tensor, mask: list[Tensor] | None = None) -> list[Tensor]:
    """One sample x (d,): `[h_0 = x, h_1, ..., h_L]`, h_l = relu(W_l h_{l-1}) * m_l, softmax
    output; `mask[l]` (n_l,) is this sample's dropout mask of hidden layer l."""
    hs = [x]
    for l, W in enumerate(weights):
        a = W @ hs[-1]
        if l < len(weights) - 1:
            h = torch.clamp(a, min=0.0)
            hs.append(h * mask[l] if mask is not None else h)
        else:
            z = torch.exp(a - a.max())
            hs.append(z / z.sum())
    return hs


def _sample_masks(masks, b):
    return None if masks is None else [m[b] for m in masks]


def pepita_reference(weights, x, target, F, *, sign: float = 1.0,
                     output_error: str = "modulated", masks=None) -> list[Tensor]:
    """PEPITA: the clean pass, the pass on `x + sign F e`, then `(h_l - h_l^err) h_{l-1}^err`
    for hidden layers and `e_out h_{L-1}^err` for the last (e_out: the modulated pass's error,
    or the clean one's)."""
    B, L = x.shape[0], len(weights)
    dW = [torch.zeros_like(W) for W in weights]
    for b in range(B):
        m = _sample_masks(masks, b)
        hs = forward_one(weights, x[b], m)
        e = hs[-1] - target[b]
        hs_err = forward_one(weights, x[b] + sign * (F @ e), m)
        for l in range(L - 1):
            dW[l] += torch.outer(hs[l + 1] - hs_err[l + 1], hs_err[l])
        e_out = hs_err[-1] - target[b] if output_error == "modulated" else e
        dW[-1] += torch.outer(e_out, hs_err[L - 1])
    return [d / B for d in dW]


def backward_reference(weights, x, target, carry) -> list[Tensor]:
    """One backward pass per sample; `carry(l, delta_above, e, t)` is what reaches h_l (before
    the ReLU derivative): `W_{l+1}^T delta` for BP, `B_l^T delta` for FA, `B_l^T e` for DFA,
    `B_l^T t` for DRTP."""
    B, L = x.shape[0], len(weights)
    dW = [torch.zeros_like(W) for W in weights]
    for b in range(B):
        hs = forward_one(weights, x[b])
        e = hs[-1] - target[b]
        delta = e
        dW[-1] += torch.outer(delta, hs[L - 1])
        for l in range(L - 2, -1, -1):
            delta = carry(l, delta, e, target[b]) * (hs[l + 1] > 0).to(x.dtype)
            dW[l] += torch.outer(delta, hs[l])
    return [d / B for d in dW]


def bp_reference(weights, x, target) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: weights[l + 1].T @ d)


def fa_reference(weights, x, target, feedback) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: feedback[l].T @ d)


def dfa_reference(weights, x, target, feedback) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: feedback[l].T @ e)


def drtp_reference(weights, x, target, feedback) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: feedback[l].T @ t)
