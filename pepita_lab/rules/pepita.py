"""PEPITA (Dellaferrera & Kreiman, ICML 2022): two forward passes, no backward pass.

The second pass runs on the input modulated by the output error through the fixed matrix F:
`x_err = x + sign * F e`. Hidden layer l learns from `(h_l - h_l^err) (h_{l-1}^err)^T`, the
last layer from `e_out (h_{L-1}^err)^T` (see docs/pepita.md for the variants). A conv layer
learns from the convolutional form of the same product: `h_l - h_l^err` at its output (before
pooling) against its modulated-pass input, summed over output positions, batch mean; with
`conv_update="icml-code"` it follows the authors' conv code instead (docs/conv.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import (Factors, check_mlp, forward_pass, is_conv, pre_activation,
                     updates_from_factors)

CONV_UPDATES = ("rule", "icml-code")


@torch.no_grad()
def pepita_factors(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                   sign: float = 1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None, biases: list[Tensor] | None = None,
                   fused_first_layer: bool | str = False, pool: int = 1,
                   conv_update: str = "rule", first_feedback: Tensor | None = None) -> Factors:
    """Factors of the PEPITA update.

    With `fused_first_layer`, the modulated pass's first pre-activation is computed as
    `W_1 x + sign * (F^T W_1^T)^T e` from the clean pass's `W_1 x`: equal in exact arithmetic.
    It replaces B d n_1 multiply-accumulates by C n_1 (d + B), a saving when C (d + B) < B d
    (MNIST at batch 64: 6x fewer), a loss for many classes and small batches (CIFAR-100 at
    batch 64). `"auto"` fuses only when it saves work (never for a conv first layer).

    Conv nets: x (B, C_in, H, W), F (C_in H W, C); `pool` is the max-pool after each conv
    layer. `conv_update="icml-code"` scales each conv layer's delta by `-1 / (B P)` (P output
    positions), as the authors' conv code does: the opposite sign, the mean over positions
    instead of the sum, and a second division by the batch size.
    """
    if output_error not in ("modulated", "clean"):
        raise ValueError(f"output_error={output_error!r}: expected 'modulated' or 'clean'")
    if conv_update not in CONV_UPDATES:
        raise ValueError(f"conv_update={conv_update!r}: expected "
                         f"{' or '.join(map(repr, CONV_UPDATES))}")
    conv_first = is_conv(weights[0])
    (B, d), C = (x.shape[0], x[0].numel()) if conv_first else x.shape[-2:], target.shape[-1]
    if conv_first:
        fused_first_layer = False  # the fused form is a matrix identity of FC layers
    elif fused_first_layer == "auto":
        fused_first_layer = C * (d + B) < B * d
    b1 = None if biases is None else biases[0]
    # A conv first layer's pre-activation is not kept: forward_pass fuses its ReLU.
    a1 = None if conv_first else pre_activation(weights[0], x, b1)  # (B, n_1)
    hs, _ = forward_pass(weights, x, masks, biases, first_pre=a1, pool=pool)
    e = hs[-1] - target  # (B, C)
    projected = e @ F.mT  # (B, d)
    x_err = x + sign * (projected.view(x.shape) if conv_first else projected)
    if conv_first:
        a1_err = None
    elif first_feedback is not None:
        a1_err = a1 + sign * (e @ first_feedback.mT)
    elif fused_first_layer:
        a1_err = a1 + sign * (e @ (F.mT @ weights[0].mT))
    else:
        a1_err = pre_activation(weights[0], x_err, b1)
    hs_err, ins_err = forward_pass(weights, x_err, masks, biases, first_pre=a1_err, pool=pool)
    e_err = hs_err[-1] - target
    L = len(weights)
    # In place: the clean pass's hidden outputs are not needed again, and a conv map written
    # over is cheaper than one written afresh (profiled on the MNIST conv net: 0.09 against
    # 0.37 ms a step).
    deltas = [hs[l].sub_(hs_err[l]) for l in range(1, L)]
    if conv_update == "icml-code":
        deltas = [d_l * (-1.0 / (B * d_l[0, 0].numel())) if d_l.dim() == 4 else d_l
                  for d_l in deltas]
    deltas.append(e_err if output_error == "modulated" else e)
    return Factors(deltas=deltas, inputs=ins_err, probs=hs[-1])


class FirstLayerFeedback:
    """`W_1 F` and `v_1 F` (first layer's weights and momentum times F), kept current through
    the momentum update `v_1 = m v_1 + alpha delta^T a; W_1 -= v_1` by the same update applied
    to their products with F: `v_1 F = m v_1 F + alpha delta^T (a F)`, `W_1 F -= v_1 F`.

    That costs `C (B d + B n_1)` multiply-adds a step where recomputing `W_1 F` costs `n_1 d C`
    (MNIST at batch 64: 13x fewer), so the modulated pass's first layer is almost free. Equal to
    the recomputed product up to rounding, which `refresh` (exact) resets; the loops refresh at
    the start of every epoch and after loading a checkpoint. Works for one net (W_1 (n_1, d),
    F (d, C)) and for a population (W_1 (K, n_1, d), F (K, d, C)) alike.
    """

    def __init__(self, W1: Tensor, v1: Tensor, F: Tensor):
        self.refresh(W1, v1, F)

    @staticmethod
    def saves_work(d: int, n_1: int, n_classes: int) -> bool:
        """Whether tracking costs fewer multiply-adds per sample than the modulated first
        layer's product: C (d + 2 n_1) < d n_1 (the cost model asks this too)."""
        return n_classes * (d + 2 * n_1) < d * n_1

    @staticmethod
    def applies(weights: list[Tensor], n_classes: int) -> bool:
        """Whether the loops track: a fully connected first layer where it saves work."""
        W1 = weights[0]
        if is_conv(W1):
            return False
        n_1, d = W1.shape[-2:]
        return FirstLayerFeedback.saves_work(d, n_1, n_classes)

    @torch.no_grad()
    def refresh(self, W1: Tensor, v1: Tensor, F: Tensor) -> None:
        """Recompute both products exactly."""
        self.F = F
        self.wf = W1 @ F  # (..., n_1, C)
        self.vf = v1 @ F

    @torch.no_grad()
    def advance(self, delta: Tensor, a: Tensor, momentum: float, alpha: float = 1.0) -> None:
        """Follow `v_1 = momentum v_1 + alpha delta^T a; W_1 -= v_1` (delta (..., B, n_1),
        a (..., B, d))."""
        self.vf.mul_(momentum).add_(delta.mT @ (a @ self.F), alpha=alpha)
        self.wf.sub_(self.vf)


def pepita_updates(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                   sign: float = 1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None, pool: int = 1,
                   conv_update: str = "rule") -> list[Tensor]:
    """PEPITA updates `dW` (batch mean, shapes of `weights`), applied as `W -= lr * dW`.

    weights[l]: (out, in), or (out_c, in_c, k, k) for conv layers (first); x: (B, d), or
    images (B, C_in, H, W) for a conv first layer; target: one-hot (B, C); F: (d, C) with
    d = C_in H W; masks[l]: dropout masks shaped like layer l's output (already scaled) shared
    by both passes; pool: max-pool size after conv layers.
    """
    check_mlp(weights, x, target, pool)
    d = x[0].numel()  # C_in H W for images
    if F.shape != (d, target.shape[1]):
        raise ValueError(f"F has shape {tuple(F.shape)}: expected (d, C) = "
                         f"({d}, {target.shape[1]})")
    f = pepita_factors(weights, x, target, F, sign=sign, output_error=output_error, masks=masks,
                       pool=pool, conv_update=conv_update)
    return updates_from_factors(f)
