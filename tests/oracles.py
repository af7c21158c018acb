"""The rules in their readable form: per-sample loops written straight from the equations in
docs/pepita.md (one sample at a time, explicit outer products), for fully connected nets
without biases. Slow by design; the oracle tests run them in float64 against the batched rules.
Each returns the batch-mean updates `dW` (shapes of `weights`), applied as `W -= lr * dW`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def forward_one(weights: list[Tensor], x: Tensor, mask: list[Tensor] | None = None) -> list[Tensor]:
    """One sample x (d,): `[h_0 = x, h_1, ..., h_L]`, h_l = relu(W_l h_{l-1}) * m_l, softmax
    output; `mask[l]` (n_l,) is this sample's dropout mask of hidden layer l."""
    hs = [x]
    for l, W in enumerate(weights):
        a = W @ hs[-1]
        if l < len(weights) - 1:
            h = torch.clamp(a, min=0.0)
            hs.append(h * mask[l] if mask is not None else h)
        else:
            z = torch.exp(a - a.max())
            hs.append(z / z.sum())
    return hs


def _sample_masks(masks, b):
    return None if masks is None else [m[b] for m in masks]


def forward_batch(weights: list[Tensor], x: Tensor, masks=None,
                  normalize: bool = False) -> list[list[Tensor]]:
    """Every sample's activations `hs[b] = [h_0, ..., h_L]`, layer by layer; with `normalize`
    each hidden layer's outputs are divided by the batch's norm `sqrt(sum_b sum_i h_bi^2)`
    (ICLR 2024), accumulated sample by sample before the next layer."""
    B, L = x.shape[0], len(weights)
    hs = [[x[b]] for b in range(B)]
    for l, W in enumerate(weights):
        for b in range(B):
            a = W @ hs[b][-1]
            if l < L - 1:
                h = torch.clamp(a, min=0.0)
                hs[b].append(h * masks[l][b] if masks is not None else h)
            else:
                z = torch.exp(a - a.max())
                hs[b].append(z / z.sum())
        if normalize and l < L - 1:
            total = sum(float((hs[b][-1] ** 2).sum()) for b in range(B))
            for b in range(B):
                hs[b][-1] = hs[b][-1] / total ** 0.5
    return hs


def pepita_reference(weights, x, target, F, *, sign: float = 1.0,
                     output_error: str = "modulated", masks=None, normalize: bool = False,
                     variant: str = "modulated") -> list[Tensor]:
    """PEPITA: the clean pass, the pass on `x + sign F e`, then `(h_l - h_l^err) h_{l-1}^err`
    for hidden layers and `e_out h_{L-1}^err` for the last (e_out: the modulated pass's error,
    or the clean one's). ICLR 2024 options: `normalize` (each hidden layer divided by its norm
    over the batch, in both passes); `variant="forward"` (`h_{l-1}` of the clean pass in
    place of `h_{l-1}^err`); `variant="time-local"` (the sum of the two halves on the same
    weights: `h_l h_{l-1}^T - h_l^err (h_{l-1}^err)^T`, last layer `y h_{L-1}^T - t
    (h_{L-1}^err)^T`)."""
    B, L = x.shape[0], len(weights)
    dW = [torch.zeros_like(W) for W in weights]
    clean = forward_batch(weights, x, masks, normalize)
    x_err = torch.stack([x[b] + sign * (F @ (clean[b][-1] - target[b])) for b in range(B)])
    modulated = forward_batch(weights, x_err, masks, normalize)
    for b in range(B):
        hs, hs_err = clean[b], modulated[b]
        e = hs[-1] - target[b]
        if variant == "time-local":
            for l in range(L - 1):
                dW[l] += torch.outer(hs[l + 1], hs[l]) - torch.outer(hs_err[l + 1], hs_err[l])
            dW[-1] += torch.outer(hs[-1], hs[L - 1]) - torch.outer(target[b], hs_err[L - 1])
            continue
        pre = hs if variant == "forward" else hs_err
        for l in range(L - 1):
            dW[l] += torch.outer(hs[l + 1] - hs_err[l + 1], pre[l])
        e_out = hs_err[-1] - target[b] if output_error == "modulated" else e
        dW[-1] += torch.outer(e_out, pre[L - 1])
    return [d / B for d in dW]


def sgd_reference(W: Tensor, v: Tensor, dW: Tensor, *, lr: float, momentum: float,
                  weight_decay: float = 0.0, style: str = "paper") -> tuple[Tensor, Tensor]:
    """One momentum step, element by element: g = dW + weight_decay W; the paper's code
    `v = m v + lr g; W -= v`, torch.optim.SGD's `v = m v + g; W -= lr v`. Returns (W, v)."""
    W, v = W.clone(), v.clone()
    for i in range(W.numel()):
        g = dW.view(-1)[i] + weight_decay * W.view(-1)[i]
        if style == "paper":
            v.view(-1)[i] = momentum * v.view(-1)[i] + lr * g
            W.view(-1)[i] -= v.view(-1)[i]
        else:
            v.view(-1)[i] = momentum * v.view(-1)[i] + g
            W.view(-1)[i] -= lr * v.view(-1)[i]
    return W, v


