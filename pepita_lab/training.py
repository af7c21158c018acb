"""The training loop: epochs of index-sliced batches, a rule's factors folded into SGD with
momentum, evaluation on the test set after every epoch. Torch only; no printing beyond the
progress bar. Records (xarray) and the run store build on top of this module.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .config import RunConfig, validate
from .data import TensorData, run_data
from .devices import fast_step, keep_freed_memory, precision, resolve_device, synchronize
from .nets import Net, init_net
from .rules import Factors, FirstLayerFeedback, make_rule
from .rules.common import bias_update, forward_pass, maps_layout, weight_update

HISTORY_FIELDS = ("epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_time")
# A mean batch loss above this (nats; chance on 10 classes is 2.3) or a non-finite one means the
# run has diverged: its weights are NaN / inf or so large that softmax saturates on wrong answers.
DIVERGENCE_LOSS = 20.0
# Steps between two divergence checks, each a host-device sync: every step on the CPU (where a
# sync costs nothing), every 32 steps on a GPU (which then runs ahead of Python); a divergence
# is still reported at the step where it happened.
CHECK_EVERY = {"cpu": 1, "cuda": 32}


def divergence_reason(mean_loss: float) -> str | None:
    """Why a step's mean batch loss means divergence, or None if it does not."""
    if math.isfinite(mean_loss) and mean_loss <= DIVERGENCE_LOSS:
        return None
    return f"mean batch loss {mean_loss:.4g} nats (limit {DIVERGENCE_LOSS:g})"


class Callback(Protocol):
    """Hooks the loop calls; implement any subset (records, live charts, checkpoints)."""

    def on_train_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", factors: Factors) -> None: ...
    def on_epoch_end(self, trainer: "Trainer") -> None: ...


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


