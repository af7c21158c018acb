"""Nets as plain tensors (weights, optional biases and the rule's fixed feedback) and their
forward pass, for one net or a population of K nets of one architecture.

A net is a list of weights: conv layers first (4-D, `(out_c, in_c, k, k)`: conv2d, stride 1,
no padding, then ReLU), then fully connected ones (2-D, `(out, in)`), the last one the softmax
output. The training loop holds every net as a population of K (K = 1 for a single run): each
weight with a leading K, `(K, out, in)` and `(K, out_c, in_c, k, k)`; the forward pass takes
either (a fully connected layer by broadcasting, a conv layer member by member:
`kernels.per_member`). A conv layer's output `h_l` (B, c, H', W') is
where rules take their signals; the next layer sees it max-pooled by `pool` (and flattened if
that layer is fully connected).

Fully connected nets follow the paper's code: He-uniform `U(+-sqrt(6 / fan_in))` weights. Conv
nets (conv layers, then fully connected ones) follow the authors' conv code, which keeps
PyTorch's default init: `U(+-1 / sqrt(fan_in))` for every layer (kaiming_uniform with
a = sqrt(5)), fan_in = in_c k k for a conv layer. `F = f_scale * U(+-sqrt(6 / d))` of shape
(d, C) either way. Everything is drawn from the run's seed.
"""

from __future__ import annotations

import math
from typing import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as nnf

from .config import ConfigError
from .kernels import addmm_, conv_relu, max_pool, maps_layout, mm, per_member


# ---------------------------------------------------------------- forward pass


def is_conv(W: Tensor) -> bool:
    """A conv layer: a 4-D weight `(out_c, in_c, k, k)`, or K of them (5-D); fully connected
    weights are 2-D or 3-D."""
    return W.dim() >= 4


