"""The registered PEPITA rule: its training step over `passes.pepita_passes` (the paper's step,
the ICLR 2024 options, the streamed form), its cost model, and the one piece of state a rule
keeps across steps, the tracked `W_1 F` (`FirstLayerFeedback`), confined to this module.

The modulated pass's first pre-activation is (rows are samples, as the code holds them)

    x_err W_1^T = (x + sign e F^T) W_1^T = x W_1^T + sign * e (W_1 F)^T          (B, n_1)

so it follows from the clean pass's `W_1 x` and the (n_1, C) product `W_1 F`. Tracking that
product through the momentum update costs `C (B d + B n_1)` multiply-adds a step instead of the
modulated first layer's `B d n_1` (MNIST at batch 64: 28x fewer). Measured on the paper's MNIST
epoch, the stateless first layer (`W_1 F` computed afresh each step) takes 1.21x (2 threads)
and 1.17x (scalar kernels) the tracked one's time (docs/performance.md): the state pays, so it
stays; the loop holds it in `Step.carry` without reading it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...kernels import mm
from ...nets import forward_output, is_conv
from ..factors import Factors
from ..interface import Cost, Rule, Step
from .mirroring import mirror_step
from .passes import pepita_passes
from .streamed import check_streamed, streamed_step_cost


def mirrors_in(settings, epoch: int) -> bool:
    """Whether 0-based epoch `epoch` mirrors: the pre-mirroring epochs, then every epoch e
    with (e + 1) % mirror_period == 0 (the ICLR code's schedule)."""
    return settings.weight_mirroring and (
        epoch < settings.premirror_epochs or (epoch + 1) % settings.mirror_period == 0)


class Pepita(Rule):
    """PEPITA: two forward passes, the second on the error-modulated input. Reads `sign`,
    `output_error` and `conv_update` (and the follow-up's options) from the settings; tracks
    `W_1 F` where that saves work."""

    name, label = "pepita", "PEPITA"
    table1_models, baseline = ("fc", "conv"), False
    reads_F = True
    options = ("normalize", "pepita_variant", "time_local_masks", "weight_mirroring",
               "mirror_lr", "mirror_decay", "mirror_noise", "premirror_epochs", "mirror_period",
               "streamed")

    def factors(self, net, x, target, masks, settings, first_feedback=None) -> Factors:
        """`passes.pepita_passes` with the run's settings; `first_feedback`: the tracked
        `W_1 F`, if any."""
        return pepita_passes(net.weights, net.shape_input(x), target, net.F,
                             sign=settings.sign, output_error=settings.output_error,
                             masks=masks, biases=net.biases, pool=net.pool,
                             conv_update=settings.conv_update, normalize=settings.normalize,
                             variant=settings.pepita_variant, first_feedback=first_feedback)

    def train_step(self, step: Step, x, target) -> Factors:
        """The paper's step, the modulated first layer from the tracked `W_1 F` where that
        saves work (`streamed`: each layer folded as soon as its factors exist); with the
        ICLR 2024 options, the time-local variant's two updates, and weight mirroring: during
        the pre-mirroring epochs the forward weights wait, and in mirroring epochs every step
        ends with `mirror_step`."""
        s, net = step.settings, step.net
        if s.weight_mirroring and step.epoch < s.premirror_epochs:  # the clean pass only
            f = Factors([], [], forward_output(net.weights, x, step.masks, net.biases,
                                               normalize=s.normalize))
        elif s.pepita_variant == "time-local":
            fresh = s.time_local_masks == "fresh"
            f = pepita_passes(net.weights, x, target, net.F, sign=s.sign, masks=step.masks,
                              biases=net.biases, normalize=s.normalize, variant="time-local",
                              fold=lambda f, layers: step.fold(f, step.lr),
                              remask=(lambda: step.redraw(target.shape[-2])) if fresh else None)
        elif s.streamed:
            tracked = FirstLayerFeedback.kept(step)
            follow = None if tracked is None else tracked.advance
            with step.autocast():
                f = pepita_passes(
                    net.weights, net.shape_input(x), target, net.F, sign=s.sign,
                    output_error=s.output_error, masks=step.masks, biases=net.biases,
                    pool=net.pool, conv_update=s.conv_update, normalize=s.normalize,
                    variant=s.pepita_variant, streamed=True,
                    first_feedback=None if tracked is None else tracked.wf,
                    fold=lambda f, layers: step.fold(f, step.lr, layers=layers, follow=follow))
        else:
            tracked = FirstLayerFeedback.kept(step)
            if tracked is None:
                f = step.factors(x, target, step.masks)
                step.fold(f, step.lr)
            else:
                f = step.factors(x, target, step.masks, first_feedback=tracked.wf)
                step.fold(f, step.lr, follow=tracked.advance)
        if mirrors_in(s, step.epoch):
            mirror_step(net, s, target.shape[-2], step.streams)
            step.carry.pop(FirstLayerFeedback.KEY, None)  # F changed: W_1 F again
        return f

    def refusal(self, cfg) -> str | None:
        return check_streamed(cfg)

    def step_cost(self, sizes, batch_size, *, fused_first_layer: bool | str = "tracked",
                  streamed: bool = False, output_error: str = "modulated", **options) -> Cost:
        """MACs: B d C (e F^T) + F (clean pass) + F' (modulated) + B P (updates), F = B P one
        forward pass. F' = F, or with `fused_first_layer` F - B d n_1 + n_1 d C + B C n_1
        (layer 1 of the modulated pass as W_1 x + e (F^T W_1^T); "auto" fuses when that is
        fewer MACs: C (d + B) < B d), or "tracked" (what training does, `FirstLayerFeedback`)
        F - B d n_1 + B C n_1 + B d C + B n_1 C when that saves work.
        Activation floats: both passes kept whole, B (d + 2 sum_{l>=1} n_l) (x_err, h_l and
        h_l^err; the deltas are written over the clean h_l). `streamed`: the streamed step
        (`streamed.streamed_step_cost`)."""
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
        floats = B * (d + 2 * sum(sizes[1:]))
        plain = Cost(B * d * C + forward + modulated + forward, floats, 4 * floats)
        return streamed_step_cost(plain, sizes, B, output_error) if streamed else plain

    def conv_step_cost(self, layer_macs, units, d, n_classes, batch_size, *,
                       streamed: bool = False, output_error: str = "modulated",
                       **options) -> Cost:
        """B (d C + 3 P): e F^T, both passes and the updates (never fused); both passes'
        activations kept, B (d + 2 sum_l u_l) (x_err, the maps and outputs)."""
        B, P = int(batch_size), sum(layer_macs)
        floats = B * (d + 2 * sum(units))
        plain = Cost(B * (d * n_classes + 3 * P), floats, 4 * floats)
        if not streamed:
            return plain
        return streamed_step_cost(plain, [d, *units], B, output_error, layer_macs)


class FirstLayerFeedback:
    """`W_1 F` and `v_1 F` (first layer's weights and momentum times F), kept current through
    the momentum update `v_1 = m v_1 + alpha delta^T a; W_1 -= v_1` by the same update applied
    to their products with F: `v_1 F = m v_1 F + alpha delta^T (a F)`, `W_1 F -= v_1 F`.

    Equal to the recomputed product up to rounding; recomputed exactly whenever the loop
    empties `Step.carry` (every epoch, after loading a checkpoint or a diverged member). Works for one net
    (W_1 (n_1, d), F (d, C)) and for a population (W_1 (K, n_1, d), F (K, d, C)) alike.
    """

    KEY = "W_1 F"  # its place in `Step.carry`

    def __init__(self, W1: Tensor, v1: Tensor, F: Tensor):
        self.recompute(W1, v1, F)

    @classmethod
    def kept(cls, step: Step) -> "FirstLayerFeedback | None":
        """The tracked products in `step.carry`, recomputed if the loop emptied it (a new
        epoch, a loaded checkpoint, a diverged member, an update the tracking did not
        follow), or None where tracking does not apply."""
        tracked = step.carry.get(cls.KEY)
        if tracked is None and cls.applies(step.net.weights, step.net.F.shape[-1]):
            tracked = step.carry[cls.KEY] = cls(step.net.weights[0], step.velocity[0],
                                                step.net.F)
        return tracked

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

    @torch.no_grad()
    def advance(self, layer: int, delta: Tensor, a: Tensor, momentum: float,
                alpha: float = 1.0) -> None:
        """Follow layer `layer`'s update `v = momentum v + alpha delta^T a; W -= v` (only the
        first layer's matters: delta (..., B, n_1), a (..., B, d))."""
        if layer != 0:
            return
        self.vf.mul_(momentum).add_(mm(delta.mT, mm(a, self.F)), alpha=alpha)
        self.wf.sub_(self.vf)
