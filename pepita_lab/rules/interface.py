"""The learning-rule interface and the one registry every part of the lab reads.

A rule is one object: its name, its factor function (on the loop's nets, whose every tensor
carries a leading K of runs, K = 1 for a single run; written with broadcasting products, it takes
one net's tensors too, as the traces' probes do), the fixed feedback it needs and how that is
drawn, its cost (multiply-adds and activation memory of a step), whether it takes conv layers and
populations, the options it reads, and two hooks with defaults: its training step (factors, then
the loop's momentum update; a rule whose feedback learns, or that updates twice a step,
overrides it) and its prediction (the output layer's logits; a rule without a softmax output, as
Forward-Forward, overrides it). A training step gets one declared object, `Step`: everything a
rule may read and do in the loop; a rule never sees the loop itself.
A rule of your own is a `Rule` subclass in your own module, registered by one call
(`pepita_lab.register_rule(MyRule)`, also a class decorator) or by an entry point in the group
`pepita_lab.rules` (docs/adding-a-rule.md); config validation, nets, the training loop, traces,
the cost model, the bench, `reproduce`, sweeps and the explorer find it by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable, ClassVar, ContextManager

import torch
from torch import Tensor

from ..nets import Net, forward_pass
from .factors import Factors

FEEDBACK_KINDS = ("chain", "direct")
DIVERGENCE_LOSS = 20.0  # nats of mean batch cross-entropy: the default `Rule.loss_limit`


@dataclass
class Cost:
    """Work and memory of one training step (a model: see `Rule.step_cost`)."""

    macs: int
    activation_floats: int
    activation_bytes: int


@dataclass(eq=False)
class Step:
    """What a rule's training step may read and do: the one object the loop hands to
    `Rule.train_step` (made once per run; the loop sets `masks`, `lr` and `epoch` before each
    step). A rule reads these fields and nothing else of the loop."""

    net: Net  # the members' net, every tensor (K, ...)
    velocity: list[Tensor]  # the momentum buffers, shaped as `net.params()` (read only)
    settings: object  # the run's config fields; a member field that differs: a (K, 1, 1) column
    # the rule's own `factors(net, x, target, masks, settings, **extra)` on this net and
    # settings, at the run's precision (and compiled, if asked): (x, target, masks, **extra)
    factors: Callable[..., Factors]
    # fold factors into the weights by the loop's momentum update: `fold(f, lr, layers=None,
    # follow=None)`; `layers` only those layers; `follow(l, delta, a, momentum)` sees each
    # fully connected layer's factors as folded (lr / B already in one of them). Returns
    # whether `follow` saw every folded layer; when it did not (weight decay, torch's
    # momentum), `carry` is emptied
    fold: Callable[..., bool]
    redraw: Callable[[int], list[Tensor] | None]  # fresh dropout masks for a batch of B
    streams: list[torch.Generator]  # each member's random stream on the device
    autocast: Callable[[], ContextManager]  # the run's precision for the rule's own products
    # what a rule keeps from step to step (PEPITA: `W_1 F`): the loop holds it and empties it
    # whenever the weights change in a way the rule did not follow (a new epoch, a loaded
    # checkpoint, a diverged member, a `fold` without `follow`)
    carry: dict = field(default_factory=dict)
    masks: list[Tensor] | None = None  # this step's dropout masks (K, B, ...), scaled, or None
    lr: Tensor | float = 0.0  # the members' learning rates, (K, 1, 1)
    epoch: int = 0  # the 0-based epoch being trained


STEP_FIELDS = tuple(f.name for f in fields(Step))  # what a rule may read (tests/test_layers.py)


class Rule:
    """A learning rule behind the interface the training loop calls.

    Subclasses set `name` and `label` and implement `factors`; the rest has defaults. Options
    a rule reads (say `sign`) come from `settings`: the run's `RunConfig`, or for a population
    the shared config with the fields members may differ in as (K, 1, 1) columns.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # for tables and charts, e.g. "PEPITA"
    # fixed random feedback: "chain" (one matrix shaped like each of weights[1:], carrying the
    # error down layer by layer, as FA), "direct" ((C, n_l) per hidden layer, as DFA), or None
    feedback: ClassVar[str | None] = None
    # how the error reaches hidden layers, for the cost model: "chain" (layer by layer, as
    # BP), "direct" (from the output), or None (it does not); by default as `feedback`
    error_path: ClassVar[str | None] = None
    conv: ClassVar[bool] = True  # takes conv layers
    populations: ClassVar[bool] = True  # factors work on a leading K of nets
    # `pepita-lab reproduce table1`: the models whose table has this rule, whether it runs the
    # baselines' seeds (--baseline-seeds) or the main ones, and settings that differ from the
    # paper's preset (say why in the rule's module)
    table1_models: ClassVar[tuple[str, ...]] = ()
    baseline: ClassVar[bool] = True
    paper_overrides: ClassVar[dict] = {}
    # the training settings the rule is usually trained with where they differ from the
    # paper's preset for the dataset (lr, batch_size, ...: `rules.defaults.TRAINING_FIELDS`);
    # they apply wherever the rule is chosen and the user has not set them (rules/defaults.py)
    trained_with: ClassVar[dict] = {}
    # the config fields marked `rule_option` that this rule reads (any other stays at its
    # default: `rules.validate` refuses a value the rule would ignore)
    options: ClassVar[tuple[str, ...]] = ()
    # a mean batch loss above this (or not finite) stops the run as diverged (the loop's
    # DIVERGENCE_LOSS for the cross-entropy of a softmax output; a rule with its own loss
    # sets its own)
    loss_limit: ClassVar[float] = DIVERGENCE_LOSS
    reads_F: ClassVar[bool] = False  # its updates use the net's F (traces of F's alignment)

    def factors(self, net, x: Tensor, target: Tensor, masks: list[Tensor] | None,
                settings) -> Factors:
        """Per-layer factors `(delta_l, a_l)` of the batch-mean update `dW_l = delta_l^T a_l / B`
        and the clean pass's softmax output, each (K, B, ...) for the loop's net (weights
        (K, out, in)). x (B, d) flat as the data hold it, shared by the members (a conv net
        views it with `net.shape_input`), or (K, B, d) with per-member data order; target
        one-hot (B, C) or (K, B, C); masks (K, B, ...) per hidden layer, already scaled, or
        None."""
        raise NotImplementedError(f"rule {self.name!r} does not define factors()")

    def refusal(self, cfg) -> str | None:
        """Why this rule cannot train `cfg` (a combination of its options it does not take),
        in one line, or None (`rules.validate` refuses it)."""
        return None

    def train_step(self, step: Step, x: Tensor, target: Tensor) -> Factors:
        """One training step on a batch (x flat (B, d) shared by the members, or (K, B, d);
        one-hot target (B, C) or (K, B, C)): the factors, folded into the weights by the loop's
        momentum update. Override for feedback that learns (after the update), several
        updates a step, or inputs the rule makes itself (negative data); `step` (`Step`) is
        everything the rule may read and do."""
        f = step.factors(x, target, step.masks)
        step.fold(f, step.lr)
        return f

    def scores(self, net, x: Tensor, settings) -> Tensor:
        """Per-class scores of the trained net on flat inputs x (B, d) or a population's,
        no dropout: what evaluation takes the argmax and the cross-entropy of. Default: the
        output layer's logits."""
        return forward_pass(net.weights, net.shape_input(x), biases=net.biases, pool=net.pool,
                            softmax=False, normalize=getattr(settings, "normalize", False))[0][-1]

    # ---------------------------------------------------------------- feedback

    def feedback_shapes(self, weight_shapes: list[tuple[int, ...]],
                        sizes: list[int]) -> list[tuple[int, ...]]:
        """Shapes of the fixed feedback tensors of a net with `weight_shapes` and `sizes` units
        per layer (input, each layer's output, classes)."""
        if self.feedback == "chain":
            return [tuple(s) for s in weight_shapes[1:]]
        if self.feedback == "direct":
            return [(sizes[-1], n) for n in sizes[1:-1]]
        return []

    def init_feedback(self, weight_shapes, sizes, generator, scale: float,
                      draw: Callable) -> list[Tensor]:
        """The fixed feedback, drawn like the forward weights they stand in for (`draw`: the
        net's init over the forward fan-in) times `scale`."""
        fan_in = (lambda s: math.prod(s[1:])) if self.feedback == "chain" else (lambda s: s[1])
        return [draw(s, fan_in(s), generator, scale)
                for s in self.feedback_shapes(weight_shapes, sizes)]

    # ---------------------------------------------------------------- cost model

    @property
    def _error_path(self) -> str | None:
        return self.error_path or self.feedback

    def step_cost(self, sizes: list[int], batch_size: int, **options) -> Cost:
        """Multiply-adds and activation floats of one step on a fully connected net with
        `sizes = [d, n_1, ..., C]` units. Default: one forward pass and the weight updates
        (B P each, P = sum_l n_l n_{l-1}), plus the error's way down by `error_path` ("chain":
        B sum_{l>=2} n_l n_{l-1}; "direct": B C sum_hidden n_l); every h_1 .. h_L and one
        error layer kept (the batch x is the loop's, made before the step: not counted, as
        the measurement does not count it, `bench.memory`)."""
        B, pairs = int(batch_size), [a * b for a, b in zip(sizes, sizes[1:])]
        down = {"chain": B * sum(pairs[1:]),
                "direct": B * sizes[-1] * sum(sizes[1:-1])}.get(self._error_path, 0)
        floats = B * sum(sizes[1:]) + B * max(sizes[1:])
        return Cost(2 * B * sum(pairs) + down, floats, 4 * floats)

    def conv_step_cost(self, layer_macs: list[int], units: list[int], d: int, n_classes: int,
                       batch_size: int, **options) -> Cost:
        """`step_cost` for a conv net: `layer_macs[l]` multiply-adds per sample of layer l's
        forward product (its weight update and sending an error through it cost as much),
        `units[l]` its output size (a conv layer's map before pooling). Default: as
        `step_cost`, with the error's way down by `error_path`; one pass's activations and
        one error layer kept."""
        B, P = int(batch_size), sum(layer_macs)
        down = {"chain": sum(layer_macs[1:]),
                "direct": n_classes * sum(units[:-1])}.get(self._error_path, 0)
        floats = B * (sum(units) + max(units))
        return Cost(B * (2 * P + down), floats, 4 * floats)