class Trainer:
    """Owns a run's state (net, momentum, generators, history) and steps it through epochs."""

    def __init__(self, config: RunConfig, data: TensorData | None = None, *,
                 callbacks: tuple = (), progress: bool = True):
        self.config = validate(config)
        self.device = resolve_device(config.device)
        if data is None:
            data = run_data(config, self.device)
        self.data = data.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # reuse the activations' memory: no page faults every step
        self.net: Net = init_net(config, data.n_features, data.n_classes, self.device,
                                 image_shape=data.image_shape)
        self.velocity = [torch.zeros_like(p) for p in self.net.params()]
        self.rule = make_rule(config)
        self._factors = fast_step(self.rule, config.precision, config.compile, self.device)
        self.first_feedback = (FirstLayerFeedback(self.net.weights[0], self.velocity[0],
                                                  self.net.F)
                               if config.rule == "pepita" and FirstLayerFeedback.applies(
                                   self.net.weights, data.n_classes) else None)
        # Data order on the CPU (bitwise repeatable everywhere); dropout masks on the device.
        self.order_gen = torch.Generator().manual_seed(config.seed + 1)
        self.mask_gen = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        self.eye = torch.eye(data.n_classes, device=self.device)
        self.history = History()
        self.epoch = 0  # completed epochs
        self.step = 0  # completed steps
        self.callbacks = list(callbacks)
        self.progress = progress
        # a conv layer: its whole map, laid out like the maps (a product of mixed layouts is
        # several times slower), so the draw fills it in that memory order
        self._masks = [maps_layout(torch.empty(config.batch_size, *shape, device=self.device))
                       for shape in self.net.layer_shapes[:-1]]
        self.divergence: dict | None = None

    def state_dict(self) -> dict:
        """Everything needed to continue the run bit for bit (CPU tensors and plain values),
        including the state of callbacks that have one."""
        return {"config": self.config.to_dict(), "net": self.net.to("cpu").state_dict(),
                "velocity": [v.cpu() for v in self.velocity], "epoch": self.epoch,
                "step": self.step,
                "history": {"epoch": list(self.history.epoch), "values": self.history.values},
                "order_gen": self.order_gen.get_state(), "mask_gen": self.mask_gen.get_state(),
                "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks
                              if hasattr(cb, "state_dict")}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` (of a run with the same config)."""
        net = Net.from_state_dict(state["net"]).to(self.device)
        self.net.weights, self.net.biases, self.net.F = net.weights, net.biases, net.F
        self.net.feedback = net.feedback
        self.velocity = [v.to(self.device) for v in state["velocity"]]
        self.epoch, self.step = state["epoch"], state["step"]
        self.history = History(list(state["history"]["epoch"]),
                               {k: list(v) for k, v in state["history"]["values"].items()})
        self._refresh_first_feedback()
        self.order_gen.set_state(state["order_gen"])
        self.mask_gen.set_state(state["mask_gen"])
        for cb in self.callbacks:
            if type(cb).__name__ in state.get("callbacks", {}):
                cb.load_state_dict(state["callbacks"][type(cb).__name__])

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.data.x_train.shape[0] // self.config.batch_size)

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def _refresh_first_feedback(self) -> None:
        if self.first_feedback is not None:
            self.first_feedback.refresh(self.net.weights[0], self.velocity[0], self.net.F)

    def dropout_masks(self, batch: int) -> list[Tensor] | None:
        """This step's dropout masks (already divided by keep_prob), or None without dropout."""
        keep = self.config.keep_prob
        if keep >= 1.0:
            return None
        masks = [m[:batch] for m in self._masks]
        for m in masks:  # in place: no per-step allocation
            draw_dropout_mask(m, keep, self.mask_gen)
        return masks

    def train_step(self, x: Tensor, target: Tensor, lr: float) -> Factors:
        """One step on a batch (x flat (B, d), one-hot target (B, C)): this step's dropout
        masks, the rule's factors, the momentum update. Returns the factors."""
        masks = self.dropout_masks(x.shape[0])
        if self.first_feedback is None:
            f = self._factors(self.net, x, target, masks)
        else:
            f = self._factors(self.net, x, target, masks, first_feedback=self.first_feedback.wf)
        self.apply(f, lr)
        return f

    def apply(self, f: Factors, lr: float) -> None:
        """`v = momentum v + lr dW; W -= v`, with `dW = delta^T a / B` fused into one addmm
        (a conv layer: its convolutional form, one convolution over the batch)."""
        B = f.probs.shape[0]
        m = self.config.momentum
        n_w = len(self.net.weights)
        for l, W in enumerate(self.net.weights):
            v = self.velocity[l]
            if W.dim() == 2:
                v.addmm_(f.deltas[l].T, f.inputs[l], beta=m, alpha=lr / B)
                if l == 0 and self.first_feedback is not None:
                    self.first_feedback.advance(f.deltas[0], f.inputs[0], m, lr / B)
            else:
                v.mul_(m).add_(weight_update(f.deltas[l], f.inputs[l]), alpha=lr / B)
            W.sub_(v)
        for l, b in enumerate(self.net.biases or []):
            v = self.velocity[n_w + l]
            v.mul_(m).add_(bias_update(f.deltas[l]), alpha=lr / B)
            b.sub_(v)

    @torch.no_grad()
    def train_epoch(self, bar=None, should_stop: Callable[[], bool] | None = None) -> str:
        """One epoch. Returns "ok", or "stopped" if `should_stop` interrupted it, or "diverged"
        (see `DIVERGENCE_LOSS`; details in `self.divergence`); an unfinished epoch is not
        counted and the net is then that of the last step."""
        cfg, data = self.config, self.data
        lr = lr_at(cfg, self.epoch)
        N = data.x_train.shape[0]
        perm = torch.randperm(N, generator=self.order_gen).to(self.device)
        self._refresh_first_feedback()  # exact again: rounding does not build up over epochs
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        mean_losses = torch.empty(self.steps_per_epoch, device=self.device)  # one per step
        checked, every = 0, CHECK_EVERY.get(self.device.type, 1)
        start = time.perf_counter()
        for s, i in enumerate(range(0, N, cfg.batch_size)):
            if should_stop is not None and should_stop():
                return "stopped"
            idx = perm[i:i + cfg.batch_size]
            x, y = data.x_train[idx], data.y_train[idx]  # (B, d), (B,)
            f = self.train_step(x, self.eye[y], lr)
            batch_loss = -f.probs.gather(1, y[:, None]).clamp_min(1e-30).log().sum()
            loss_sum += batch_loss
            correct += (f.probs.argmax(1) == y).sum()
            mean_losses[s] = batch_loss / len(idx)
            self.step += 1
            if s + 1 - checked >= every or i + cfg.batch_size >= N:  # a sync
                for k, value in enumerate(mean_losses[checked:s + 1].tolist(), start=checked):
                    reason = divergence_reason(value)
                    if reason is not None:
                        self.divergence = {"epoch": self.epoch + 1,
                                           "step": self.step - s + k, "reason": reason}
                        return "diverged"
                checked = s + 1
            self._emit("on_step_end", f)
            if bar is not None:
                bar.update(1)
        test_loss, test_acc = self.evaluate(data.x_test, data.y_test)
        synchronize(self.device)
        self.epoch += 1
        self.history.append(self.epoch, epoch_lr=lr, train_loss=loss_sum.item() / N,
                            train_acc=correct.item() / N, test_loss=test_loss,
                            test_acc=test_acc, epoch_time=time.perf_counter() - start)
        return "ok"

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of the net (no dropout) on (x, y), in chunks."""
        loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for i in range(0, x.shape[0], self.config.eval_batch_size):
            xb, yb = x[i:i + self.config.eval_batch_size], y[i:i + self.config.eval_batch_size]
            logits = self.logits(xb)
            loss += torch.nn.functional.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
        return loss.item() / x.shape[0], correct.item() / x.shape[0]

    def logits(self, x: Tensor) -> Tensor:
        """Output pre-activations of the net without dropout; x flat (B, d)."""
        net = self.net
        with precision(self.config.precision, self.device):
            hs, _ = forward_pass(net.weights, net.shape_input(x), biases=net.biases,
                                 pool=net.pool, softmax=False)
        return hs[-1].float()

    def run(self, should_stop: Callable[[], bool] | None = None) -> str:
        """Train until `config.epochs` epochs are complete; returns "completed", "stopped" or
        "diverged".

        A fresh run first records epoch 0: the initial net's test loss and accuracy."""
        if self.epoch == 0 and not self.history.epoch:
            test_loss, test_acc = self.evaluate(self.data.x_test, self.data.y_test)
            self.history.append(0, epoch_lr=lr_at(self.config, 0), train_loss=math.nan,
                                train_acc=math.nan, test_loss=test_loss, test_acc=test_acc,
                                epoch_time=0.0)
        self._emit("on_train_start")
        remaining = self.config.epochs - self.epoch
        with tqdm(total=remaining * self.steps_per_epoch, unit="step", disable=not self.progress,
                  desc=f"{self.config.rule} {self.config.dataset}", leave=False) as bar:
            while self.epoch < self.config.epochs:
                status = self.train_epoch(bar, should_stop)
                if status != "ok":
                    return status
                bar.set_postfix(epoch=self.epoch, test_acc=f"{self.history.last('test_acc'):.4f}")
                self._emit("on_epoch_end")
        return "completed"
