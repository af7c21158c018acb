"""The runs of the training loop: every tensor of the loop carries a leading K of members (K = 1
for a single run), and this module is the thin layer between that shape and one run's.

Stacking: `stack_nets` builds the loop's net from the members' nets (each weight (K, out, in)
or (K, out_c, in_c, k, k), a fully connected layer's bias (K, 1, out) so that it broadcasts
over the batch, a conv layer's (K, out_c)); `member_net` and `member_velocity` give member k's
views back, shaped as one net's (what traces, the run store and `Run.net` see). A `Member` is
one run: its config, history, random streams, callbacks and checkpoint (`state_dict`, per run
and without a K, the format pepita-lab 0.4.0 wrote; `load_state_dict` stacks it back).
Population checks and the members' settings (`member_columns`) live here too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Protocol

import torch
from torch import Tensor

from .config import MEMBER_FIELDS, ConfigError, RunConfig, field_kind
from .nets import Net
from .rules import Factors, get_rule
from .rules.validation import check_population, shared_settings  # noqa: F401 (re-exported)

HISTORY_FIELDS = ("epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_time")


@dataclass
class History:
    """Per-epoch scalars (plain floats); `epoch` counts completed epochs (0: the initial net)."""

    epoch: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(
        default_factory=lambda: {k: [] for k in HISTORY_FIELDS})

    def append(self, epoch: int, **values: float) -> None:
        self.epoch.append(epoch)
        for k in HISTORY_FIELDS:
            self.values[k].append(float(values[k]))

    def last(self, key: str) -> float:
        return self.values[key][-1]


# ---------------------------------------------------------------- stacking and views


def stack_nets(nets: list[Net]) -> Net:
    """The members' nets as one net whose every tensor carries a leading K."""
    stack = lambda ts: [torch.stack(t) for t in zip(*ts)]  # noqa: E731
    first = nets[0]
    biases = None
    if first.biases is not None:
        biases = [torch.stack(bs) if W.dim() == 4 else torch.stack(bs)[:, None]
                  for W, bs in zip(first.weights, zip(*(n.biases for n in nets)))]
    return Net(stack([n.weights for n in nets]), biases,
               None if first.F is None else torch.stack([n.F for n in nets]),
               stack([n.feedback for n in nets]) if first.feedback else [],
               first.image_shape, first.pool,
               stack([n.F_factors for n in nets]) if first.F_factors else [])


def member_net(net: Net, k: int) -> Net:
    """Member k's net: views into the stacked net's tensors, shaped as one net's."""
    return Net([W[k] for W in net.weights],
               None if net.biases is None else [b[k].view(-1) for b in net.biases],
               None if net.F is None else net.F[k], [B[k] for B in net.feedback],
               net.image_shape, net.pool, [B[k] for B in net.F_factors])


def member_velocity(velocity: list[Tensor], net: Net, k: int) -> list[Tensor]:
    """Member k's momentum buffers (weights', then biases'), shaped as its parameters."""
    n_w = len(net.weights)
    return [v[k] if l < n_w else v[k].view(-1) for l, v in enumerate(velocity)]


# ---------------------------------------------------------------- one run of the loop


class Callback(Protocol):
    """Hooks the loop calls for each run (a `Member`: one run of the loop, with its config,
    net, history and the loop's epoch and step); implement any subset (records, live charts,
    checkpoints). `on_step_end` gets the step's factors, which hold every member's (K, B, ...);
    `on_diverged` is called once, after the epoch in which the run diverged (the others of a
    population go on)."""

    def on_train_start(self, run: "Member") -> None: ...
    def on_step_end(self, run: "Member", factors: Factors | None) -> None: ...
    def on_epoch_end(self, run: "Member") -> None: ...
    def on_diverged(self, run: "Member") -> None: ...