_REGISTRY: dict[str, Rule] = {}
ENTRY_POINT_GROUP = "pepita_lab.rules"
_entry_points_loaded = False


def register(rule):
    """Make `rule` known by its name everywhere: `pl.train`, the CLI's `--rule`, sweeps and
    the explorer (replacing a rule of the same name). `rule`: a `Rule` instance, or a `Rule`
    subclass, which is instantiated and returned, so `register` also works as a class
    decorator (`@pepita_lab.register_rule`). Called from your own module; Dask workers find
    the rule by importing that module (a sweep imports it on every worker), or through an
    entry point in the group `pepita_lab.rules` (docs/adding-a-rule.md)."""
    if isinstance(rule, type) and issubclass(rule, Rule):
        register(rule())
        return rule
    if not isinstance(rule, Rule) or not rule.name:
        raise TypeError(f"{rule!r} is not a Rule with a name")
    if rule.feedback not in (None, *FEEDBACK_KINDS):
        raise ValueError(f"rule {rule.name!r}: feedback={rule.feedback!r}: expected None or "
                         f"one of {', '.join(FEEDBACK_KINDS)}")
    _REGISTRY[rule.name] = rule
    return rule


def load_entry_points() -> None:
    """Register the rules that installed packages declare in the entry-point group
    `pepita_lab.rules` (`name = "module:RuleClass"`; a `Rule` instance, or a module that
    registers its rules when imported, also works), once, when the registry is first
    consulted. A broken entry point is a warning naming it, not the end of the lab."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True  # first: a rule's module may consult the registry
    import warnings
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, Rule) or (isinstance(obj, type) and issubclass(obj, Rule)):
                register(obj)
        except Exception as err:  # noqa: BLE001 - one bad package must not stop the lab
            warnings.warn(f"pepita_lab.rules entry point {ep.name!r} ({ep.value}) could not "
                          f"be loaded: {type(err).__name__}: {err}", stacklevel=2)


def unregister(name: str) -> None:
    """Forget the rule `name` (tests that register a rule of their own)."""
    _REGISTRY.pop(name, None)


def get_rule(name: str) -> Rule:
    """The registered rule `name`; ValueError listing the known ones otherwise."""
    load_entry_points()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"rule={name!r} is unknown; allowed: {', '.join(_REGISTRY)}") from None


def rule_names() -> tuple[str, ...]:
    """Every registered rule, in registration order (the built-in ones first)."""
    load_entry_points()
    return tuple(_REGISTRY)
