"""The follow-up's PEPITA options (Srinivasan et al., ICLR 2024), each extending the paper's rule
(`pepita`) with the equations it adds (docs/after-the-paper.md has the derivations and every
difference from the authors' code):

- normalisation (`normalize`): each hidden output divided by its Frobenius norm over the batch,
  `h_l <- h_l / ||h_l||_F`, in both passes and in evaluation;
- the forward variant: presynaptic factors from the clean pass,
  `dW_l = (h_l - h_l^err)^T h_{l-1} / B`;
- the time-local variant: two updates a step, the clean pass's anti-Hebbian one applied first,
  `W_l -= lr h_l^T h_{l-1} / B` (last layer `y^T h_{L-1}`), then the modulated pass on the
  updated weights and its Hebbian one, `W_l += lr (h_l^err)^T h_{l-1}^err / B` (last layer
  `t^T h_{L-1}^err`); its modulated pass draws fresh dropout masks as the ICLR code does
  (`time_local_masks="fresh"`, the default) or reuses the clean pass's (`"shared"`);
- weight mirroring: F = B_1 ... B_L learned by mirroring each B_l towards W_l^T (`mirror_step`),
  with pre-mirroring epochs in which the forward weights wait.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config.checks import ALLOWED
from ..nets import batch_normalized, f_std, forward_pass, pre_activation, renormalize_factors
from .common import Factors
from .pepita import modulated_input


@torch.no_grad()
def pepita_options_factors(weights: list[Tensor], x: Tensor, target: Tensor, F: Tensor, *,
                           sign: float = 1.0, output_error: str = "modulated",
                           masks: list[Tensor] | None = None,
                           biases: list[Tensor] | None = None, normalize: bool = False,
                           variant: str = "modulated", first_pre: Tensor | None = None,
                           first_pre_err=None) -> Factors:
    """`pepita.pepita_factors` with normalisation and the forward variant (fully connected
    nets). `variant="time-local"` gives the sum of its two updates as one set of factors, 2B
    rows (the clean pass's `h_l, h_{l-1}` and `y, h_{L-1}`, then the modulated pass's
    `-h_l^err, h_{l-1}^err` and `-t, h_{L-1}^err`), all on the same weights and masks: the
    oracle tests' form; training applies the halves one after the other (`time_local_step`)."""
    ALLOWED["pepita_variant"].check("variant", variant)  # the config's one check
    hs, ins = forward_pass(weights, x, masks, biases, first_pre=first_pre, normalize=normalize)
    e = hs[-1] - target  # (B, C)
    a1_err = None if first_pre_err is None else first_pre_err(e)
    hs_err, ins_err = forward_pass(weights, modulated_input(x, e, F, sign), masks, biases,
                                   first_pre=a1_err, normalize=normalize)
    L = len(weights)
    if variant == "time-local":
        return Factors(deltas=[_rows(hs[l], -hs_err[l]) for l in range(1, L)]
                       + [_rows(hs[-1], -target)],
                       inputs=[_rows(a, b) for a, b in zip(ins, ins_err)], probs=hs[-1])
    deltas = [hs[l] - hs_err[l] for l in range(1, L)]
    deltas.append((hs_err[-1] if output_error == "modulated" else hs[-1]) - target)
    return Factors(deltas=deltas, inputs=ins if variant == "forward" else ins_err,
                   probs=hs[-1])


def _rows(a: Tensor, b: Tensor) -> Tensor:
    """`a` over `b` along the batch (a population's shared (B, n) broadcast to (K, B, n))."""
    if a.dim() < b.dim():
        a = a.expand_as(b)
    elif b.dim() < a.dim():
        b = b.expand_as(a)
    return torch.cat([a, b], dim=-2)


@torch.no_grad()
def time_local_step(trainer, x: Tensor, target: Tensor, masks, lr, settings) -> Factors:
    """The time-local step: the clean pass and its anti-Hebbian update through the loop's
    momentum, then the modulated pass on `x + sign F e` with the updated weights (fresh dropout
    masks unless `time_local_masks="shared"`) and its Hebbian update. Returns the clean pass's
    factors."""
    net = trainer.net
    hs, ins = forward_pass(net.weights, x, masks, net.biases, normalize=settings.normalize)
    e = hs[-1] - target
    clean = Factors(deltas=hs[1:], inputs=ins, probs=hs[-1])
    trainer.apply(clean, lr)
    if masks is not None and settings.time_local_masks == "fresh":
        masks = trainer.dropout_masks(target.shape[-2])  # as the ICLR code's reset
    hs_err, ins_err = forward_pass(net.weights, modulated_input(x, e, net.F, settings.sign),
                                   masks, net.biases, normalize=settings.normalize)
    trainer.apply(Factors(deltas=[-h for h in hs_err[1:-1]] + [-target], inputs=ins_err,
                          probs=hs[-1]), lr)
    return clean


@torch.no_grad()
def premirror_step(trainer, x: Tensor, masks, settings) -> Factors:
    """A pre-mirroring step: the forward weights wait; only the clean pass runs (for the
    training loss)."""
    net = trainer.net
    hs, _ = forward_pass(net.weights, x, masks, net.biases, normalize=settings.normalize)
    return Factors(deltas=[], inputs=[], probs=hs[-1])


@torch.no_grad()
def mirror_step(net, settings, batch: int, generators: list[torch.Generator]) -> None:
    """One weight-mirroring step (after Akrout et al. 2019): for each layer l, a noise batch
    `xi` (B, n_{l-1}) ~ N(0, mirror_noise^2) minus its mean, the layer's response
    `y = phi_l(W_l xi + b_l)` (ReLU, normalised as the forward pass if `normalize`; softmax
    for the output layer; no dropout), and `B_l += mirror_lr (xi^T y / B - mirror_decay B_l)`,
    which drives B_l towards a multiple of W_l^T; then every B_l is rescaled so that
    F = B_1 ... B_L keeps std `f_scale sqrt(2 / d)`, and `net.F` is that product. The loop's net
    (weights (K, out, in)): each member's noise from its own generator."""
    L = len(net.weights)
    for l, W in enumerate(net.weights):
        n_in = W.shape[-1]
        xi = torch.stack([torch.randn(batch, n_in, generator=g, device=W.device)
                          for g in generators])  # (K, B, n_in)
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
        B_l = net.F_factors[l]  # one net's (with one generator) has no K: the view drops it
        B_l.add_((update - settings.mirror_decay * B_l).view_as(B_l), alpha=settings.mirror_lr)
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


def uses_options(settings) -> bool:
    """Whether `settings` take any option the paper's factors do not (mirroring alone does
    not: it changes F between steps, not the step)."""
    return settings.normalize or settings.pepita_variant != "modulated"
