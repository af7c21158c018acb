"""The training loop: epochs of index-sliced batches, a rule's factors folded into SGD with
momentum, evaluation on the test set after every epoch. Torch only; no printing beyond the
progress bar. Records (xarray) and the run store build on top of this module.

One loop for a single run and for a population of K runs of one architecture trained at once
(each layer one (K, out, in) tensor, every product batched, so K small nets cost about as much
as one wide one). Members may differ in the config's member fields (`config.MEMBER_FIELDS`:
seed, F scale, learning-rate schedule, modulation sign, ...); each draws exactly what a
separate run with its config draws, so its history equals that run's to float tolerance (the
batched products round differently). A single run is the unbatched case: its tensors carry no
K, and its numbers are those of pepita-lab 0.2.2 bit for bit (tests/test_golden.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .config import MEMBER_FIELDS, ConfigError, RunConfig, field_kind
from .data import TensorData, run_data
from .devices import fast_step, keep_freed_memory, precision, resolve_device, synchronize
from .kernels import maps_layout
from .nets import Net, init_net
from .rules import Factors, get_rule, validate
from .rules.base import DIVERGENCE_LOSS
from .rules.common import bias_update, weight_update

HISTORY_FIELDS = ("epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_time")
# A mean batch loss above DIVERGENCE_LOSS (nats; chance on 10 classes is 2.3) or a non-finite
# one means the run has diverged: its weights are NaN / inf or so large that softmax saturates
# on wrong answers (a rule with a loss of its own sets its limit: `Rule.loss_limit`).
# Steps between two divergence checks, each a host-device sync: every step on the CPU (where a
# sync costs nothing), every 32 steps on a GPU (which then runs ahead of Python); a divergence
# is still reported at the step where it happened.
CHECK_EVERY = {"cpu": 1, "cuda": 32}


def divergence_reason(mean_loss: float, limit: float = DIVERGENCE_LOSS) -> str | None:
    """Why a step's mean batch loss means divergence (non-finite, or above `limit`: the
    rule's `Rule.loss_limit`), or None if it does not."""
    if math.isfinite(mean_loss) and mean_loss <= limit:
        return None
    return f"mean batch loss {mean_loss:.4g} nats (limit {limit:g})"


class Callback(Protocol):
    """Hooks the loop calls for each run (a `Member`: one run of the loop, with its config,
    net, history and the loop's epoch and step); implement any subset (records, live charts,
    checkpoints). A population passes no factors to `on_step_end` (they hold every member)."""

    def on_train_start(self, run: "Member") -> None: ...
    def on_step_end(self, run: "Member", factors: Factors | None) -> None: ...
    def on_epoch_end(self, run: "Member") -> None: ...


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


def draw_dropout_mask(mask: Tensor, keep: float, generator: torch.Generator) -> Tensor:
    """Fill `mask` in place with `1 / keep` (with probability `keep`) or 0, from `generator`.

    A uniform draw compared with `keep`: the same distribution as `bernoulli_(keep)` at about
    half its cost on the CPU (its own random stream, so runs differ bitwise from those made
    with `bernoulli_` before pepita-lab 0.2)."""
    return mask.uniform_(generator=generator).lt_(keep).div_(keep)


def lr_at(config: RunConfig, epoch_index: int) -> float:
    """Learning rate of 0-based epoch `epoch_index`: x gamma after each milestone epoch."""
    n_decays = sum(1 for m in config.lr_milestones if m <= epoch_index)
    return config.lr * config.lr_gamma ** n_decays


def shared_settings(config: RunConfig) -> dict:
    """The settings members of one population must share."""
    return {k: v for k, v in config.identity().items() if k not in MEMBER_FIELDS}


def _stack(nets: list[Net]) -> Net:
    stack = lambda ts: [torch.stack(t) for t in zip(*ts)]  # noqa: E731
    biases = None if nets[0].biases is None else [b[:, None] for b in stack(
        [n.biases for n in nets])]  # (K, 1, out): broadcasts over the batch
    return Net(stack([n.weights for n in nets]), biases, torch.stack([n.F for n in nets]),
               stack([n.feedback for n in nets]) if nets[0].feedback else [],
               F_factors=stack([n.F_factors for n in nets]) if nets[0].F_factors else [])