def conv_output_shape(shape: tuple[int, int, int],
                      weight_shape: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """(c, H', W') of a conv layer (stride 1, no padding) with weight (c, c_in, kh, kw) on
    maps of `shape` (c_in, H, W)."""
    return (weight_shape[0], shape[1] - weight_shape[2] + 1, shape[2] - weight_shape[3] + 1)


def pooled_shape(shape: tuple[int, int, int], pool: int) -> tuple[int, int, int]:
    """(c, H // pool, W // pool): max-pooling drops the rows and columns that don't fit."""
    return (shape[0], shape[1] // pool, shape[2] // pool)


def layer_shapes(weights: list[Tensor], in_shape: tuple[int, ...],
                 pool: int = 1) -> list[tuple[int, ...]]:
    """The output shape of each layer, without the batch: (c, H', W') for a conv layer (before
    its pooling), (out,) for a fully connected one; `in_shape` is (C, H, W) or (d,)."""
    shapes, shape = [], tuple(in_shape)
    for l, W in enumerate(weights):
        if l > 0 and is_conv(weights[l - 1]):
            shape = pooled_shape(shape, pool)
        shape = conv_output_shape(shape, tuple(W.shape[-4:])) if is_conv(W) else (W.shape[-2],)
        shapes.append(shape)
    return shapes


def layer_input(h: Tensor, below: Tensor, W: Tensor, pool: int) -> Tensor:
    """What layer W sees of the output `h` of the layer below (weight `below`): a conv
    layer's output max-pooled (if `pool` > 1), flattened (channel-first) before a fully
    connected layer."""
    if not is_conv(below):
        return h
    if pool > 1:
        h = max_pool(h, pool)  # (B, c, H' // pool, W' // pool)
    return h if is_conv(W) else h.flatten(-3)  # channel-first: a copy from channels-last maps


def forward_pass(weights: list[Tensor], x: Tensor, masks: list[Tensor] | None = None,
                 biases: list[Tensor] | None = None, first_pre: Tensor | None = None,
                 pool: int = 1, softmax: bool = True, normalize: bool = False,
                 keep: bool = True) -> tuple[list[Tensor], list[Tensor]]:
    """`(hs, ins)`: layer outputs `[h_0 = x, h_1, ..., h_L]` (ReLU hidden layers times their
    dropout masks, softmax output, or the logits if not `softmax`) and each layer's input
    `ins[l]` (`h_l` itself, pooled and flattened after a conv layer). `first_pre`, if given, is
    layer 1's pre-activation already computed. With `normalize` (fully connected layers, the
    ICLR 2024 PEPITA), each hidden output is divided by its norm over the batch: the Frobenius
    norm of the (B, n) batch (a population: of each member's). Conv maps are channels-last on
    the CPU (`maps_layout`). Without `keep`, only the output is kept, `([h_L], [])`: each
    layer's input is dropped once the next exists (at most two layers alive)."""
    if is_conv(weights[0]):
        x = maps_layout(x)
    hs, ins = [x], []
    h = x
    L = len(weights)
    for l, W in enumerate(weights):
        a_in = h if l == 0 else layer_input(h, weights[l - 1], W, pool)
        if keep:
            ins.append(a_in)
        h = layer_forward(W, a_in, None if biases is None else biases[l],
                          None if masks is None or l == L - 1 else masks[l], last=l == L - 1,
                          pre=first_pre if l == 0 else None, softmax=softmax,
                          normalize=normalize)
        del a_in
        if keep:
            hs.append(h)
    return (hs, ins) if keep else ([h], [])


def forward_output(weights: list[Tensor], x: Tensor, masks: list[Tensor] | None = None,
                   biases: list[Tensor] | None = None, pool: int = 1,
                   normalize: bool = False) -> Tensor:
    """The output h_L (softmax) of `forward_pass`, one layer alive at a time."""
    return forward_pass(weights, x, masks, biases, pool=pool, normalize=normalize,
                        keep=False)[0][-1]


def layer_forward(W: Tensor, a_in: Tensor, b: Tensor | None = None, mask: Tensor | None = None,
                  *, last: bool = False, pre: Tensor | None = None, softmax: bool = True,
                  normalize: bool = False) -> Tensor:
    """One layer of `forward_pass` on its input `a_in`: a hidden layer's ReLU output times its
    dropout mask (normalised with `normalize`), or the last layer's softmax (its logits if not
    `softmax`). `pre`, if given, is the layer's pre-activation already computed. A step that
    keeps one layer at a time (`rules.pepita.passes`, streamed) calls it layer by layer."""
    if not last:
        if pre is not None:
            h = torch.relu(pre)
        elif is_conv(W):
            h = conv_relu(a_in, W, b)  # (B, c, H', W')
        else:
            h = pre_activation(W, a_in, b).relu_()  # a fresh pre-activation: in place
        if mask is not None:
            h = h * mask
        return batch_normalized(h) if normalize else h
    a = pre_activation(W, a_in, b) if pre is None else pre  # (B, C)
    return torch.softmax(a, dim=-1) if softmax else a


def batch_normalized(h: Tensor) -> Tensor:
    """`h / ||h||_F` over the batch and units (the last two dims); an all-zero batch stays 0."""
    norm = torch.linalg.vector_norm(h, dim=(-2, -1), keepdim=True)
    return h / norm.clamp_min(torch.finfo(h.dtype).tiny)


def forward(weights: list[Tensor], x: Tensor, masks: list[Tensor] | None = None,
            biases: list[Tensor] | None = None, first_pre: Tensor | None = None,
            pool: int = 1) -> list[Tensor]:
    """Activations `[h_0 = x, h_1, ..., h_L]`: ReLU hidden layers (times their dropout masks),
    softmax output. `first_pre`, if given, is layer 1's pre-activation already computed."""
    return forward_pass(weights, x, masks, biases, first_pre, pool)[0]


def pre_activation(W: Tensor, x: Tensor, b: Tensor | None = None) -> Tensor:
    """`x W^T + b`, or `conv2d(x, W) + b` for a conv layer. Also for a population: W (K, out,
    in), x (B, in) or (K, B, in), b (K, 1, out)."""
    if is_conv(W):  # (B, out_c, H - k + 1, W - k + 1), or (K, B, ...)
        return per_member(lambda x, W, b: nnf.conv2d(maps_layout(x), W, b), x, W, b,
                          base=(4, 4, 1))
    if b is None:
        return mm(x, W.mT)
    if W.dim() == 2:
        return torch.addmm(b, x, W.T)
    return addmm_(b.expand(W.shape[0], x.shape[-2], W.shape[-2]).clone(), x, W.mT,
                  beta=1.0, alpha=1.0)


# ---------------------------------------------------------------- nets


@dataclass
class Net:
    """A bias-free (by default) net and the fixed matrices its learning rule needs. Conv nets
    take flat inputs (B, C H W) like the data hold them and view them as `image_shape`."""

    # one net's shapes; the training loop's nets carry a leading K on every tensor (and a fully
    # connected layer's bias is (K, 1, out), broadcasting over the batch): `members`
    weights: list[Tensor]  # weights[l]: (out_l, in_l), or (out_c, in_c, k, k) for conv layers
    biases: list[Tensor] | None = None  # biases[l]: (out_l,)
    F: Tensor | None = None  # (d, C), PEPITA's input projection of the error
    feedback: list[Tensor] = field(default_factory=list)  # FA / DFA / DRTP matrices
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) input of a conv net
    pool: int = 1  # max-pool size after each conv layer
    # a factorised F = F_factors[0] @ ... @ F_factors[-1], each shaped like W_l^T (empty: F
    # is drawn whole); weight mirroring learns them and keeps F their product
    F_factors: list[Tensor] = field(default_factory=list)

    @property
    def is_conv(self) -> bool:
        return is_conv(self.weights[0])

    @property
    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Each layer's output shape without the batch: (c, H', W') for a conv layer (before
        pooling), (out,) for a fully connected one."""
        in_shape = self.image_shape if self.is_conv else (self.weights[0].shape[-1],)
        return layer_shapes(self.weights, in_shape, self.pool)

    @property
    def sizes(self) -> list[int]:
        """Units per layer: input, each layer's output (a conv layer: c H' W'), classes."""
        d = math.prod(self.image_shape) if self.is_conv else self.weights[0].shape[-1]
        return [d] + [math.prod(s) for s in self.layer_shapes]

    def shape_input(self, x: Tensor) -> Tensor:
        """x (..., B, d) as the first layer takes it: (..., B, C, H, W) images for a conv net."""
        return x.view(*x.shape[:-1], *self.image_shape) if self.is_conv else x

    def params(self) -> list[Tensor]:
        """The trained tensors, in a fixed order (weights, then biases)."""
        return list(self.weights) + list(self.biases or [])

    def state_dict(self) -> dict:
        return {"weights": self.weights, "biases": self.biases, "F": self.F,
                "feedback": self.feedback, "image_shape": self.image_shape, "pool": self.pool,
                "F_factors": self.F_factors}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Net":
        shape = d.get("image_shape")  # absent from checkpoints of fully connected nets before conv
        return cls(weights=list(d["weights"]), biases=d["biases"], F=d["F"],
                   feedback=list(d["feedback"]), image_shape=None if shape is None else
                   tuple(shape), pool=d.get("pool", 1), F_factors=list(d.get("F_factors", [])))

    def to(self, device) -> "Net":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Net([mv(W) for W in self.weights],
                   None if self.biases is None else [mv(b) for b in self.biases],
                   mv(self.F), [mv(B) for B in self.feedback], self.image_shape, self.pool,
                   [mv(B) for B in self.F_factors])