def time_local_reference(weights, x, target, F, *, lr: float, momentum: float, velocity,
                         sign: float = 1.0, masks=None) -> tuple[list[Tensor], list[Tensor]]:
    """The time-local step as two momentum steps: the clean pass's `h_l h_{l-1}^T` (last
    layer `y h_{L-1}^T`) applied first; then, with the updated weights, the pass on
    `x + sign F e` (e of the clean pass) and its `-h_l^err (h_{l-1}^err)^T` (last layer
    `-t (h_{L-1}^err)^T`). Returns the weights and velocities after both."""
    B, L = x.shape[0], len(weights)
    dW = [torch.zeros_like(W) for W in weights]
    errors = []
    for b in range(B):
        hs = forward_one(weights, x[b], _sample_masks(masks, b))
        errors.append(hs[-1] - target[b])
        for l in range(L):
            dW[l] += torch.outer(hs[l + 1], hs[l]) / B
    weights, velocity = map(list, zip(*[sgd_reference(W, v, d, lr=lr, momentum=momentum)
                                        for W, v, d in zip(weights, velocity, dW)]))
    dW = [torch.zeros_like(W) for W in weights]
    for b in range(B):
        hs_err = forward_one(weights, x[b] + sign * (F @ errors[b]), _sample_masks(masks, b))
        for l in range(L - 1):
            dW[l] -= torch.outer(hs_err[l + 1], hs_err[l]) / B
        dW[-1] -= torch.outer(target[b], hs_err[L - 1]) / B
    weights, velocity = map(list, zip(*[sgd_reference(W, v, d, lr=lr, momentum=momentum)
                                        for W, v, d in zip(weights, velocity, dW)]))
    return weights, velocity


def mirror_reference(weights, factors, noises, *, lr: float, decay: float,
                     target_std: float) -> tuple[list[Tensor], Tensor]:
    """One weight-mirroring step from given noise batches `noises[l]` (B, n_{l-1}) (already
    scaled, before centring): centre each by its mean, `y = relu(W_l xi)` per sample (softmax
    for the last layer), `B_l += lr (mean_b xi_b y_b^T - decay B_l)`; then each B_l times
    `(target_std / std(B_1 ... B_L))^(1/L)`. Returns the factors and their product F."""
    L = len(weights)
    new = []
    for l, (W, Bl, xi) in enumerate(zip(weights, factors, noises)):
        xi = xi - xi.mean()
        update = torch.zeros_like(Bl)
        for b in range(xi.shape[0]):
            a = W @ xi[b]
            if l < L - 1:
                y = torch.clamp(a, min=0.0)
            else:
                z = torch.exp(a - a.max())
                y = z / z.sum()
            update += torch.outer(xi[b], y) / xi.shape[0]
        new.append(Bl + lr * (update - decay * Bl))
    F = new[0]
    for Bl in new[1:]:
        F = F @ Bl
    ratio = (target_std / float(F.std())) ** (1.0 / L)
    new = [Bl * ratio for Bl in new]
    F = new[0]
    for Bl in new[1:]:
        F = F @ Bl
    return new, F


def backward_reference(weights, x, target, carry) -> list[Tensor]:
    """One backward pass per sample; `carry(l, delta_above, e, t)` is what reaches h_l (before
    the ReLU derivative): `W_{l+1}^T delta` for BP, `B_l^T delta` for FA, `B_l^T e` for DFA,
    `B_l^T t` for DRTP."""
    B, L = x.shape[0], len(weights)
    dW = [torch.zeros_like(W) for W in weights]
    for b in range(B):
        hs = forward_one(weights, x[b])
        e = hs[-1] - target[b]
        delta = e
        dW[-1] += torch.outer(delta, hs[L - 1])
        for l in range(L - 2, -1, -1):
            delta = carry(l, delta, e, target[b]) * (hs[l + 1] > 0).to(x.dtype)
            dW[l] += torch.outer(delta, hs[l])
    return [d / B for d in dW]


def bp_reference(weights, x, target) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: weights[l + 1].T @ d)


def fa_reference(weights, x, target, feedback) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: feedback[l].T @ d)


def dfa_reference(weights, x, target, feedback) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: feedback[l].T @ e)


def drtp_reference(weights, x, target, feedback) -> list[Tensor]:
    return backward_reference(weights, x, target, lambda l, d, e, t: feedback[l].T @ t)