class Member:
    """One run of the loop: its config, history, random streams and callbacks, and views of
    its net and momentum. Callbacks (traces, the run store) see it as the run."""

    def __init__(self, trainer: "Trainer", k: int, config: RunConfig):
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
        """This run's net (a population member's: views into the population's tensors)."""
        return self.trainer.member_net(self.k)

    def state_dict(self) -> dict:
        """Everything needed to continue this run alone bit for bit (CPU tensors and plain
        values), including the state of callbacks that have one: the checkpoint format."""
        net, t = self.net, self.trainer
        cpu = lambda ts: [v.detach().cpu().clone() for v in ts]  # noqa: E731
        return {"config": self.config.to_dict(),
                "net": {"weights": cpu(net.weights),
                        "biases": None if net.biases is None else cpu(net.biases),
                        "F": net.F.detach().cpu().clone(), "feedback": cpu(net.feedback),
                        "image_shape": net.image_shape, "pool": net.pool,
                        "F_factors": cpu(net.F_factors)},
                "velocity": cpu(t.member_tensor(v, self.k, bias=l >= len(net.weights))
                                for l, v in enumerate(t.velocity)),
                "epoch": self.epoch, "step": self.step,
                "history": {"epoch": list(self.history.epoch), "values": self.history.values},
                "order_gen": self.order_gen.get_state(), "mask_gen": self.mask_gen.get_state(),
                "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks
                              if hasattr(cb, "state_dict")}}

    def emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)


