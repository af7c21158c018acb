"""PEPITA as in the ICML 2022 paper (Dellaferrera & Kreiman): two forward passes, no backward.

For a batch x (B, d) with one-hot targets t (B, C), dropout masks m_l shared by both passes and
the fixed random projection F (d, C):

    clean pass       h_0 = x,      h_l = relu(W_l h_{l-1}) * m_l,   h_L = softmax(W_L h_{L-1})
    output error     e = h_L - t                                                   (B, C)
    modulated input  x_err = x + sign * e F^T         (sign +1: ICML code; -1: ICLR code)
    modulated pass   h_0^err = x_err, then the same layers: h_l^err, h_L^err, e_err = h_L^err - t
    hidden update    dW_l = (h_l - h_l^err)^T h_{l-1}^err / B                   (l < L)
    output update    dW_L = e_err^T h_{L-1}^err / B       (output_error="clean": e in place of e_err)

and `W_l -= lr dW_l` through the loop's momentum. A conv layer learns from the convolutional
form of the same product: `h_l - h_l^err` at its output (before pooling) against its modulated
input, summed over output positions, batch mean; `conv_update="icml-code"` scales it by
`-1 / (B P)` (P output positions) as the authors' conv code does (docs/conv.md).

This module is the rule and nothing else. The speed machinery (the modulated pass's first layer
from the tracked `W_1 F`) is `pepita_fast`; the follow-up's options (ICLR 2024) are
`pepita_options`; the registered `Rule` that picks between them is `pepita_rule`. The
per-sample form of these equations, for the oracle tests, is `reference.pepita_reference`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..config import CONV_UPDATES  # noqa: F401 (rules.CONV_UPDATES)
from ..config.checks import ALLOWED
from ..kernels import mm
from ..nets import forward_pass
from .common import Factors, check_mlp, updates_from_factors


def modulated_input(x: Tensor, e: Tensor, F: Tensor, sign) -> Tensor:
    """`x + sign * e F^T`: the input of the second pass, shaped like x ((B, d) or images; with
    members' e (K, B, C) and F (K, d, C), (K, B, ...))."""
    projected = mm(e, F.mT)  # e (B, C), F (d, C): (B, d)
    if x.dim() >= 4:  # images (B, C_in, H, W)
        projected = projected.view(*projected.shape[:-1], *x.shape[-3:])
    if torch.is_tensor(sign):  # the members' own signs, (K, 1, 1)
        return x + sign.view(-1, *[1] * (projected.dim() - 1)) * projected
    return torch.add(x, projected, alpha=sign)  # sign +-1: exactly x +- e F^T


def pepita_deltas(hs: list[Tensor], hs_err: list[Tensor], target: Tensor, output_error: str,
                  conv_update: str = "rule") -> list[Tensor]:
    """Each layer's `delta_l`: `h_l - h_l^err` for hidden layers (written over the clean
    pass's h_l, which is not needed again: a conv map written over is cheaper than a fresh
    one), the output error of the modulated (or clean) pass for the last layer."""
    deltas = [h.sub_(h_err) for h, h_err in zip(hs[1:-1], hs_err[1:-1])]
    if conv_update == "icml-code":
        B = target.shape[-2]
        deltas = [d * (-1.0 / (B * d.shape[-2] * d.shape[-1])) if d.dim() >= 4 else d
                  for d in deltas]
    out = hs_err[-1] if output_error == "modulated" else hs[-1]
    return deltas + [out - target]


@torch.no_grad()
def pepita_factors(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                   sign: float = 1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None, biases: list[Tensor] | None = None,
                   pool: int = 1, conv_update: str = "rule", first_pre: Tensor | None = None,
                   first_pre_err: Callable[[Tensor], Tensor] | None = None) -> Factors:
    """The factors `(delta_l, h_{l-1}^err)` of the update above and the clean softmax output.

    `first_pre` / `first_pre_err`: a caller with a faster way to the first layer's
    pre-activations gives the clean one and a function of the error e for the modulated one
    (`pepita_fast`); both equal `W_1 x` and `W_1 x_err` in exact arithmetic."""
    ALLOWED["output_error"].check("output_error", output_error)  # the config's one check
    ALLOWED["conv_update"].check("conv_update", conv_update)
    hs, _ = forward_pass(weights, x, masks, biases, first_pre=first_pre, pool=pool)
    e = hs[-1] - target  # (B, C)
    x_err = modulated_input(x, e, F, sign)
    a1_err = None if first_pre_err is None else first_pre_err(e)
    hs_err, ins_err = forward_pass(weights, x_err, masks, biases, first_pre=a1_err, pool=pool)
    probs = hs[-1]  # before pepita_deltas writes over the hidden h_l
    return Factors(pepita_deltas(hs, hs_err, target, output_error, conv_update), ins_err, probs)


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
    return updates_from_factors(pepita_factors(weights, x, target, F, sign=sign,
                                               output_error=output_error, masks=masks,
                                               pool=pool, conv_update=conv_update))


__all__ = ["pepita_factors", "pepita_updates", "pepita_deltas", "modulated_input",
           "CONV_UPDATES"]