def he_uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator,
               scale: float = 1.0) -> Tensor:
    bound = scale * math.sqrt(6.0 / fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def torch_default(shape: tuple[int, ...], fan_in: int, generator: torch.Generator,
                  scale: float = 1.0) -> Tensor:
    """PyTorch's default for Linear and Conv2d weights: `U(+-1 / sqrt(fan_in))`."""
    bound = scale / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def he_normal(shape: tuple[int, ...], fan_in: int, generator: torch.Generator,
              scale: float = 1.0) -> Tensor:
    """`N(0, 2 / fan_in)` (the ICLR 2024 PEPITA code's `he_normal`)."""
    return torch.randn(shape, generator=generator) * (scale * math.sqrt(2.0 / fan_in))


INIT_DRAWS = {"he-uniform": he_uniform, "he-normal": he_normal, "torch": torch_default}


def f_std(d: int, f_scale: float) -> float:
    """The std every F distribution has: `f_scale sqrt(2 / d)`."""
    return f_scale * math.sqrt(2.0 / d)


def chain_product(factors: list[Tensor]) -> Tensor:
    """`factors[0] @ factors[1] @ ...` (a population's: batched)."""
    M = factors[0]
    for B in factors[1:]:
        M = M @ B
    return M


@torch.no_grad()
def renormalize_factors(factors: list[Tensor], target_std: float) -> Tensor:
    """Scale every factor in place by `(target_std / std(F))^(1/L)` so that their product F
    has std `target_std` (a population's: each member's); returns F."""
    F = chain_product(factors)
    std = F.flatten(-2).std(-1)  # () or (K,)
    ratio = torch.where(std > 0, target_std / std.clamp_min(1e-30), torch.ones_like(std))
    ratio = ratio.pow(1.0 / len(factors))[..., None, None]
    for B in factors:
        B.mul_(ratio)
    return F * ratio.pow(len(factors))


def init_F_factors(sizes: list[int], f_scale: float,
                   generator: torch.Generator) -> tuple[list[Tensor], Tensor]:
    """The factorised F of a net with `sizes = [d, n_1, ..., C]` units: B_l of shape
    (sizes[l-1], sizes[l]) (like W_l^T), Gaussian with std `(s / sqrt(n_1 ... n_{L-1}))^(1/L)`
    (s = f_scale sqrt(2/d)) so the product has std about s, then rescaled so that std(F) is
    s exactly. Returns the factors and F = B_1 ... B_L."""
    target, L = f_std(sizes[0], f_scale), len(sizes) - 1
    std = (target / math.sqrt(math.prod(sizes[1:-1]))) ** (1.0 / L)
    factors = [torch.randn((a, b), generator=generator) * std
               for a, b in zip(sizes, sizes[1:])]
    return factors, renormalize_factors(factors, target)


def init_F(d: int, n_classes: int, f_scale: float, generator: torch.Generator,
           distribution: str = "uniform") -> Tensor:
    """`F = f_scale * U(+-sqrt(6/d))`, shape (d, C); Gaussian: same std (f_scale * sqrt(2/d))."""
    if distribution == "gaussian":
        return torch.randn((d, n_classes), generator=generator) * f_scale * math.sqrt(2.0 / d)
    return he_uniform((d, n_classes), d, generator, f_scale)


def conv_shapes(config, image_shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """The output shape (c, H', W') of each conv layer of `config` on `image_shape` images;
    ConfigError if the kernels and pools shrink the maps below one pixel."""
    k, shapes, shape = config.kernel_size, [], tuple(image_shape)
    for i, c in enumerate(config.conv_channels):
        out = conv_output_shape(shape, (c, shape[0], k, k))
        if min(out[1:]) < 1 or min(pooled_shape(out, config.pool)[1:]) < 1:
            C, H, W = image_shape
            raise ConfigError(
                f"conv_channels={list(config.conv_channels)!r} with kernel_size={k} and "
                f"pool={config.pool} shrinks the {H}x{W} images of {config.dataset} below one "
                f"pixel at conv layer {i + 1}: use fewer conv layers, a smaller kernel or pool")
        shapes.append(out)
        shape = pooled_shape(out, config.pool)
    return shapes


def init_net(config, d: int, n_classes: int, device="cpu",
             image_shape: tuple[int, int, int] | None = None,
             feedback: Callable[..., list[Tensor]] | None = None) -> Net:
    """The net of `config` (layers, bias, F scale) from `config.seed`; a conv net
    (`config.model == "conv"`) needs the data's `image_shape` (C, H, W). `feedback`: the rule's
    drawer of its fixed feedback, `(weight_shapes, sizes, generator, scale, draw)` -> matrices
    (`Rule.init_feedback`), drawn after F from the same generator; None: no feedback."""
    g = torch.Generator().manual_seed(config.seed)
    if config.model == "conv":
        if image_shape is None or math.prod(image_shape) != d:
            raise ConfigError(f"model='conv' needs the images' shape (C, H, W) with C H W = {d}; "
                              f"got image_shape={image_shape!r}")
        maps = conv_shapes(config, image_shape)
        k, in_c = config.kernel_size, [image_shape[0], *config.conv_channels]
        flat = math.prod(pooled_shape(maps[-1], config.pool))
        sizes = [d, *(math.prod(s) for s in maps), *config.hidden, n_classes]
        fc = [flat, *config.hidden, n_classes]
        shapes = ([(c, in_c[i], k, k) for i, c in enumerate(config.conv_channels)]
                  + [(fc[l + 1], fc[l]) for l in range(len(fc) - 1)])
        draw, pool, image_shape = torch_default, config.pool, tuple(image_shape)
    else:
        sizes = [d, *config.hidden, n_classes]
        shapes = [(sizes[l + 1], sizes[l]) for l in range(len(sizes) - 1)]
        draw, pool, image_shape = he_uniform, 1, None
    draw = INIT_DRAWS.get(getattr(config, "init", "default"), draw)
    weights = [draw(s, math.prod(s[1:]), g) for s in shapes]
    biases = [torch.zeros(s[0]) for s in shapes] if config.bias else None
    # F is drawn for every rule so a run's F depends only on its seed, whatever the rule.
    factors = []
    if config.f_distribution == "factorised":
        factors, F = init_F_factors(sizes, config.f_scale, g)
    else:
        F = init_F(d, n_classes, config.f_scale, g, config.f_distribution)
    fixed = [] if feedback is None else feedback(shapes, sizes, g, config.feedback_scale, draw)
    return Net(weights, biases, F, fixed, image_shape, pool, factors).to(device)
