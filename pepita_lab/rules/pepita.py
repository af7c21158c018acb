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

from ..nets import (batch_normalized, f_std, forward_pass, is_conv, pre_activation,
                    renormalize_factors)
from .base import Cost, Rule
from .common import Factors, check_mlp, updates_from_factors
from .reference import pepita_reference

CONV_UPDATES = ("rule", "icml-code")


@torch.no_grad()
def pepita_factors(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                   sign: float = 1.0, output_error: str = "modulated",
                   masks: list[Tensor] | None = None, biases: list[Tensor] | None = None,
                   fused_first_layer: bool | str = False, pool: int = 1,
                   conv_update: str = "rule", first_feedback: Tensor | None = None,
                   normalize: bool = False, variant: str = "modulated") -> Factors:
    """Factors of the PEPITA update.

    The ICLR 2024 options: `normalize` divides each hidden output by its norm over the batch
    in both passes (`nets.batch_normalized`); `variant="forward"` takes the presynaptic
    factors (each layer's input) from the clean pass instead of the modulated one;
    `variant="time-local"` gives the sum of its two updates as one set of factors, 2B rows
    (the clean pass's `h_l (h_{l-1})^T`, the last layer's `y (h_{L-1})^T`, then the modulated
    pass's `-h_l^err (h_{l-1}^err)^T` and `-t (h_{L-1}^err)^T`), all on the same weights; the
    training step applies the two halves one after the other (`time_local_step`).

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
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: expected one of {', '.join(VARIANTS)}")
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
    hs, ins = forward_pass(weights, x, masks, biases, first_pre=a1, pool=pool,
                           normalize=normalize)
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
    hs_err, ins_err = forward_pass(weights, x_err, masks, biases, first_pre=a1_err, pool=pool,
                                   normalize=normalize)
    e_err = hs_err[-1] - target
    L = len(weights)
    if variant == "time-local":
        return Factors(deltas=[_rows(hs[l], -hs_err[l]) for l in range(1, L)]
                       + [_rows(hs[-1], -target)],
                       inputs=[_rows(a, b) for a, b in zip(ins, ins_err)], probs=hs[-1])
    if variant == "forward":  # the clean pass's inputs are kept: no update in place
        deltas = [hs[l] - hs_err[l] for l in range(1, L)]
        deltas.append(e_err if output_error == "modulated" else e)
        return Factors(deltas=deltas, inputs=ins, probs=hs[-1])
    # In place: the clean pass's hidden outputs are not needed again, and a conv map written
    # over is cheaper than one written afresh (profiled on the MNIST conv net: 0.09 against
    # 0.37 ms a step).
    deltas = [hs[l].sub_(hs_err[l]) for l in range(1, L)]
    if conv_update == "icml-code":
        deltas = [d_l * (-1.0 / (B * d_l[0, 0].numel())) if d_l.dim() == 4 else d_l
                  for d_l in deltas]
    deltas.append(e_err if output_error == "modulated" else e)
    return Factors(deltas=deltas, inputs=ins_err, probs=hs[-1])


VARIANTS = ("modulated", "forward", "time-local")


def _rows(a: Tensor, b: Tensor) -> Tensor:
    """`a` over `b` along the batch (a population's shared (B, n) broadcast to (K, B, n))."""
    if a.dim() < b.dim():
        a = a.expand_as(b)
    elif b.dim() < a.dim():
        b = b.expand_as(a)
    return torch.cat([a, b], dim=-2)


@torch.no_grad()
def time_local_step(trainer, x: Tensor, target: Tensor, masks, lr, settings) -> Factors:
    """The time-local PEPITA step (ICLR 2024): the clean pass, its anti-Hebbian update
    `W_l -= lr h_l (h_{l-1})^T / B` (last layer `y (h_{L-1})^T`) applied at once; then the
    modulated pass on `x + sign F e` with the updated weights (same dropout masks) and its
    Hebbian update `W_l += lr h_l^err (h_{l-1}^err)^T / B` (last layer `t (h_{L-1}^err)^T`).
    Each half goes through the loop's momentum update. Returns the clean pass's factors."""
    net = trainer.net
    hs, ins = forward_pass(net.weights, x, masks, net.biases, normalize=settings.normalize)
    e = hs[-1] - target
    clean = Factors(deltas=hs[1:], inputs=ins, probs=hs[-1])
    trainer.apply(clean, lr)
    x_err = x + settings.sign * (e @ net.F.mT)
    hs_err, ins_err = forward_pass(net.weights, x_err, masks, net.biases,
                                   normalize=settings.normalize)
    trainer.apply(Factors(deltas=[-h for h in hs_err[1:-1]] + [-target], inputs=ins_err,
                          probs=hs[-1]), lr)
    return clean


@torch.no_grad()
def mirror_step(net, settings, batch: int, generators: list[torch.Generator]) -> None:
    """One weight-mirroring step (ICLR 2024, after Akrout et al. 2019): for each layer l, a
    noise batch `xi` (B, n_{l-1}) ~ N(0, mirror_noise^2) minus its mean, the layer's response
    `y = phi_l(W_l xi + b_l)` (ReLU, normalised as the forward pass if `normalize`; softmax
    for the output layer; no dropout), and `B_l += mirror_lr (xi^T y / B - mirror_decay B_l)`,
    which drives B_l towards a multiple of W_l^T; then every B_l is rescaled so that
    F = B_1 ... B_L keeps std `f_scale sqrt(2 / d)`, and `net.F` is that product. A population
    (weights (K, out, in)) draws each member's noise from its own generator."""
    L = len(net.weights)
    for l, W in enumerate(net.weights):
        n_in = W.shape[-1]
        if W.dim() == 2:
            xi = torch.randn(batch, n_in, generator=generators[0], device=W.device)
        else:
            xi = torch.stack([torch.randn(batch, n_in, generator=g, device=W.device)
                              for g in generators])
        xi = xi * settings.mirror_noise
        xi = xi - xi.mean((-2, -1), keepdim=True)
        a = pre_activation(W, xi, None if net.biases is None else net.biases[l])
        if l == L - 1:
            y = torch.softmax(a, dim=-1)
        else:
            y = a.relu_()
            if settings.normalize:
                y = batch_normalized(y)
        update = xi.mT @ y / batch  # (..., n_in, n_out), shaped like B_l = W_l^T
        net.F_factors[l].add_(update - settings.mirror_decay * net.F_factors[l],
                              alpha=settings.mirror_lr)
    d = net.weights[0].shape[-1]
    target = f_std(d, settings.f_scale)
    if torch.is_tensor(target):
        target = target.reshape(-1)
    net.F.copy_(renormalize_factors(net.F_factors, target))


def mirrors_in(settings, epoch: int) -> bool:
    """Whether 0-based epoch `epoch` mirrors: the pre-mirroring epochs, then every epoch e
    with (e + 1) % mirror_period == 0 (the ICLR code's schedule)."""
    return settings.weight_mirroring and (
        epoch < settings.premirror_epochs or (epoch + 1) % settings.mirror_period == 0)


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
        self.recompute(W1, v1, F)

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
    def recompute(self, W1: Tensor, v1: Tensor, F: Tensor) -> None:
        """Recompute both products exactly."""
        self.F = F
        self.wf = W1 @ F  # (..., n_1, C)
        self.vf = v1 @ F

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
        self.vf.mul_(momentum).add_(delta.mT @ (a @ self.F), alpha=alpha)
        self.wf.sub_(self.vf)

    def freeze(self, k: int) -> None:
        """Population member k diverged: its weights stop, so its `v_1 F` must too."""
        self.vf[k].zero_()


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


class Pepita(Rule):
    """PEPITA: two forward passes, the second on the error-modulated input. Reads `sign`,
    `output_error` and `conv_update` from the settings; tracks `W_1 F` where that saves work."""

    name, label = "pepita", "PEPITA"
    table1_models, baseline = ("fc", "conv"), False
    reference = staticmethod(pepita_reference)
    reads_F = True
    options = ("normalize", "pepita_variant", "weight_mirroring", "mirror_lr", "mirror_decay",
               "mirror_noise", "premirror_epochs", "mirror_period")

    def factors(self, net, x, target, masks, settings, state=None) -> Factors:
        return pepita_factors(net.weights, net.shape_input(x), target, net.F,
                              sign=settings.sign, output_error=settings.output_error,
                              masks=masks, biases=net.biases, fused_first_layer="auto",
                              pool=net.pool, conv_update=settings.conv_update,
                              first_feedback=None if state is None else state.wf,
                              normalize=settings.normalize, variant=settings.pepita_variant)

    def train_step(self, trainer, x, target, masks, lr) -> Factors:
        """The paper's step; with the ICLR 2024 options, the time-local variant's two updates
        (`time_local_step`), and weight mirroring: during the pre-mirroring epochs the forward
        weights wait (only the clean pass runs, for the training loss), and in mirroring
        epochs every step ends with `mirror_step`."""
        settings, epoch = trainer.settings, trainer.epoch
        if settings.weight_mirroring and epoch < settings.premirror_epochs:
            net = trainer.net
            hs, _ = forward_pass(net.weights, x, masks, net.biases,
                                 normalize=settings.normalize)
            f = Factors(deltas=[], inputs=[], probs=hs[-1])
        elif settings.pepita_variant == "time-local":
            f = time_local_step(trainer, x, target, masks, lr, settings)
        else:
            f = super().train_step(trainer, x, target, masks, lr)
        if mirrors_in(settings, epoch):
            mirror_step(trainer.net, settings, target.shape[-2],
                        [run.mask_gen for run in trainer.members])
            if trainer.state is not None:  # F changed: W_1 F again
                trainer.state.refresh(trainer.net, trainer.velocity)
        return f

    def make_state(self, net, velocity, n_classes) -> FirstLayerFeedback | None:
        if not FirstLayerFeedback.applies(net.weights, n_classes):
            return None
        return FirstLayerFeedback(net.weights[0], velocity[0], net.F)

    def step_cost(self, sizes, batch_size, *, fused_first_layer: bool | str = "tracked",
                  **options) -> Cost:
        """MACs: B d C (e F^T) + F (clean pass) + F' (modulated) + B P (updates), F = B P one
        forward pass. F' = F, or with `fused_first_layer` F - B d n_1 + n_1 d C + B C n_1
        (layer 1 of the modulated pass as W_1 x + e (F^T W_1^T); "auto" fuses when that is
        fewer MACs: C (d + B) < B d), or "tracked" (what training does, `FirstLayerFeedback`)
        F - B d n_1 + B C n_1 + B d C + B n_1 C when that saves work.
        Activation floats: B sum_{l>=1} n_l (clean h_1..h_L) + B max_{l>=1} (n_{l-1} + n_l)
        (the modulated pass streamed layer by layer, each update made as soon as its factors
        exist; its h_0 is x_err, which replaces x). The training code keeps the whole
        modulated pass instead, so this is the streamed bound, not its footprint."""
        sizes = [int(n) for n in sizes]
        B, d, C, n_1 = int(batch_size), sizes[0], sizes[-1], sizes[1]
        forward = B * sum(a * b for a, b in zip(sizes, sizes[1:]))
        modulated = forward
        if fused_first_layer == "tracked":  # e (W_1 F)^T, then a F and delta^T (a F)
            if FirstLayerFeedback.saves_work(d, n_1, C):
                modulated += 2 * B * C * n_1 + B * d * C - B * d * n_1
        else:
            if fused_first_layer == "auto":
                fused_first_layer = C * (d + B) < B * d
            if fused_first_layer:
                modulated += n_1 * d * C + B * C * n_1 - B * d * n_1
        floats = B * sum(sizes[1:]) + B * max(a + b for a, b in zip(sizes, sizes[1:]))
        return Cost(B * d * C + forward + modulated + forward, floats, 4 * floats)

    def conv_step_cost(self, layer_macs, units, d, n_classes, batch_size) -> Cost:
        """B (d C + 3 P): e F^T, both passes and the updates (never fused); both passes'
        activations kept."""
        B, P = int(batch_size), sum(layer_macs)
        floats = 2 * B * (d + sum(units))
        return Cost(B * (d * n_classes + 3 * P), floats, 4 * floats)
