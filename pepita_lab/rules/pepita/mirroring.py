"""Weight mirroring (ICLR 2024 PEPITA, after Akrout et al. 2019): F = B_1 ... B_L learned by
mirroring each B_l towards W_l^T between steps (`mirror_step`), with pre-mirroring epochs in
which the forward weights wait (the rule's step: `rule.Pepita.train_step`)."""

from __future__ import annotations

import torch

from ...nets import batch_normalized, f_std, pre_activation, renormalize_factors


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