class Member:
    """One run of the loop: its config, history, random streams and callbacks, and views of
    its net and momentum. Callbacks (traces, the run store) see it as the run."""

    def __init__(self, trainer, k: int, config: RunConfig):
        self.trainer, self.k, self.config = trainer, k, config
        self.rule = get_rule(config.rule)
        self.history = History()
        self.divergence: dict | None = None
        self.callbacks: list = []
        # Data order on the CPU (bitwise repeatable everywhere); dropout masks on the device.
        self.order_gen = torch.Generator().manual_seed(config.seed + 1)
        self.mask_gen = torch.Generator(device=trainer.device).manual_seed(config.seed + 2)

    device = property(lambda self: self.trainer.device)
    data = property(lambda self: self.trainer.data)
    eye = property(lambda self: self.trainer.eye)
    epoch = property(lambda self: self.trainer.epoch)
    step = property(lambda self: self.trainer.step)
    steps_per_epoch = property(lambda self: self.trainer.steps_per_epoch)

    @property
    def alive(self) -> bool:
        return self.divergence is None

    @property
    def net(self) -> Net:
        """This run's net: views into the loop's stacked tensors, shaped as one net's."""
        return member_net(self.trainer.net, self.k)

    def state_dict(self) -> dict:
        """Everything needed to continue this run alone bit for bit (CPU tensors and plain
        values, one net's shapes), including the state of callbacks that have one: the
        checkpoint format."""
        net, t = self.net, self.trainer
        cpu = lambda ts: [v.detach().cpu().clone() for v in ts]  # noqa: E731
        return {"config": self.config.to_dict(),
                "net": {"weights": cpu(net.weights),
                        "biases": None if net.biases is None else cpu(net.biases),
                        "F": net.F.detach().cpu().clone(), "feedback": cpu(net.feedback),
                        "image_shape": net.image_shape, "pool": net.pool,
                        "F_factors": cpu(net.F_factors)},
                "velocity": cpu(member_velocity(t.velocity, t.net, self.k)),
                "epoch": self.epoch, "step": self.step,
                "history": {"epoch": list(self.history.epoch), "values": self.history.values},
                "order_gen": self.order_gen.get_state(), "mask_gen": self.mask_gen.get_state(),
                "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks
                              if hasattr(cb, "state_dict")}}

    def load_state_dict(self, state: dict) -> None:
        """Continue this run from its `state_dict()`: a K = 1 loop's only member (the loop
        stacks the checkpoint's one-net tensors back to K = 1)."""
        t = self.trainer
        if t.K != 1:
            raise ConfigError("a population cannot be resumed as a whole: resume each "
                              "member's run folder")
        net = stack_nets([Net.from_state_dict(state["net"])]).to(t.device)
        t.net.weights, t.net.biases, t.net.F = net.weights, net.biases, net.F
        t.net.feedback, t.net.F_factors = net.feedback, net.F_factors
        t.velocity = [v.to(t.device).reshape(p.shape)
                      for v, p in zip(state["velocity"], t.net.params())]
        t.epoch, t.step = state["epoch"], state["step"]
        self.history = History(list(state["history"]["epoch"]),
                               {k: list(v) for k, v in state["history"]["values"].items()})
        self.order_gen.set_state(state["order_gen"])
        self.mask_gen.set_state(state["mask_gen"])
        for cb in self.callbacks:
            if type(cb).__name__ in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][type(cb).__name__])

    def emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)


# ---------------------------------------------------------------- populations


def trains_as_population(config: RunConfig) -> bool:
    """Whether runs like `config` can be members of a population (a fully connected net and
    a rule whose factors take a leading K)."""
    return config.model == "fc" and get_rule(config.rule).populations


def member_columns(configs: list[RunConfig], device) -> SimpleNamespace:
    """The members' settings for their rule: the shared config, with each numeric member
    field whose value differs between members as a (K, 1, 1) column of their values (one all
    members share stays a number: a single run's settings are its config's values)."""
    values = dataclasses.asdict(configs[0])
    K = len(configs)
    for name in MEMBER_FIELDS:
        column = [getattr(c, name) for c in configs]
        if field_kind(name) == "float" and len(set(column)) > 1:
            values[name] = torch.tensor(column, device=device).view(K, 1, 1)
    return SimpleNamespace(**values)
