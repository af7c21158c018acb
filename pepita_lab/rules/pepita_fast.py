"""PEPITA's speed machinery: the modulated pass's first layer without its (B, d) x (d, n_1)
product. Equal to the paper's rule (`pepita`) in exact arithmetic; tested against it.

The modulated pass's first pre-activation is (rows are samples, as the code holds them)

    x_err W_1^T = (x + sign e F^T) W_1^T = x W_1^T + sign * e (W_1 F)^T          (B, n_1)

so it follows from the clean pass's `W_1 x` and the (n_1, C) product `W_1 F`. Computing that
product afresh costs `n_1 d C` a step (worth it when `C (d + B) < B d`: MNIST at batch 64, 6x
fewer multiply-adds; not for many classes at small batches); tracking it through the momentum
update (`FirstLayerFeedback`) costs `C (B d + B n_1)` (MNIST at batch 64: 13x fewer still).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..kernels import mm
from ..nets import is_conv, pre_activation


def first_layer_shortcut(weights: list[Tensor], x: Tensor, F: Tensor, sign, *,
                         biases: list[Tensor] | None = None, first_feedback: Tensor | None = None,
                         fused: bool | str = "auto") -> dict:
    """The `first_pre` / `first_pre_err` arguments of `pepita.pepita_factors`: the clean
    `W_1 x` and `e -> W_1 x + sign e (W_1 F)^T`, from the tracked `W_1 F` (`first_feedback`)
    when given, else from `W_1 F` computed now if `fused` (`"auto"`: when that saves work).
    Empty for a conv first layer (its ReLU is fused into the conv) or when nothing is saved."""
    W1 = weights[0]
    if is_conv(W1):
        return {}
    a1 = pre_activation(W1, x, None if biases is None else biases[0])  # (B, n_1)
    (B, d), C = x.shape[-2:], F.shape[-1]
    if first_feedback is None:
        if fused == "auto":
            fused = C * (d + B) < B * d
        if not fused:
            return {"first_pre": a1}
        first_feedback = mm(W1, F)  # (n_1, C)
    return {"first_pre": a1, "first_pre_err": lambda e: a1 + sign * mm(e, first_feedback.mT)}


class FirstLayerFeedback:
    """`W_1 F` and `v_1 F` (first layer's weights and momentum times F), kept current through
    the momentum update `v_1 = m v_1 + alpha delta^T a; W_1 -= v_1` by the same update applied
    to their products with F: `v_1 F = m v_1 F + alpha delta^T (a F)`, `W_1 F -= v_1 F`.

    Equal to the recomputed product up to rounding, which `refresh` (exact) resets; the loop
    refreshes at the start of every epoch and after loading a checkpoint. Works for one net
    (W_1 (n_1, d), F (d, C)) and for a population (W_1 (K, n_1, d), F (K, d, C)) alike.
    """

    def __init__(self, W1: Tensor, v1: Tensor, F: Tensor):
        self.recompute(W1, v1, F)

    @staticmethod
    def saves_work(d: int, n_1: int, n_classes: int) -> bool:
        """Whether tracking costs fewer multiply-adds per sample than the modulated first
        layer's product: C (d + 2 n_1) < d n_1 (the cost model asks this too)."""
        return n_classes * (d + 2 * n_1) < d * n_1

    @staticmethod
    def applies(weights: list[Tensor], n_classes: int) -> bool:
        """Whether the loop tracks: a fully connected first layer where it saves work."""
        W1 = weights[0]
        if is_conv(W1):
            return False
        n_1, d = W1.shape[-2:]
        return FirstLayerFeedback.saves_work(d, n_1, n_classes)

    @torch.no_grad()
    def recompute(self, W1: Tensor, v1: Tensor, F: Tensor) -> None:
        """Recompute both products exactly."""
        self.F = F
        self.wf = mm(W1, F)  # (..., n_1, C)
        self.vf = mm(v1, F)

    def refresh(self, net, velocity: list[Tensor]) -> None:
        """`recompute` from a net and its momentum buffers (the loop's `StepState` call)."""
        self.recompute(net.weights[0], velocity[0], net.F)

    @torch.no_grad()
    def advance(self, layer: int, delta: Tensor, a: Tensor, momentum: float,
                alpha: float = 1.0) -> None:
        """Follow layer `layer`'s update `v = momentum v + alpha delta^T a; W -= v` (only the
        first layer's matters: delta (..., B, n_1), a (..., B, d))."""
        if layer != 0:
            return
        self.vf.mul_(momentum).add_(mm(delta.mT, mm(a, self.F)), alpha=alpha)
        self.wf.sub_(self.vf)

    def freeze(self, k: int) -> None:
        """Population member k diverged: its weights stop, so its `v_1 F` must too."""
        self.vf[k].zero_()
