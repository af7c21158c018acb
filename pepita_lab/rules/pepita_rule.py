"""The registered PEPITA rule: the paper's factors (`pepita`), the first layer's shortcut
(`pepita_fast`) and the follow-up's options (`pepita_options`) behind the `Rule` interface,
with PEPITA's cost model."""

from __future__ import annotations

from .base import Cost, Rule
from .common import Factors
from .pepita import pepita_factors
from .pepita_fast import FirstLayerFeedback, first_layer_shortcut
from .pepita_streamed import check_streamed, streamed_step, streamed_step_cost
from .pepita_options import (mirror_step, mirrors_in, pepita_options_factors, premirror_step,
                             time_local_step, uses_options)
from .reference import pepita_reference


class Pepita(Rule):
    """PEPITA: two forward passes, the second on the error-modulated input. Reads `sign`,
    `output_error` and `conv_update` (and the follow-up's options) from the settings; tracks
    `W_1 F` where that saves work."""

    name, label = "pepita", "PEPITA"
    table1_models, baseline = ("fc", "conv"), False
    reference = staticmethod(pepita_reference)
    reads_F = True
    options = ("normalize", "pepita_variant", "time_local_masks", "weight_mirroring",
               "mirror_lr", "mirror_decay", "mirror_noise", "premirror_epochs", "mirror_period",
               "streamed")

    def factors(self, net, x, target, masks, settings, state=None) -> Factors:
        x = net.shape_input(x)
        shortcut = first_layer_shortcut(net.weights, x, net.F, settings.sign,
                                        biases=net.biases,
                                        first_feedback=None if state is None else state.wf)
        common = dict(sign=settings.sign, output_error=settings.output_error, masks=masks,
                      biases=net.biases, **shortcut)
        if uses_options(settings):
            return pepita_options_factors(net.weights, x, target, net.F, **common,
                                          normalize=settings.normalize,
                                          variant=settings.pepita_variant)
        return pepita_factors(net.weights, x, target, net.F, **common, pool=net.pool,
                              conv_update=settings.conv_update)

    def train_step(self, trainer, x, target, masks, lr) -> Factors:
        """The paper's step; with the ICLR 2024 options, the time-local variant's two updates,
        and weight mirroring: during the pre-mirroring epochs the forward weights wait, and in
        mirroring epochs every step ends with `mirror_step`."""
        settings, epoch = trainer.settings, trainer.epoch
        if settings.weight_mirroring and epoch < settings.premirror_epochs:
            f = premirror_step(trainer, x, masks, settings)
        elif settings.pepita_variant == "time-local":
            f = time_local_step(trainer, x, target, masks, lr, settings)
        elif settings.streamed:  # each layer updated as soon as its factors exist
            f = streamed_step(trainer, x, target, masks, lr)
        else:
            f = super().train_step(trainer, x, target, masks, lr)
        if mirrors_in(settings, epoch):
            mirror_step(trainer.net, settings, target.shape[-2],
                        [run.mask_gen for run in trainer.members])
            if trainer.state is not None:  # F changed: W_1 F again
                trainer.state.refresh(trainer.net, trainer.velocity)
        return f

    def refusal(self, cfg) -> str | None:
        return check_streamed(cfg)

    def make_state(self, net, velocity, n_classes) -> FirstLayerFeedback | None:
        if not FirstLayerFeedback.applies(net.weights, n_classes):
            return None
        return FirstLayerFeedback(net.weights[0], velocity[0], net.F)

    def step_cost(self, sizes, batch_size, *, fused_first_layer: bool | str = "tracked",
                  streamed: bool = False, output_error: str = "modulated", **options) -> Cost:
        """MACs: B d C (e F^T) + F (clean pass) + F' (modulated) + B P (updates), F = B P one
        forward pass. F' = F, or with `fused_first_layer` F - B d n_1 + n_1 d C + B C n_1
        (layer 1 of the modulated pass as W_1 x + e (F^T W_1^T); "auto" fuses when that is
        fewer MACs: C (d + B) < B d), or "tracked" (what training does, `FirstLayerFeedback`)
        F - B d n_1 + B C n_1 + B d C + B n_1 C when that saves work.
        Activation floats: both passes kept whole, B (d + 2 sum_{l>=1} n_l) (x_err, h_l and
        h_l^err; the deltas are written over the clean h_l). `streamed`: the streamed step
        (`pepita_streamed.streamed_step_cost`)."""
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
