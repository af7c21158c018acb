"""Streamed PEPITA: the paper's step (`pepita`) with at most two layers' activations alive.

The plain step keeps both passes whole (every `h_l` and `h_l^err`) until the updates are
made. Here (config `streamed`):

    1. clean pass      h_l = layer_l(h_{l-1}), each h_{l-1} dropped once h_l exists;
                       keep only the output: e = h_L - t                           (B, C)
    2. layer by layer  l = 1 .. L: h_l and h_l^err recomputed together from h_{l-1} and
                       h_{l-1}^err (the same dropout masks, the modulated input
                       h_0^err = x + sign e F^T), then W_l's update from
                       delta_l = h_l - h_l^err (last layer: e_err or e) and h_{l-1}^err,
                       made at once through the loop's momentum; h_{l-1}, h_{l-1}^err and
                       delta_l are dropped before layer l + 1.

W_l is not used again in the step once both passes have left layer l, so the update is the
plain step's: the same weights to float tolerance (tests/test_streamed.py). The price is a
second clean pass through the hidden layers (`StreamedPepita`'s cost model).

Options that apply (each layer-local): sign, output_error, conv nets and conv_update,
dropout, biases, normalize (a layer's batch norm needs only that layer), the forward variant
(presynaptic factors from the clean pass), weight mirroring (it changes F between steps),
precision. Refused (`check_streamed`): the time-local variant (its modulated pass runs on
weights updated by a whole clean pass) and torch.compile (the step is a Python loop of
updates).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ..devices import precision
from ..kernels import maps_layout
from ..nets import layer_forward, layer_input
from .common import Factors
from .pepita import modulated_input
from .pepita_fast import first_layer_shortcut

REFUSED = {"pepita_variant": ("time-local", "its modulated pass runs on weights already "
                              "updated by a whole clean pass"),
           "compile": (None, "the streamed step is a Python loop of per-layer updates; "
                             "use compile='off'")}


def check_streamed(cfg) -> str | None:
    """Why `cfg` (with `streamed`) cannot stream, in one line, or None if it can."""
    if not getattr(cfg, "streamed", False):
        return None
    if cfg.pepita_variant == "time-local":
        return f"streamed=True is not allowed with pepita_variant='time-local': " \
               f"{REFUSED['pepita_variant'][1]}"
    if cfg.compile != "off":
        return f"streamed=True is not allowed with compile={cfg.compile!r}: " \
               f"{REFUSED['compile'][1]}"
    return None


@torch.no_grad()
def clean_output(weights: list[Tensor], x: Tensor, masks: list[Tensor] | None = None,
                 biases: list[Tensor] | None = None, pool: int = 1,
                 normalize: bool = False) -> Tensor:
    """The clean pass's softmax output (B, C), one layer alive at a time."""
    h, L = maps_layout(x) if x.dim() >= 4 else x, len(weights)
    for l, W in enumerate(weights):
        a_in = h if l == 0 else layer_input(h, weights[l - 1], W, pool)
        h = layer_forward(W, a_in, None if biases is None else biases[l],
                          None if masks is None or l == L - 1 else masks[l], last=l == L - 1,
                          normalize=normalize)
        del a_in
    return h


@torch.no_grad()
def stream_factors(weights: list[Tensor], x: Tensor, target: Tensor, probs: Tensor,
                   F: Tensor, *, sign=1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None, biases: list[Tensor] | None = None,
                   pool: int = 1, conv_update: str = "rule", normalize: bool = False,
                   variant: str = "modulated",
                   first_feedback: Tensor | None = None) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield `(l, delta_l, a_l)` for l = 0 .. L-1, the factors of PEPITA's update of layer l
    (as `pepita_factors` / `pepita_options_factors` give them), recomputing both passes
    layer by layer from the clean output `probs` (`clean_output`). The caller may update
    `weights[l]` in place as soon as layer l is yielded (it is not read again), and should
    drop its references to the factors before asking for the next layer."""
    L, B = len(weights), target.shape[-2]
    e = probs - target  # (B, C)
    h, h_err = x, modulated_input(x, e, F, sign)  # h_0, h_0^err
    if x.dim() >= 4:  # images: the layout the forward pass gives them
        h, h_err = maps_layout(h), maps_layout(h_err)
    for l, W in enumerate(weights):
        last, b = l == L - 1, None if biases is None else biases[l]
        mask = None if masks is None or last else masks[l]
        a_in = h if l == 0 else layer_input(h, weights[l - 1], W, pool)
        a_err = h_err if l == 0 else layer_input(h_err, weights[l - 1], W, pool)
        del h, h_err  # only through a_in / a_err now (a conv map: freed once pooled)
        pre = pre_err = None
        if l == 0:
            shortcut = first_layer_shortcut(weights, a_in, F, sign, biases=biases,
                                            first_feedback=first_feedback)
            pre = shortcut.get("first_pre")
            pre_err = shortcut["first_pre_err"](e) if "first_pre_err" in shortcut else None
            del shortcut
        if last:  # the clean output is `probs`; the modulated one only if its error is used
            h = None
            h_err = layer_forward(W, a_err, b, last=True) if output_error == "modulated" \
                else probs
            delta = h_err - target
        else:
            h = layer_forward(W, a_in, b, mask, pre=pre, normalize=normalize)
            del pre
            if variant != "forward":
                del a_in  # the clean input is not needed again
            h_err = layer_forward(W, a_err, b, mask, pre=pre_err, normalize=normalize)
            delta = h - h_err
            if conv_update == "icml-code" and delta.dim() >= 4:
                delta = delta * (-1.0 / (B * delta.shape[-2] * delta.shape[-1]))
        pre = pre_err = None
        yield l, delta, (a_in if variant == "forward" else a_err)
        del delta
        a_in = a_err = None


def streamed_step(trainer, x: Tensor, target: Tensor, masks, lr) -> Factors:
    """One streamed PEPITA step of the training loop: the clean output, then each layer's
    factors from `stream_factors`, folded into its weights by the loop's momentum update
    (`trainer.apply(..., layers=...)`) before the next layer is computed. Returns the clean
    output as Factors without deltas (nothing is kept)."""
    net, settings, state = trainer.net, trainer.settings, trainer.state
    x = net.shape_input(x)
    L = len(net.weights)
    with precision(trainer.base.precision, trainer.device):
        probs = _full(clean_output(net.weights, x, masks, net.biases, net.pool,
                                   settings.normalize))
    stream = stream_factors(net.weights, x, target, probs, net.F, sign=settings.sign,
                            output_error=settings.output_error, masks=masks,
                            biases=net.biases, pool=net.pool, conv_update=settings.conv_update,
                            normalize=settings.normalize, variant=settings.pepita_variant,
                            first_feedback=None if state is None else state.wf)
    deltas, inputs = [None] * L, [None] * L
    one = Factors(deltas, inputs, probs)
    while True:
        with precision(trainer.base.precision, trainer.device):
            item = next(stream, None)
        if item is None:
            break
        l, deltas[l], inputs[l] = item
        del item
        deltas[l], inputs[l] = _full(deltas[l]), _full(inputs[l])
        trainer.apply(one, lr, layers=range(l, l + 1))
        deltas[l] = inputs[l] = None
    return Factors(deltas=[], inputs=[], probs=probs)


def _full(t: Tensor) -> Tensor:
    """bf16 factors (precision "bf16") back in float32, as `devices.fast_step` gives them."""
    return t.float() if t.dtype == torch.bfloat16 else t


__all__ = ["streamed_step", "stream_factors", "clean_output", "check_streamed"]
