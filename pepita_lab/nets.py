"""Fully connected nets as plain tensors: weights, optional biases and the rule's fixed feedback.

Initialisation follows the paper's code: He-uniform `U(+-sqrt(6 / fan_in))` weights and
`F = f_scale * U(+-sqrt(6 / d))` of shape (d, C), both drawn from the run's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .rules import FEEDBACK_KIND


@dataclass
class Net:
    """A bias-free (by default) MLP and the fixed matrices its learning rule needs."""

    weights: list[Tensor]  # weights[l]: (out_l, in_l)
    biases: list[Tensor] | None = None  # biases[l]: (out_l,)
    F: Tensor | None = None  # (d, C), PEPITA's input projection of the error
    feedback: list[Tensor] = field(default_factory=list)  # FA / DFA / DRTP matrices

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [W.shape[0] for W in self.weights]

    def params(self) -> list[Tensor]:
        """The trained tensors, in a fixed order (weights, then biases)."""
        return list(self.weights) + list(self.biases or [])

    def state_dict(self) -> dict:
        return {"weights": self.weights, "biases": self.biases, "F": self.F,
                "feedback": self.feedback}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Net":
        return cls(weights=list(d["weights"]), biases=d["biases"], F=d["F"],
                   feedback=list(d["feedback"]))

    def to(self, device) -> "Net":
        mv = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Net([mv(W) for W in self.weights],
                   None if self.biases is None else [mv(b) for b in self.biases],
                   mv(self.F), [mv(B) for B in self.feedback])


def he_uniform(shape: tuple[int, int], fan_in: int, generator: torch.Generator,
               scale: float = 1.0) -> Tensor:
    bound = scale * math.sqrt(6.0 / fan_in)
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
    kind = FEEDBACK_KIND[rule]
    C = sizes[-1]
    if kind == "chain":
        return [he_uniform((sizes[l + 1], sizes[l]), sizes[l], generator, scale)
                for l in range(1, len(sizes) - 1)]
    if kind == "direct":
        return [he_uniform((C, n), n, generator, scale) for n in sizes[1:-1]]
    return []


def init_net(config, d: int, n_classes: int, device="cpu") -> Net:
    """The net of `config` (hidden widths, bias, rule, F scale) from `config.seed`."""
    g = torch.Generator().manual_seed(config.seed)
    sizes = [d, *config.hidden, n_classes]
    weights = [he_uniform((sizes[l + 1], sizes[l]), sizes[l], g) for l in range(len(sizes) - 1)]
    biases = [torch.zeros(n) for n in sizes[1:]] if config.bias else None
    # F is drawn for every rule so a run's F depends only on its seed, whatever the rule.
    F = init_F(d, n_classes, config.f_scale, g, config.f_distribution)
    feedback = init_feedback(config.rule, sizes, g, config.feedback_scale)
    return Net(weights, biases, F, feedback).to(device)
