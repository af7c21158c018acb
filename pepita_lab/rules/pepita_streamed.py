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
from .base import Cost
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
    drop its references to the factors before asking for the next layer. Call it under
    `torch.no_grad()` (not a decorator here: torch's generator wrapper would hold each
    yielded layer while the next one is computed)."""
    L, B = len(weights), target.shape[-2]
    e = probs - target  # (B, C)
    a_in, a_err = x, modulated_input(x, e, F, sign)  # layer 1's inputs h_0, h_0^err
    if x.dim() >= 4:  # images: the layout the forward pass gives them
        a_in, a_err = maps_layout(a_in), maps_layout(a_err)
    for l, W in enumerate(weights):
        last, b = l == L - 1, None if biases is None else biases[l]
        mask = None if masks is None or last else masks[l]
        pre = pre_err = None
        if l == 0:
            shortcut = first_layer_shortcut(weights, a_in, F, sign, biases=biases,
                                            first_feedback=first_feedback)
            pre = shortcut.get("first_pre")
            pre_err = shortcut["first_pre_err"](e) if "first_pre_err" in shortcut else None
            del shortcut
        if last:  # the clean output is `probs`; the modulated one only if its error is used
            h_err = layer_forward(W, a_err, b, last=True) if output_error == "modulated" \
                else probs
            yield l, h_err - target, (a_in if variant == "forward" else a_err)
            return
        h = layer_forward(W, a_in, b, mask, pre=pre, normalize=normalize)
        del pre
        if variant != "forward":
            a_in = None  # the clean input is not needed again
        h_err = layer_forward(W, a_err, b, mask, pre=pre_err, normalize=normalize)
        del pre_err
        # the next layer's inputs; a conv map pooled (or flattened) into a copy is then not
        # needed again, and its delta is written over it
        next_in = layer_input(h, W, weights[l + 1], pool)
        next_err = layer_input(h_err, W, weights[l + 1], pool)
        if _shares_memory(next_in, h):
            delta = h - h_err
        else:
            delta = h.sub_(h_err)
        del h, h_err
        if conv_update == "icml-code" and delta.dim() >= 4:
            delta.mul_(-1.0 / (B * delta.shape[-2] * delta.shape[-1]))
        yield l, delta, (a_in if variant == "forward" else a_err)
        del delta
        a_in, a_err = next_in, next_err
        del next_in, next_err


def _shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@torch.no_grad()
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


def streamed_step_cost(plain: Cost, sizes: list[int], batch_size: int,
                       output_error: str = "modulated",
                       layer_macs: list[int] | None = None) -> Cost:
    """The streamed step's cost from the plain step's (`Pepita.step_cost`): sizes [d, n_1,
    ..., C] (a conv layer's n_l: its map's units), `layer_macs` the per-sample multiply-adds
    of each layer (default n_l n_{l-1}).
    MACs: the plain step's + B sum_{hidden l} M_l (the clean pass again through the hidden
    layers), - B M_L with output_error "clean" (the modulated output is not computed).
    Activation floats: the widest layer's B (n_{l-1} + 3 n_l) (its modulated input, h_l,
    h_l^err and delta_l; n_0 = d for x_err), or at the output B (n_{L-1} + 2 C)."""
    B = int(batch_size)
    macs = layer_macs or [a * b for a, b in zip(sizes, sizes[1:])]
    extra = B * sum(macs[:-1]) - (B * macs[-1] if output_error == "clean" else 0)
    floats = B * max([a + 3 * b for a, b in zip(sizes[:-2], sizes[1:-1])]
                     + [sizes[-2] + 2 * sizes[-1]])
    return Cost(plain.macs + extra, floats, 4 * floats)


def _full(t: Tensor) -> Tensor:
    """bf16 factors (precision "bf16") back in float32, as `devices.fast_step` gives them."""
    return t.float() if t.dtype == torch.bfloat16 else t


__all__ = ["streamed_step", "stream_factors", "clean_output", "check_streamed",
           "streamed_step_cost"]
