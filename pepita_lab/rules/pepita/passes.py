"""PEPITA's two passes, written once (Dellaferrera & Kreiman, ICML 2022; the ICLR 2024 options).

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

`pepita_passes` is the one function that runs both passes; every form of the rule is one of its
arguments:
- `first_feedback`: the modulated pass's first layer from `W_1 F` (n_1, C), without its
  (B, d) x (d, n_1) product: `x_err W_1^T = x W_1^T + sign e (W_1 F)^T` (equal in exact
  arithmetic; the rule tracks `W_1 F` across steps, `rule.FirstLayerFeedback`);
- `normalize`: every hidden output divided by its Frobenius norm over the batch, in both passes;
- `variant="forward"`: presynaptic factors from the clean pass, `(h_l - h_l^err)^T h_{l-1}`;
- `variant="time-local"`: the clean pass's anti-Hebbian update `h_l^T h_{l-1}` (last layer
  `y^T h_{L-1}`) and the modulated pass's Hebbian one `-(h_l^err)^T h_{l-1}^err` (last layer
  `-t^T h_{L-1}^err`): with `fold`, the first folded into the weights before the modulated pass
  runs (on fresh masks from `remask`, as the ICLR code's reset); without, both as one set of
  factors of 2B rows on the same weights (the oracle tests' form);
- `streamed` (with `fold`): at most two layers' activations alive. The clean pass keeps only its
  output; then both passes go through layer l together (the clean h_l recomputed) and layer l
  is folded into its weights before layer l + 1 is computed (W_l is not read again). The
  same weights as the plain step to float tolerance (tests/test_streamed.py), for a second
  clean pass through the hidden layers.
The per-sample form of these equations, for the oracle tests, is tests/oracles.py.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...config import CONV_UPDATES  # noqa: F401 (rules.CONV_UPDATES)
from ...config.checks import ALLOWED
from ...kernels import maps_layout, mm
from ...nets import forward_pass, layer_forward, layer_input, pre_activation
from ..factors import Factors, check_mlp, updates_from_factors

Fold = Callable[[Factors, range | None], None]  # factors into the weights (only these layers)


def modulated_input(x: Tensor, e: Tensor, F: Tensor, sign) -> Tensor:
    """`x + sign * e F^T`: the input of the second pass, shaped like x ((B, d) or images; with
    members' e (K, B, C) and F (K, d, C), (K, B, ...))."""
    projected = mm(e, F.mT)  # e (B, C), F (d, C): (B, d)
    if x.dim() >= 4:  # images (B, C_in, H, W)
        projected = projected.view(*projected.shape[:-1], *x.shape[-3:])
    if torch.is_tensor(sign):  # the members' own signs, (K, 1, 1)
        return x + sign.view(-1, *[1] * (projected.dim() - 1)) * projected
    return torch.add(x, projected, alpha=sign)  # sign +-1: exactly x +- e F^T


@torch.no_grad()
def pepita_passes(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                  sign=1.0, output_error: str = "modulated", masks: list[Tensor] | None = None,
                  biases: list[Tensor] | None = None, pool: int = 1, conv_update: str = "rule",
                  normalize: bool = False, variant: str = "modulated",
                  first_feedback: Tensor | None = None, fold: Fold | None = None,
                  streamed: bool = False,
                  remask: Callable[[], list[Tensor] | None] | None = None) -> Factors:
    """Both passes and the factors `(delta_l, a_l)` of PEPITA's update (module docstring),
    with the clean pass's softmax output as `probs`. Without `fold`, all the factors; with it,
    what the form folds as it goes (time-local, streamed) and `probs` (the time-local variant:
    its clean half's factors). The options are taken as given (a run's were checked with its
    config; the pure functions below check theirs)."""
    L, B = len(weights), target.shape[-2]
    bias = lambda l: None if biases is None else biases[l]  # noqa: E731
    mask = lambda l: None if masks is None or l == L - 1 else masks[l]  # noqa: E731
    a1 = None  # layer 1's clean pre-activation (B, n_1), kept for the modulated one
    if first_feedback is not None and not streamed:
        a1 = pre_activation(weights[0], x, bias(0))
    hs, ins = forward_pass(weights, x, masks, biases, first_pre=a1, pool=pool,
                           normalize=normalize, keep=not streamed)  # the clean pass
    probs = hs[-1]  # (B, C)
    e = probs - target
    if first_feedback is not None and streamed:  # not kept through the clean pass
        a1 = pre_activation(weights[0], x, bias(0))
    a1_err = None if a1 is None else a1 + sign * mm(e, first_feedback.mT)
    if variant == "time-local" and fold is not None:  # the clean half first, then fresh masks
        fold(Factors(deltas=hs[1:], inputs=ins, probs=probs), None)
        masks = masks if remask is None or masks is None else remask()
        a1_err = None  # the weights have moved
    x_err = modulated_input(x, e, F, sign)
    if streamed:
        a_in, a_err = (maps_layout(x), maps_layout(x_err)) if x.dim() >= 4 else (x, x_err)
        one = Factors([None] * L, [None] * L, probs)
        for l, W in enumerate(weights):
            if l == L - 1:  # the clean output is `probs`; the modulated one if its error is used
                h_err = layer_forward(W, a_err, bias(l), last=True) \
                    if output_error == "modulated" else probs
                one.deltas[l], one.inputs[l] = h_err - target, (a_in if variant == "forward"
                                                                else a_err)
                fold(one, range(l, l + 1))
                break
            h = layer_forward(W, a_in, bias(l), mask(l), pre=a1 if l == 0 else None,
                              normalize=normalize)
            if variant != "forward":
                a_in = None  # the clean input is not needed again
            h_err = layer_forward(W, a_err, bias(l), mask(l), pre=a1_err if l == 0 else None,
                                  normalize=normalize)
            a1 = a1_err = None
            # the next layer's inputs; a conv map pooled (or flattened) into a copy is then not
            # needed again, and its delta is written over it
            next_in = layer_input(h, W, weights[l + 1], pool)
            next_err = layer_input(h_err, W, weights[l + 1], pool)
            same = next_in.untyped_storage().data_ptr() == h.untyped_storage().data_ptr()
            delta = h - h_err if same else h.sub_(h_err)
            del h, h_err
            if conv_update == "icml-code" and delta.dim() >= 4:
                delta.mul_(-1.0 / (B * delta.shape[-2] * delta.shape[-1]))
            one.deltas[l], one.inputs[l] = delta, (a_in if variant == "forward" else a_err)
            del delta
            fold(one, range(l, l + 1))
            one.deltas[l] = one.inputs[l] = None
            a_in, a_err = next_in, next_err
            del next_in, next_err
        return Factors(deltas=[], inputs=[], probs=probs)
    hs_err, ins_err = forward_pass(weights, x_err, masks, biases, first_pre=a1_err, pool=pool,
                                   normalize=normalize)  # the modulated pass
    if variant == "time-local":
        hebbian = Factors(deltas=[-h for h in hs_err[1:-1]] + [-target], inputs=ins_err,
                          probs=probs)
        if fold is not None:
            fold(hebbian, None)
            return Factors(deltas=hs[1:], inputs=ins, probs=probs)
        return Factors(deltas=[_rows(a, b) for a, b in zip(hs[1:], hebbian.deltas)],
                       inputs=[_rows(a, b) for a, b in zip(ins, ins_err)], probs=probs)
    # delta_l = h_l - h_l^err, written over the clean h_l where nothing reads it again (a conv
    # map written over is cheaper than a fresh one); the forward variant's inputs are those h_l
    deltas = [h.sub_(h_err) if variant == "modulated" else h - h_err
              for h, h_err in zip(hs[1:-1], hs_err[1:-1])]
    if conv_update == "icml-code":
        deltas = [d * (-1.0 / (B * d.shape[-2] * d.shape[-1])) if d.dim() >= 4 else d
                  for d in deltas]
    deltas.append((hs_err[-1] if output_error == "modulated" else probs) - target)
    f = Factors(deltas, ins if variant == "forward" else ins_err, probs)
    if fold is not None:
        fold(f, None)
    return f


def _check(output_error: str, conv_update: str, variant: str) -> None:
    ALLOWED["output_error"].check("output_error", output_error)  # the config's one check
    ALLOWED["conv_update"].check("conv_update", conv_update)
    ALLOWED["pepita_variant"].check("variant", variant)


def _rows(a: Tensor, b: Tensor) -> Tensor:
    """`a` over `b` along the batch (a population's shared (B, n) broadcast to (K, B, n))."""
    if a.dim() < b.dim():
        a = a.expand_as(b)
    elif b.dim() < a.dim():
        b = b.expand_as(a)
    return torch.cat([a, b], dim=-2)


def pepita_factors(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                   sign: float = 1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None, biases: list[Tensor] | None = None,
                   pool: int = 1, conv_update: str = "rule") -> Factors:
    """The paper's factors `(delta_l, h_{l-1}^err)` and the clean softmax output
    (`pepita_passes` with the paper's arguments)."""
    _check(output_error, conv_update, "modulated")
    return pepita_passes(weights, x, target, F, sign=sign, output_error=output_error,
                         masks=masks, biases=biases, pool=pool, conv_update=conv_update)


def pepita_options_factors(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                           sign: float = 1.0, output_error: str = "modulated",
                           masks: list[Tensor] | None = None,
                           biases: list[Tensor] | None = None, normalize: bool = False,
                           variant: str = "modulated") -> Factors:
    """The factors with the ICLR 2024 options (fully connected nets): normalisation, the
    forward variant, or the time-local variant's two updates as one set of 2B rows, all on the
    same weights and masks (`pepita_passes` without `fold`)."""
    _check(output_error, "rule", variant)
    return pepita_passes(weights, x, target, F, sign=sign, output_error=output_error,
                         masks=masks, biases=biases, normalize=normalize, variant=variant)


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


__all__ = ["pepita_passes", "pepita_factors", "pepita_options_factors", "pepita_updates",
           "modulated_input", "CONV_UPDATES"]