class Trainer:
    """The loop: a run's (or K runs') state, stepped through epochs.

    `Trainer(config)` trains one run; `Trainer([config, ...])` trains the configs as one
    population (one architecture: they may differ only in `MEMBER_FIELDS`; fully connected
    nets and rules that take a leading K). `members` are the runs either way.
    """

    def __init__(self, config: RunConfig | list[RunConfig], data: TensorData | None = None, *,
                 callbacks: tuple = (), progress: bool = True):
        batched = isinstance(config, (list, tuple))
        configs = ([validate(dataclasses.replace(c)) for c in config] if batched
                   else [validate(config)])
        base = configs[0] if configs else None
        if batched:
            _check_population(configs)
        self.K = len(configs) if batched else None  # None: one run, tensors without a K
        self.base, self.progress = base, progress
        self.device = resolve_device(base.device)
        if data is None:
            data = run_data(base, self.device)
        self.data = data.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # reuse the activations' memory: no page faults every step
        self.rule = get_rule(base.rule)
        self.members = [Member(self, k, c) for k, c in enumerate(configs)]
        for run in self.members:  # each run's hooks (a population: every member's)
            run.callbacks = list(callbacks)
        nets = [init_net(c, data.n_features, data.n_classes, self.device if not batched
                         else "cpu", image_shape=data.image_shape) for c in configs]
        self.net: Net = _stack(nets).to(self.device) if batched else nets[0]
        self.velocity = [torch.zeros_like(p) for p in self.net.params()]
        self.state = self.rule.make_state(self.net, self.velocity, data.n_classes)
        self.settings = base if not batched else _member_columns(configs, self.device)
        rule, settings = self.rule, self.settings
        # the paper's update (no weight decay, the paper's momentum): the fused fast path
        self._plain_update = base.momentum_style == "paper" and all(
            c.weight_decay == 0 for c in configs)
        self._factors = fast_step(
            lambda net, x, t, masks, state: rule.factors(net, x, t, masks, settings, state),
            base.precision, base.compile, self.device)
        self.shared_order = not batched or len({c.seed for c in configs}) == 1
        self.eye = torch.eye(data.n_classes, device=self.device)
        self.epoch = 0  # completed epochs
        self.step = 0  # completed steps
        self._all_alive = True  # no run has diverged (checked every step: kept, not counted)
        # a conv layer's mask: its whole map, laid out like the maps (a product of mixed
        # layouts is several times slower), so the draw fills it in that memory order
        lead = () if self.K is None else (self.K,)
        self._masks = [maps_layout(torch.empty(*lead, base.batch_size, *shape,
                                               device=self.device))
                       for shape in nets[0].layer_shapes[:-1]]

    # ------------------------------------------------ one run's view (and resuming it)

    config = property(lambda self: self.members[0].config)
    history = property(lambda self: self.members[0].history)
    divergence = property(lambda self: self.members[0].divergence)
    order_gen = property(lambda self: self.members[0].order_gen)
    mask_gen = property(lambda self: self.members[0].mask_gen)

    @property
    def callbacks(self) -> list:
        return self.members[0].callbacks

    @callbacks.setter
    def callbacks(self, value) -> None:
        self.members[0].callbacks = list(value)

    def state_dict(self) -> dict:
        """The checkpoint of the (first) run: `Member.state_dict`."""
        return self.members[0].state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Continue a single run from `state_dict()` (of a run with the same config)."""
        if self.K is not None:
            raise ConfigError("a population cannot be resumed as a whole: resume each "
                              "member's run folder")
        net = Net.from_state_dict(state["net"]).to(self.device)
        self.net.weights, self.net.biases, self.net.F = net.weights, net.biases, net.F
        self.net.feedback, self.net.F_factors = net.feedback, net.F_factors
        self.velocity = [v.to(self.device) for v in state["velocity"]]
        self.epoch, self.step = state["epoch"], state["step"]
        run = self.members[0]
        run.history = History(list(state["history"]["epoch"]),
                              {k: list(v) for k, v in state["history"]["values"].items()})
        self._refresh_state()
        run.order_gen.set_state(state["order_gen"])
        run.mask_gen.set_state(state["mask_gen"])
        for cb in run.callbacks:
            if type(cb).__name__ in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][type(cb).__name__])

    def member_net(self, k: int) -> Net:
        """Run k's net: the net itself for one run, views into the population's tensors."""
        if self.K is None:
            return self.net
        pop = self.net
        return Net([W[k] for W in pop.weights],
                   None if pop.biases is None else [b[k, 0] for b in pop.biases],
                   pop.F[k], [B[k] for B in pop.feedback],
                   F_factors=[B[k] for B in pop.F_factors])

    def member_tensor(self, t: Tensor, k: int, bias: bool = False) -> Tensor:
        """Run k's slice of a stacked tensor (a population's biases are (K, 1, out))."""
        if self.K is None:
            return t
        return t[k, 0] if bias else t[k]

    # ------------------------------------------------ the loop

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.data.x_train.shape[0] // self.base.batch_size)

    def _refresh_state(self) -> None:
        if self.state is not None:  # exact again: rounding does not build up
            self.state.refresh(self.net, self.velocity)

    def dropout_masks(self, batch: int) -> list[Tensor] | None:
        """This step's dropout masks (already divided by keep_prob), each run's from its own
        stream, or None without dropout."""
        keep = self.base.keep_prob
        if keep >= 1.0:
            return None
        if self.K is None:
            masks = [m[:batch] for m in self._masks]
            for m in masks:  # in place: no per-step allocation
                draw_dropout_mask(m, keep, self.members[0].mask_gen)
            return masks
        masks = [m[:, :batch] for m in self._masks]
        for m in masks:
            for run in self.members:
                draw_dropout_mask(m[run.k], keep, run.mask_gen)
        return masks

    def factors(self, x: Tensor, target: Tensor, masks: list[Tensor] | None) -> Factors:
        """The rule's factors on a batch, with the run's settings and state."""
        return self._factors(self.net, x, target, masks, self.state)

    def train_step(self, x: Tensor, target: Tensor, lr) -> Factors:
        """One step on a batch: this step's dropout masks, then the rule's step (by default
        its factors and the momentum update, `Rule.train_step`). x flat (B, d), or (K, B, d)
        with per-member data order; one-hot target (B, C) or (K, B, C); `lr` a number, or
        (K, 1, 1) per member. Returns the factors."""
        if self.K is not None and not torch.is_tensor(lr):
            lr = torch.full((self.K, 1, 1), float(lr), device=self.device)
        return self.rule.train_step(self, x, target, self.dropout_masks(target.shape[-2]), lr)

    def apply(self, f: Factors, lr) -> None:
        """`v = momentum v + lr dW; W -= v` for every layer (and bias), `dW = delta^T a / B`
        fused into one addmm (a conv layer: its convolutional form, one convolution over the
        batch; a population: one baddbmm, lr / B folded into the deltas). A diverged member
        is frozen where it diverged: zero momentum, zero (not NaN) updates.

        With `weight_decay` λ, dW + λ W in place of dW; with `momentum_style` "torch",
        `v = momentum v + dW; W -= lr v` (torch.optim.SGD)."""
        if not self._plain_update:
            return self._apply_general(f, lr)
        B, m = f.batch, self.base.momentum
        scale = lr / B  # a float, or (K, 1, 1)
        frozen = None if self._all_alive else torch.tensor(
            [not r.alive for r in self.members], device=self.device).view(self.K, 1, 1)

        def scaled(delta):  # a population's
            delta = delta * scale
            return delta if frozen is None else torch.where(frozen, 0.0, delta)

        for l, W in enumerate(self.net.weights):
            v, delta, a = self.velocity[l], f.deltas[l], f.inputs[l]
            if W.dim() == 2:
                v.addmm_(delta.T, a, beta=m, alpha=scale)
            elif W.dim() == 3:  # (K, out, in)
                a = a.expand(self.K, *a.shape[-2:]) if a.dim() == 2 else a
                a = a if frozen is None else torch.where(frozen, 0.0, a)
                delta = scaled(delta)
                v.baddbmm_(delta.mT, a, beta=m)
            else:  # a conv layer
                v.mul_(m).add_(weight_update(delta, a), alpha=scale)
            if self.state is not None:
                self.state.advance(l, delta, a, m, scale if W.dim() == 2 else 1.0)
            W.sub_(v)
        n_w = len(self.net.weights)
        for l, b in enumerate(self.net.biases or []):
            v = self.velocity[n_w + l]
            if self.K is None:
                v.mul_(m).add_(bias_update(f.deltas[l]), alpha=scale)
            else:
                v.mul_(m).add_(scaled(f.deltas[l]).sum(-2, keepdim=True))
            b.sub_(v)

    def _apply_general(self, f: Factors, lr) -> None:
        """`apply` with weight decay or torch's momentum convention: `v = m v + g (dW + λ W);
        W -= o v`, (g, o) = (lr, 1) as the paper, (1, lr) as torch."""
        B, m, wd = f.batch, self.base.momentum, self.settings.weight_decay
        gain, out = (lr, 1.0) if self.base.momentum_style == "paper" else (1.0, lr)
        frozen = None if self._all_alive else torch.tensor(
            [not r.alive for r in self.members], device=self.device).view(self.K, 1, 1)
        n_w = len(self.net.weights)
        for l, p in enumerate(self.net.params()):
            v = self.velocity[l]
            if self.K is None and p.dim() == 2:  # one run's layer: fused, in place
                v.addmm_(f.deltas[l].T, f.inputs[l], beta=m, alpha=gain / B)
                if wd:
                    v.add_(p, alpha=gain * wd)
                p.sub_(v, alpha=out)
                continue
            if l < n_w:
                dW = weight_update(f.deltas[l], f.inputs[l])
            elif self.K is None:
                dW = bias_update(f.deltas[l - n_w])
            else:
                dW = f.deltas[l - n_w].sum(-2, keepdim=True)
            g = (dW / B + wd * p) * gain
            if frozen is not None:
                g = torch.where(frozen.view(-1, *[1] * (g.dim() - 1)), 0.0, g)
            v.mul_(m).add_(g)
            p.sub_(v * out)
        if self.state is not None:
            self.state.refresh(self.net, self.velocity)

    def batch(self, perms: list[Tensor], i: int) -> tuple[Tensor, Tensor]:
        """x (B, d) shared by all runs, or (K, B, d) with per-member data order; labels."""
        B = self.base.batch_size
        idx = perms[0][i:i + B] if self.shared_order else torch.stack(
            [p[i:i + B] for p in perms])  # (B,) or (K, B)
        return self.data.x_train[idx], self.data.y_train[idx]

    @torch.no_grad()
    def train_epoch(self, bar=None, should_stop: Callable[[], bool] | None = None) -> str:
        """One epoch. Returns "ok", or "stopped" if `should_stop` interrupted it, or "diverged"
        when no run is left alive (see `DIVERGENCE_LOSS`; details in each member's
        `divergence`); an unfinished epoch is not counted and the net is then that of the last
        step."""
        data, B, lead = self.data, self.base.batch_size, () if self.K is None else (self.K,)
        N = data.x_train.shape[0]
        lrs = [lr_at(run.config, self.epoch) for run in self.members]
        lr = lrs[0] if self.K is None else torch.tensor(lrs, device=self.device).view(
            self.K, 1, 1)
        perms = [torch.randperm(N, generator=run.order_gen).to(self.device)
                 for run in self.members]
        self._refresh_state()
        loss_sum = torch.zeros(lead, device=self.device)
        correct = torch.zeros(lead, device=self.device, dtype=torch.long)
        has_acc = True  # False for a rule without a softmax output
        mean_losses = torch.empty(self.steps_per_epoch, *lead, device=self.device)
        checked, every = 0, CHECK_EVERY.get(self.device.type, 1)
        start = time.perf_counter()
        for s, i in enumerate(range(0, N, B)):
            if should_stop is not None and should_stop():
                return "stopped"
            x, y = self.batch(perms, i)  # (B, d) or (K, B, d); (B,) or (K, B)
            f = self.train_step(x, self.eye[y], lr)
            yk = y if self.K is None or y.dim() == 2 else y.expand(self.K, -1)
            if f.probs is not None:
                batch_loss = -f.probs.gather(-1, yk[..., None]).clamp_min(1e-30).log().sum(
                    (-2, -1))
                correct += (f.probs.argmax(-1) == yk).sum(-1)
            else:  # the rule's own loss (no softmax output: no training accuracy)
                batch_loss, has_acc = f.loss.sum(-1).float(), False
            loss_sum += batch_loss
            mean_losses[s] = batch_loss / yk.shape[-1]
            self.step += 1
            if s + 1 - checked >= every or i + B >= N:  # a sync
                if self._check_divergence(mean_losses[checked:s + 1], self.step - s + checked):
                    if not any(run.alive for run in self.members):
                        return "diverged"
                checked = s + 1
            for run in self.members:
                if run.callbacks and run.alive:
                    run.emit("on_step_end", f if self.K is None else None)
            if bar is not None:
                bar.update(1)
        test_loss, test_acc = self.evaluate(data.x_test, data.y_test)
        synchronize(self.device)
        self.epoch += 1
        elapsed = time.perf_counter() - start
        for k, run in enumerate(self.members):
            if run.alive:
                acc = correct.view(-1)[k].item() / N if has_acc else math.nan
                run.history.append(self.epoch, epoch_lr=lrs[k],
                                   train_loss=loss_sum.view(-1)[k].item() / N,
                                   train_acc=acc,
                                   test_loss=test_loss[k], test_acc=test_acc[k],
                                   epoch_time=elapsed / len(self.members))
        return "ok"

    def _check_divergence(self, mean_losses: Tensor, first_step: int) -> bool:
        """Mark runs whose mean batch loss diverged at one of the steps `first_step`,
        `first_step + 1`, ... (rows of `mean_losses`, (steps,) or (steps, K)); a population
        freezes them and goes on with the others. Returns whether any run diverged."""
        found = False
        for step, values in enumerate(mean_losses.view(mean_losses.shape[0], -1).tolist(),
                                      start=first_step):
            for run, v in zip(self.members, values):
                reason = divergence_reason(v, self.rule.loss_limit) if run.alive else None
                if reason is None:
                    continue
                found, self._all_alive = True, False
                run.divergence = {"epoch": self.epoch + 1, "step": step, "reason": reason}
                if self.K is not None:
                    for vel in self.velocity:
                        vel[run.k].zero_()
                    if self.state is not None:
                        self.state.freeze(run.k)
        return found

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[list[float], list[float]]:
        """Per run: mean cross-entropy and accuracy of the net (no dropout) on (x, y), in
        chunks. The sums are those of 0.2.2 for each case (one run: `cross_entropy`, summed
        in float32 and divided in float64; a population: per member log-softmax sums divided
        in float32), so results stay bitwise."""
        lead = () if self.K is None else (self.K,)
        loss = torch.zeros(lead, device=self.device)
        correct = torch.zeros(lead, device=self.device, dtype=torch.long)
        chunk = self.base.eval_batch_size
        for i in range(0, x.shape[0], chunk):
            xb, yb = x[i:i + chunk], y[i:i + chunk]
            logits = self.logits(xb)  # (b, C) or (K, b, C)
            if self.K is None:
                loss += torch.nn.functional.cross_entropy(logits, yb, reduction="sum")
            else:
                yb = yb.expand(self.K, -1)
                loss -= torch.log_softmax(logits, -1).gather(-1, yb[..., None]).sum((1, 2))
            correct += (logits.argmax(-1) == yb).sum(-1)
        n = x.shape[0]
        if self.K is None:
            return [loss.item() / n], [correct.item() / n]
        return (loss / n).tolist(), (correct.double() / n).tolist()

    def logits(self, x: Tensor) -> Tensor:
        """The rule's per-class scores without dropout (`Rule.scores`: by default the output
        pre-activations), (B, C) or (K, B, C); x flat (B, d)."""
        with precision(self.base.precision, self.device):
            scores = self.rule.scores(self.net, x, self.settings)
        return scores.float()

    def run(self, should_stop: Callable[[], bool] | None = None) -> str | list[str]:
        """Train until `epochs` epochs are complete (or every run has diverged); returns the
        status ("completed", "stopped" or "diverged") of the run, or of each member.

        A fresh run first records epoch 0: the initial net's test loss and accuracy."""
        if self.epoch == 0 and not self.members[0].history.epoch:
            test_loss, test_acc = self.evaluate(self.data.x_test, self.data.y_test)
            for k, run in enumerate(self.members):
                run.history.append(0, epoch_lr=lr_at(run.config, 0), train_loss=math.nan,
                                   train_acc=math.nan, test_loss=test_loss[k],
                                   test_acc=test_acc[k], epoch_time=0.0)
        for run in self.members:
            run.emit("on_train_start")
        stopped = False
        desc = f"{self.base.rule} " + (self.base.dataset if self.K is None else f"x{self.K}")
        with tqdm(total=(self.base.epochs - self.epoch) * self.steps_per_epoch, unit="step",
                  disable=not self.progress, desc=desc, leave=False) as bar:
            while self.epoch < self.base.epochs and any(r.alive for r in self.members):
                status = self.train_epoch(bar, should_stop)
                if status != "ok":
                    stopped = status == "stopped"
                    break
                alive = [r for r in self.members if r.alive]
                best = max(r.history.last("test_acc") for r in alive)
                bar.set_postfix(epoch=self.epoch, test_acc=f"{best:.4f}")
                for run in alive:
                    run.emit("on_epoch_end")
        statuses = ["diverged" if not r.alive else "stopped" if stopped else "completed"
                    for r in self.members]
        return statuses[0] if self.K is None else statuses


def trains_as_population(config: RunConfig) -> bool:
    """Whether runs like `config` can be members of a population (a fully connected net and
    a rule whose factors take a leading K)."""
    return config.model == "fc" and get_rule(config.rule).populations


def _check_population(configs: list[RunConfig]) -> None:
    """ConfigError unless `configs` can train as one population."""
    if not configs:
        raise ConfigError("configs is empty: expected at least one run")
    shared = shared_settings(configs[0])
    for c in configs[1:]:
        own = shared_settings(c)
        diff = sorted(k for k in set(own) | set(shared) if own.get(k) != shared.get(k))
        if diff:
            raise ConfigError(f"population members differ in {diff}: only "
                              f"{', '.join(MEMBER_FIELDS)} may differ")
    base = configs[0]
    if base.model != "fc":
        raise ConfigError(f"model={base.model!r} is not available for populations: train "
                          "conv nets one at a time (pepita_lab.train)")
    if not get_rule(base.rule).populations:
        raise ConfigError(f"rule={base.rule!r} is not available for populations: train its "
                          "runs one at a time (pepita_lab.train)")


def _member_columns(configs: list[RunConfig], device) -> SimpleNamespace:
    """A population's settings for its rule: the shared config, with each numeric member
    field as a (K, 1, 1) column of the members' values."""
    values = dataclasses.asdict(configs[0])
    K = len(configs)
    for name in MEMBER_FIELDS:
        if field_kind(name) == "float":
            values[name] = torch.tensor([getattr(c, name) for c in configs],
                                        device=device).view(K, 1, 1)
    return SimpleNamespace(**values)
