"""The momentum update: a rule's factors folded into every member's weights by SGD with
momentum (the training loop's `Trainer.apply`).

For each layer l, from the factors `(delta_l, a_l)` of a batch of B samples (`rules.factors`),
the paper's update (momentum m, learning rate lr, one per member) is

    v_l = m v_l + lr / B delta_l^T a_l,        W_l -= v_l

(a conv layer: the convolutional form of `delta_l^T a_l`; a bias: delta_l summed over the
batch). `momentum_update` computes it with one batched `baddbmm` per fully connected layer,
lr / B multiplied into the narrower factor first, so every member's numbers are the same bits
whatever the others' (a sweep point packed alone or with others). `general_update` adds weight
decay λ (`v = m v + g (dW + λ W)`) and torch's convention (`v = m v + dW; W -= lr v`).

A member that diverged is frozen: its rows of the factors are zeroed (not multiplied, so NaN
stays out) and its momentum was zeroed where it diverged.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .kernels import addmm_
from .nets import Net, is_conv
from .rules.factors import Factors, bias_update, weight_update


def momentum_update(net: Net, velocity: list[Tensor], f: Factors, lr, momentum: float, *,
                    frozen: Tensor | None = None, layers: range | None = None,
                    follow=None) -> None:
    """`v = momentum v + lr dW; W -= v` for every layer (and bias) of every member,
    `dW = delta^T a / B`. `lr`: a number, or (K, 1, 1) per member; `frozen`: (K,) True for the
    diverged members, or None; `layers`: only these layers and their biases; `follow(l, delta,
    a, momentum)`: called with each fully connected layer's factors as folded (lr / B in one
    of them; `Step.fold`)."""
    scale = lr / _batch(f)  # a number, or (K, 1, 1)
    n_w = len(net.weights)
    for l, p in enumerate(net.params()):
        j = l % n_w  # the layer
        if layers is not None and j not in layers:
            continue
        rank = net.weights[j].dim()  # a K and the weight's; a factor the members share: less
        v, delta = velocity[l], members_only(f.deltas[j], frozen, rank)
        if l >= n_w:  # a bias
            v.mul_(momentum).add_(_scaled(bias_update(delta, keepdim=True), scale))
        elif is_conv(p):  # (K, out_c, in_c, k, k): lr on the small kernel update
            v.mul_(momentum).add_(_scaled(weight_update(delta, f.inputs[j]), scale))
        else:  # (K, out, in): lr on the narrower factor, one baddbmm
            delta, a = _scaled_factors(delta, members_only(f.inputs[j], frozen, 3), scale)
            addmm_(v, delta.mT, a, beta=momentum, alpha=1.0)
            if follow is not None:
                follow(j, delta, a, momentum)
        p.sub_(v)


def general_update(net: Net, velocity: list[Tensor], f: Factors, lr, momentum: float, *,
                   weight_decay, style: str = "paper", frozen: Tensor | None = None,
                   layers: range | None = None) -> None:
    """`momentum_update` with weight decay λ (`weight_decay`: a number or (K, 1, 1)) or torch's
    momentum convention: `v = m v + g (dW + λ W); W -= o v`, (g, o) = (lr, 1) for `style`
    "paper", (1, lr) for "torch" (torch.optim.SGD)."""
    B = _batch(f)
    gain, out = (lr, 1.0) if style == "paper" else (1.0, lr)
    n_w = len(net.weights)
    for l, p in enumerate(net.params()):
        if layers is not None and l % n_w not in layers:
            continue
        v, delta = velocity[l], f.deltas[l % n_w]
        dW = weight_update(delta, f.inputs[l]) if l < n_w else bias_update(delta, True)
        g = members_only(_scaled(dW / B + _scaled(p, weight_decay), gain), frozen, p.dim())
        v.mul_(momentum).add_(g)
        p.sub_(_scaled(v, out))


def _batch(f: Factors) -> int:
    """`Factors.batch`, read here (one module fewer in every step)."""
    return f.probs.shape[-2] if f.probs is not None else f.n


def members_only(t: Tensor, frozen: Tensor | None, rank: int) -> Tensor:
    """`t` with the frozen members' rows zeroed (not multiplied: NaN stays out), if it has
    `rank` dims (a K); one the members share (fewer dims) as it is."""
    if frozen is None or t.dim() != rank:
        return t
    return torch.where(frozen.view(-1, *[1] * (t.dim() - 1)), 0.0, t)


def _scaled(g: Tensor, scale) -> Tensor:
    """g (K, ...) times `scale`: a number, or a members' column (K, 1, 1) viewed to g's
    rank."""
    if not torch.is_tensor(scale) or g.dim() == scale.dim():
        return g * scale
    return g * scale.view(-1, *[1] * (g.dim() - 1))


def _scaled_factors(delta: Tensor, a: Tensor, scale) -> tuple[Tensor, Tensor]:
    """(delta, a), (..., B, out) and (..., B, in), with `scale` multiplied into the narrower
    (delta on a tie): the fewest multiplications, each element's the same for every member
    whatever the others' (a factor the members share gets their K)."""
    if a.shape[-1] < delta.shape[-1]:
        return delta, a * scale
    return delta * scale, a
