"""Nets as plain tensors: weights, optional biases and the rule's fixed feedback.

Fully connected nets follow the paper's code: He-uniform `U(+-sqrt(6 / fan_in))` weights. Conv
nets (conv layers, then fully connected ones) follow the authors' conv code, which keeps
PyTorch's default init: `U(+-1 / sqrt(fan_in))` for every layer (kaiming_uniform with
a = sqrt(5)), fan_in = in_c k k for a conv layer. `F = f_scale * U(+-sqrt(6 / d))` of shape
(d, C) either way. Everything is drawn from the run's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .config import ConfigError
from .rules import FEEDBACK_KIND
from .rules.common import conv_output_shape, is_conv, layer_shapes, pooled_shape


@dataclass
class Net:
    """A bias-free (by default) net and the fixed matrices its learning rule needs. Conv nets
    take flat inputs (B, C H W) like the data hold them and view them as `image_shape`."""

    weights: list[Tensor]  # weights[l]: (out_l, in_l), or (out_c, in_c, k, k) for conv layers
    biases: list[Tensor] | None = None  # biases[l]: (out_l,)
    F: Tensor | None = None  # (d, C), PEPITA's input projection of the error
    feedback: list[Tensor] = field(default_factory=list)  # FA / DFA / DRTP matrices
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) input of a conv net
    pool: int = 1  # max-pool size after each conv layer

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
        d = math.prod(self.image_shape) if self.is_conv else self.weights[0].shape[1]
        return [d] + [math.prod(s) for s in self.layer_shapes]

    def shape_input(self, x: Tensor) -> Tensor:
        """x (B, d) as the first layer takes it: (B, C, H, W) images for a conv net."""
        return x.view(x.shape[0], *self.image_shape) if self.is_conv else x

    def params(self) -> list[Tensor]:
        """The trained tensors, in a fixed order (weights, then biases)."""
        return list(self.weights) + list(self.biases or [])

    def state_dict(self) -> dict:
        return {"weights": self.weights, "biases": self.biases, "F": self.F,
                "feedback": self.feedback, "image_shape": self.image_shape, "pool": self.pool}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Net":
        shape = d.get("image_shape")  # absent from checkpoints of fully connected nets before conv
        return cls(weights=list(d["weights"]), biases=d["biases"], F=d["F"],
                   feedback=list(d["feedback"]), image_shape=None if shape is None else
                   tuple(shape), pool=d.get("pool", 1))

    def to(self, device) -> "Net":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Net([mv(W) for W in self.weights],
                   None if self.biases is None else [mv(b) for b in self.biases],
                   mv(self.F), [mv(B) for B in self.feedback], self.image_shape, self.pool)


def he_uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator,
               scale: float = 1.0) -> Tensor:
    bound = scale * math.sqrt(6.0 / fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def torch_default(shape: tuple[int, ...], fan_in: int, generator: torch.Generator,
                  scale: float = 1.0) -> Tensor:
    """PyTorch's default for Linear and Conv2d weights: `U(+-1 / sqrt(fan_in))`."""
    bound = scale / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def init_F(d: int, n_classes: int, f_scale: float, generator: torch.Generator,
           distribution: str = "uniform") -> Tensor:
    """`F = f_scale * U(+-sqrt(6/d))`, shape (d, C); Gaussian: same std (f_scale * sqrt(2/d))."""
    if distribution == "gaussian":
        return torch.randn((d, n_classes), generator=generator) * f_scale * math.sqrt(2.0 / d)
    return he_uniform((d, n_classes), d, generator, f_scale)


def init_feedback(rule: str, sizes: list[int], generator: torch.Generator,
                  scale: float = 1.0) -> list[Tensor]:
    """Fixed random feedback, drawn like the forward weights they stand in for (He-uniform over
    the forward fan-in, times `scale`): FA gets matrices shaped like `weights[1:]`, DFA / DRTP one
    (C, n_l) per hidden layer (so with one hidden layer, DFA and FA coincide)."""
    shapes = [(sizes[l + 1], sizes[l]) for l in range(len(sizes) - 1)]
    return _feedback(rule, shapes, sizes, generator, scale, he_uniform)


def _feedback(rule, weight_shapes, sizes, generator, scale, draw) -> list[Tensor]:
    """FA: one tensor shaped like each of `weight_shapes[1:]`; DFA / DRTP: (C, n_l) for each
    hidden layer of `sizes` units; drawn by `draw` over the forward fan-in."""
    kind = FEEDBACK_KIND[rule]
    if kind == "chain":
        return [draw(s, math.prod(s[1:]), generator, scale) for s in weight_shapes[1:]]
    if kind == "direct":
        return [draw((sizes[-1], n), n, generator, scale) for n in sizes[1:-1]]
    return []


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
             image_shape: tuple[int, int, int] | None = None) -> Net:
    """The net of `config` (layers, bias, rule, F scale) from `config.seed`; a conv net
    (`config.model == "conv"`) needs the data's `image_shape` (C, H, W)."""
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
    weights = [draw(s, math.prod(s[1:]), g) for s in shapes]
    biases = [torch.zeros(s[0]) for s in shapes] if config.bias else None
    # F is drawn for every rule so a run's F depends only on its seed, whatever the rule.
    F = init_F(d, n_classes, config.f_scale, g, config.f_distribution)
    feedback = _feedback(config.rule, shapes, sizes, g, config.feedback_scale, draw)
    return Net(weights, biases, F, feedback, image_shape, pool).to(device)
