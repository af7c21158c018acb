"""The training loop: epochs of index-sliced batches, a rule's factors folded into SGD with
momentum, evaluation on the test set after every epoch. Torch only; no printing beyond the
progress bar. Records (xarray) and the run store build on top of this module.

A run is a population of one: the loop trains K runs of one architecture at once, and every
tensor it holds carries a leading K (each layer one (K, out, in) tensor, every product batched,
so K small nets cost about as much as one wide one; K = 1 for a single run). Members may differ
in the config's member fields (`config.MEMBER_FIELDS`: seed, F scale, learning-rate schedule,
modulation sign, ...); each draws exactly what a separate run with its config draws, so its
history equals that run's to float tolerance (tests/test_population.py, tests/test_golden.py).
One run's view of the loop (its net, momentum and checkpoint, shaped as one net's) is
`members.Member`.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .config import RunConfig
from .data import as_tensor_data, run_data
from .devices import fast_step, keep_freed_memory, precision, resolve_device, synchronize
from .kernels import draw_dropout_mask, maps_layout
from .momentum import general_update, momentum_update
from .members import (HISTORY_FIELDS, Callback, History, Member, check_population,
                      member_columns, shared_settings, stack_nets, trains_as_population)
from .nets import Net, init_net
from .rules import Factors, Step, get_rule
from .rules.interface import DIVERGENCE_LOSS

__all__ = ["Trainer", "Member", "History", "HISTORY_FIELDS", "Callback", "lr_at",
           "divergence_reason", "draw_dropout_mask", "shared_settings", "trains_as_population",
           "check_population", "CHECK_EVERY"]
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


def _float(t: Tensor | None) -> Tensor | None:
    return t.float() if t is not None and t.dtype == torch.bfloat16 else t


_no_context = nullcontext()


def lr_at(config: RunConfig, epoch_index: int) -> float:
    """Learning rate of 0-based epoch `epoch_index`: x gamma after each milestone epoch."""
    n_decays = sum(1 for m in config.lr_milestones if m <= epoch_index)
    return config.lr * config.lr_gamma ** n_decays


class Trainer:
    """The loop: K runs' state (K = 1 for a single run), stepped through epochs.

    `Trainer(config)` trains one run; `Trainer([config, ...])` trains the configs as one
    population (one architecture: they may differ only in `MEMBER_FIELDS`; fully connected
    nets and rules that take a leading K). `members` are the runs either way. The configs
    train as they are: `rules.resolve`, the door into training, has made them what trains
    (`pepita_lab.train` and every entry point call it); `data` is converted here
    (`data.as_tensor_data`), and `preflight`, if given, is called on the configs before
    anything is loaded (the API's memory check).
    """

    def __init__(self, config: RunConfig | list[RunConfig], data=None, *,
                 callbacks: tuple = (), progress: bool = True,
                 preflight: Callable[[list[RunConfig]], None] | None = None):
        batched = isinstance(config, (list, tuple))
        configs = list(config) if batched else [config]
        base = configs[0]
        if preflight is not None:
            preflight(configs)
        self.K, self.base, self.progress = len(configs), base, progress
        self._population = batched  # `run` returns a status per member, else the run's
        self.device = resolve_device(base.device)
        data = run_data(base, self.device) if data is None else as_tensor_data(data, base)
        self.data = data.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # reuse the activations' memory: no page faults every step
        self.rule = get_rule(base.rule)
        self.members = [Member(self, k, c) for k, c in enumerate(configs)]
        for run in self.members:  # each run's hooks (a population: every member's)
            run.callbacks = list(callbacks)
        nets = [init_net(c, data.n_features, data.n_classes, image_shape=data.image_shape,
                         feedback=self.rule.init_feedback) for c in configs]
        self.net: Net = stack_nets(nets).to(self.device)  # every tensor (K, ...)
        self.velocity = [torch.zeros_like(p) for p in self.net.params()]
        self.settings = member_columns(configs, self.device)
        rule, settings = self.rule, self.settings
        # the paper's update (no weight decay, the paper's momentum): the fused fast path
        self._plain_update = base.momentum_style == "paper" and all(
            c.weight_decay == 0 for c in configs)
        self._factors = fast_step(
            lambda net, x, t, masks, **extra: rule.factors(net, x, t, masks, settings, **extra),
            base.precision, base.compile, self.device)
        # what the rule's step sees of the loop (`rules.Step`); net, velocity, masks, lr and
        # epoch are set before each step
        self.view = Step(net=self.net, velocity=self.velocity, settings=settings,
                         factors=lambda x, t, masks, **extra: self._factors(
                             self.net, x, t, masks, **extra),
                         fold=self.apply, redraw=self.dropout_masks,
                         streams=[run.mask_gen for run in self.members],
                         autocast=lambda: precision(base.precision, self.device))
        self._bf16 = base.precision == "bf16"
        self.shared_order = len({c.seed for c in configs}) == 1
        self.eye = torch.eye(data.n_classes, device=self.device)
        self.epoch = 0  # completed epochs
        self.step = 0  # completed steps
        self._all_alive = True  # no run has diverged (checked every step: kept, not counted)
        # a conv layer's mask: its whole map, laid out like the maps (a product of mixed
        # layouts is several times slower), so the draw fills it in that memory order
        self._masks = [maps_layout(torch.empty(self.K, base.batch_size, *shape,
                                               device=self.device))
                       for shape in self.net.layer_shapes[:-1]]
        self._member_masks = [list(m) for m in self._masks]  # m[k], each member's

    # ------------------------------------------------ the first run's view (and resuming it)

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
        """Continue a single run from `state_dict()` (of a run with the same config; one
        net's tensors, stacked here to K = 1)."""
        self.members[0].load_state_dict(state)
        self.view.carry.clear()  # the rule's own state follows the loaded weights

    # ------------------------------------------------ the loop

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.data.x_train.shape[0] // self.base.batch_size)

    def dropout_masks(self, batch: int) -> list[Tensor] | None:
        """This step's dropout masks (already divided by keep_prob), (K, B, ...), each run's
        from its own stream, or None without dropout."""
        keep = self.base.keep_prob
        if keep >= 1.0:
            return None
        if batch == self.base.batch_size:  # the members' views, made once
            masks, views = self._masks, self._member_masks
        else:  # the epoch's last, smaller batch
            masks = [m[:, :batch] for m in self._masks]
            views = [list(m) for m in masks]
        for m in views:  # in place: no per-step allocation
            for run, view in zip(self.members, m):
                draw_dropout_mask(view, keep, run.mask_gen)
        return masks

    def factors(self, x: Tensor, target: Tensor, masks: list[Tensor] | None) -> Factors:
        """The rule's factors on a batch, with the runs' settings."""
        return self._factors(self.net, x, target, masks)

    def lr_column(self) -> Tensor:
        """The members' learning rates this epoch (`lr_at`) as the (K, 1, 1) column the loop
        passes to `train_step`: every member's update is then computed alike, whatever the
        others' (a point of a sweep packed alone or with others: the same numbers, bit for
        bit)."""
        return torch.tensor([lr_at(run.config, self.epoch) for run in self.members],
                            device=self.device).view(self.K, 1, 1)

    def train_step(self, x: Tensor, target: Tensor, lr) -> Factors:
        """One step on a batch: this step's dropout masks, then the rule's step (by default
        its factors and the momentum update, `Rule.train_step`). x flat (B, d) shared by the
        members, or (K, B, d) with per-member data order; one-hot target (B, C) or (K, B, C);
        `lr` a number, or (K, 1, 1) per member. Returns the factors."""
        view = self.view
        view.net, view.velocity, view.lr, view.epoch = self.net, self.velocity, lr, self.epoch
        view.masks = self.dropout_masks(target.shape[-2])
        return self.rule.train_step(view, x, target)

    def _frozen(self) -> Tensor | None:
        """(K,) True for the members that diverged, or None while all are alive."""
        if self._all_alive:
            return None
        return torch.tensor([not r.alive for r in self.members], device=self.device)

    def apply(self, f: Factors, lr, layers: range | None = None, follow=None) -> bool:
        """Fold the factors `f` into every member's weights (and biases) by SGD with momentum,
        at learning rate `lr` (a number, or (K, 1, 1) per member): `momentum.momentum_update`,
        or `momentum.general_update` with weight decay or torch's momentum convention.
        Diverged members stay frozen. `layers`: only these layers (and their biases), for a
        step that updates a layer as soon as its factors exist (the others' factors may then
        be None). `follow`: as `momentum.momentum_update`'s; returns whether it saw the
        update, else the rule's carried state is emptied (`Step.fold`)."""
        if self._bf16:  # a rule's own products may come in bf16; the update stays float32
            f = Factors([_float(d) for d in f.deltas], [_float(a) for a in f.inputs], f.probs,
                        f.loss, f.n)
        with torch.autocast(self.device.type, enabled=False) if self._bf16 else _no_context:
            if self._plain_update:
                momentum_update(self.net, self.velocity, f, lr, self.base.momentum,
                                frozen=self._frozen(), layers=layers, follow=follow)
                if follow is not None:
                    return True
            else:
                general_update(self.net, self.velocity, f, lr, self.base.momentum,
                               weight_decay=self.settings.weight_decay,
                               style=self.base.momentum_style, frozen=self._frozen(),
                               layers=layers)
        self.view.carry.clear()
        return False

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
        data, B, K = self.data, self.base.batch_size, self.K
        N = data.x_train.shape[0]
        lrs = [lr_at(run.config, self.epoch) for run in self.members]
        lr = self.lr_column()
        perms = [torch.randperm(N, generator=run.order_gen).to(self.device)
                 for run in self.members]
        self.view.carry.clear()  # a rule's own state recomputed: rounding does not build up
        loss_sum = torch.zeros(K, device=self.device)
        correct = torch.zeros(K, device=self.device, dtype=torch.long)
        has_acc = True  # False for a rule without a softmax output
        mean_losses = torch.empty(self.steps_per_epoch, K, device=self.device)
        checked, every = 0, CHECK_EVERY.get(self.device.type, 1)
        start = time.perf_counter()
        for s, i in enumerate(range(0, N, B)):
            if should_stop is not None and should_stop():
                return "stopped"
            x, y = self.batch(perms, i)  # (B, d) or (K, B, d); (B,) or (K, B)
            f = self.train_step(x, self.eye[y], lr)
            yk = y.expand(K, -1)
            if f.probs is not None:  # (K, B, C)
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
                    run.emit("on_step_end", f)
            if bar is not None:
                bar.update(1)
        test_loss, test_acc = self.evaluate(data.x_test, data.y_test)
        synchronize(self.device)
        self.epoch += 1
        elapsed = time.perf_counter() - start
        loss_sum, correct = loss_sum.tolist(), correct.tolist()
        for k, run in enumerate(self.members):
            if run.alive:
                run.history.append(self.epoch, epoch_lr=lrs[k], train_loss=loss_sum[k] / N,
                                   train_acc=correct[k] / N if has_acc else math.nan,
                                   test_loss=test_loss[k], test_acc=test_acc[k],
                                   epoch_time=elapsed / K)
        return "ok"

    def _check_divergence(self, mean_losses: Tensor, first_step: int) -> bool:
        """Mark runs whose mean batch loss diverged at one of the steps `first_step`,
        `first_step + 1`, ... (rows of `mean_losses`, (steps, K)), and freeze them: the
        others go on. Returns whether any run diverged."""
        found = False
        for step, values in enumerate(mean_losses.tolist(), start=first_step):
            for run, v in zip(self.members, values):
                reason = divergence_reason(v, self.rule.loss_limit) if run.alive else None
                if reason is None:
                    continue
                found, self._all_alive = True, False
                run.divergence = {"epoch": self.epoch + 1, "step": step, "reason": reason}
                for vel in self.velocity:
                    vel[run.k].zero_()
                self.view.carry.clear()
        return found

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[list[float], list[float]]:
        """Per run: mean cross-entropy and accuracy of the net (no dropout) on (x, y), in
        chunks (per member log-softmax sums, divided in float32)."""
        loss = torch.zeros(self.K, device=self.device)
        correct = torch.zeros(self.K, device=self.device, dtype=torch.long)
        chunk = self.base.eval_batch_size
        for i in range(0, x.shape[0], chunk):
            xb, yb = x[i:i + chunk], y[i:i + chunk].expand(self.K, -1)
            logits = self.logits(xb)  # (K, b, C)
            loss -= torch.log_softmax(logits, -1).gather(-1, yb[..., None]).sum((1, 2))
            correct += (logits.argmax(-1) == yb).sum(-1)
        n = x.shape[0]
        return (loss / n).tolist(), (correct.double() / n).tolist()

    def logits(self, x: Tensor) -> Tensor:
        """The rule's per-class scores without dropout (`Rule.scores`: by default the output
        pre-activations), (K, B, C); x flat (B, d)."""
        with precision(self.base.precision, self.device):
            scores = self.rule.scores(self.net, x, self.settings)
        return scores.float()

    def run(self, should_stop: Callable[[], bool] | None = None) -> str | list[str]:
        """Train until `epochs` epochs are complete (or every run has diverged); returns the
        status ("completed", "stopped" or "diverged") of the run given as one config, or of
        each member of a population given as a list.

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
        desc = f"{self.base.rule} " + (self.base.dataset if self.K == 1 else f"x{self.K}")
        with tqdm(total=(self.base.epochs - self.epoch) * self.steps_per_epoch, unit="step",
                  disable=not self.progress, desc=desc, leave=False) as bar:
            while self.epoch < self.base.epochs and any(r.alive for r in self.members):
                was_alive = [r.alive for r in self.members]
                status = self.train_epoch(bar, should_stop)
                for run, was in zip(self.members, was_alive):
                    if was and not run.alive:  # its record final now, not when the rest end
                        run.emit("on_diverged")
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
        return statuses if self._population else statuses[0]
