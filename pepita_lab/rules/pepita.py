"""PEPITA (Dellaferrera & Kreiman, ICML 2022): two forward passes, no backward pass.

The second pass runs on the input modulated by the output error through the fixed matrix F:
`x_err = x + sign * F e`. Hidden layer l learns from `(h_l - h_l^err) (h_{l-1}^err)^T`, the
last layer from `e_out (h_{L-1}^err)^T` (see docs/pepita.md for the variants).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import Factors, check_mlp, forward, pre_activation, updates_from_factors


@torch.no_grad()
def pepita_factors(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                   sign: float = 1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None, biases: list[Tensor] | None = None,
                   fused_first_layer: bool | str = False) -> Factors:
    """Factors of the PEPITA update.

    With `fused_first_layer`, the modulated pass's first pre-activation is computed as
    `W_1 x + sign * (F^T W_1^T)^T e` from the clean pass's `W_1 x`: equal in exact arithmetic.
    It replaces B d n_1 multiply-accumulates by C n_1 (d + B), a saving when C (d + B) < B d
    (MNIST at batch 64: 6x fewer), a loss for many classes and small batches (CIFAR-100 at
    batch 64). `"auto"` fuses only when it saves work.
    """
    if output_error not in ("modulated", "clean"):
        raise ValueError(f"output_error={output_error!r}: expected 'modulated' or 'clean'")
    (B, d), C = x.shape[-2:], target.shape[-1]
    if fused_first_layer == "auto":
        fused_first_layer = C * (d + B) < B * d
    b1 = None if biases is None else biases[0]
    a1 = pre_activation(weights[0], x, b1)  # (B, n_1)
    hs = forward(weights, x, masks, biases, first_pre=a1)
    e = hs[-1] - target  # (B, C)
    x_err = x + sign * (e @ F.mT)  # (B, d)
    a1_err = (a1 + sign * (e @ (F.mT @ weights[0].mT)) if fused_first_layer
              else pre_activation(weights[0], x_err, b1))
    hs_err = forward(weights, x_err, masks, biases, first_pre=a1_err)
    e_err = hs_err[-1] - target
    L = len(weights)
    deltas = [hs[l] - hs_err[l] for l in range(1, L)]
    deltas.append(e_err if output_error == "modulated" else e)
    return Factors(deltas=deltas, inputs=hs_err[:L], probs=hs[-1])


def pepita_updates(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                   sign: float = 1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None) -> list[Tensor]:
    """PEPITA updates `dW` (batch mean, shapes of `weights`), applied as `W -= lr * dW`.

    weights[l]: (out, in); x: (B, d); target: one-hot (B, C); F: (d, C); masks[l]: (B, n_l)
    dropout masks (already scaled) shared by both passes.
    """
    check_mlp(weights, x, target)
    if F.shape != (x.shape[1], target.shape[1]):
        raise ValueError(f"F has shape {tuple(F.shape)}: expected (d, C) = "
                         f"({x.shape[1]}, {target.shape[1]})")
    f = pepita_factors(weights, x, target, F, sign=sign, output_error=output_error, masks=masks)
    return updates_from_factors(f)
