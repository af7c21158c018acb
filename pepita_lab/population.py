"""Population training: K independent nets of one architecture trained at once.

Each layer is one (K, out, in) tensor and every product is batched, so K small nets cost
about as much as one wide one. Members may differ in seed (initial weights, F, feedback, data
order, dropout), F scale, learning rate and modulation sign; everything else is shared. Each
member draws exactly what a separate run with its config draws, so its history equals that
run's to float tolerance (the batched products round differently).

`Member` presents one slice of the population with the attributes of a `Trainer` that traces
and the run store use, so each member records and stores itself like a separate run (and its
folder can be resumed as one).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch
from tqdm.auto import tqdm

from .config import ConfigError, RunConfig, validate
from .data import TensorData, run_data
from .devices import fast_step, keep_freed_memory, precision, resolve_device, synchronize
from .nets import Net, init_net
from .rules import FEEDBACK_KIND, FirstLayerFeedback, bp_factors, make_rule, pepita_factors
from .rules.backprop import chain_factors
from .rules.feedback_alignment import direct_factors
from .training import CHECK_EVERY, History, divergence_reason, draw_dropout_mask, lr_at

# Fields that may differ between members; all others must be equal.
MEMBER_FIELDS = ("seed", "f_scale", "lr", "sign", "feedback_scale", "f_distribution")


def shared_settings(config: RunConfig) -> dict:
    """The settings members of one population must share."""
    return {k: v for k, v in config.identity().items() if k not in MEMBER_FIELDS}


def _stack(nets: list[Net]) -> Net:
    stack = lambda ts: [torch.stack(t) for t in zip(*ts)]  # noqa: E731
    biases = None if nets[0].biases is None else [b[:, None] for b in stack(
        [n.biases for n in nets])]  # (K, 1, out): broadcasts over the batch
    return Net(stack([n.weights for n in nets]), biases, torch.stack([n.F for n in nets]),
               stack([n.feedback for n in nets]) if nets[0].feedback else [])


class Member:
    """Member k of a population, seen as a Trainer (for traces, the run store, checkpoints)."""

    def __init__(self, population: "Population", k: int, config: RunConfig):
        self.population, self.k, self.config = population, k, config
        self.history = History()
        self.divergence: dict | None = None
        self.callbacks: list = []
        self.rule = make_rule(config)
        self.order_gen = torch.Generator().manual_seed(config.seed + 1)
        self.mask_gen = torch.Generator(device=population.device).manual_seed(config.seed + 2)

    # the Trainer attributes that Tracer / RunStore read
    device = property(lambda self: self.population.device)
    data = property(lambda self: self.population.data)
    eye = property(lambda self: self.population.eye)
    epoch = property(lambda self: self.population.epoch)
    step = property(lambda self: self.population.step)

    @property
    def net(self) -> Net:
        """This member's net: views into the population's tensors."""
        pop, k = self.population.net, self.k
        return Net([W[k] for W in pop.weights],
                   None if pop.biases is None else [b[k, 0] for b in pop.biases],
                   pop.F[k], [B[k] for B in pop.feedback])

    @property
    def alive(self) -> bool:
        return self.divergence is None

    def state_dict(self) -> dict:
        """This member's checkpoint, in the format of `Trainer.state_dict` (resumable alone)."""
        net = self.net
        cpu = lambda ts: [t.detach().cpu().clone() for t in ts]  # noqa: E731
        return {"config": self.config.to_dict(),
                "net": {"weights": cpu(net.weights),
                        "biases": None if net.biases is None else cpu(net.biases),
                        "F": net.F.cpu().clone(), "feedback": cpu(net.feedback)},
                "velocity": cpu(v[self.k] if l < len(net.weights) else v[self.k, 0]
                                for l, v in enumerate(self.population.velocity)),
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


class Population:
    """K runs of one architecture, trained in lockstep with batched products."""

    def __init__(self, configs: list[RunConfig], data: TensorData | None = None, *,
                 progress: bool = True):
        configs = [validate(dataclasses.replace(c)) for c in configs]
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
        self.base, self.progress = base, progress
        self.device = resolve_device(base.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # as Trainer: no page faults every step
        if data is None:
            data = run_data(base, self.device)
        self.data = data.to(self.device)
        self.members = [Member(self, k, c) for k, c in enumerate(configs)]
        self.net = _stack([init_net(c, data.n_features, data.n_classes, "cpu")
                           for c in configs]).to(self.device)
        self.velocity = [torch.zeros_like(p) for p in self.net.weights + (self.net.biases or [])]
        self.first_feedback = (FirstLayerFeedback(self.net.weights[0], self.velocity[0],
                                                  self.net.F)
                               if base.rule == "pepita" and FirstLayerFeedback.applies(
                                   self.net.weights, data.n_classes) else None)
        self.eye = torch.eye(data.n_classes, device=self.device)
        K = len(configs)
        col = lambda vals: torch.tensor(vals, device=self.device).view(K, 1, 1)  # noqa: E731
        self.sign = col([c.sign for c in configs])
        self.lr = [c.lr for c in configs]
        self.shared_order = len({c.seed for c in configs}) == 1
        self._fast_factors = fast_step(self.factors, base.precision, base.compile, self.device)
        self.epoch = self.step = 0

    @property
    def K(self) -> int:
        return len(self.members)

    def factors(self, x, t, masks):
        cfg, net = self.base, self.net
        if cfg.rule == "pepita":
            return pepita_factors(net.weights, x, t, net.F, sign=self.sign,
                                  output_error=cfg.output_error, masks=masks,
                                  biases=net.biases, fused_first_layer="auto",
                                  first_feedback=(None if self.first_feedback is None
                                                  else self.first_feedback.wf))
        if cfg.rule == "bp":
            return bp_factors(net.weights, x, t, masks, net.biases)
        if FEEDBACK_KIND[cfg.rule] == "chain":
            return chain_factors(net.weights, x, t, net.feedback, masks, net.biases)
        signal = "error" if cfg.rule == "dfa" else "target"
        return direct_factors(net.weights, x, t, net.feedback, signal, masks, net.biases)

    def batch(self, perms, i):
        """x (B, d) shared by all members, or (K, B, d) with per-member data order."""
        B = self.base.batch_size
        if self.shared_order:
            idx = perms[0][i:i + B]
            return self.data.x_train[idx], self.data.y_train[idx]
        idx = torch.stack([p[i:i + B] for p in perms])  # (K, B)
        return self.data.x_train[idx], self.data.y_train[idx]

    def masks(self, B):
        keep = self.base.keep_prob
        if keep >= 1.0:
            return None
        out = []
        for n in self.base.hidden:
            m = torch.empty(self.K, B, n, device=self.device)
            for k, member in enumerate(self.members):  # each member's own dropout stream
                draw_dropout_mask(m[k], keep, member.mask_gen)
            out.append(m)
        return out

    def train_step(self, x, target, lr_col):
        """One step of every member on a batch (x (B, d) shared or (K, B, d), one-hot target
        (B, C) or (K, B, C), learning rates (K, 1, 1)): dropout masks, factors, momentum
        update. Returns the factors."""
        B = target.shape[-2]
        f = self._fast_factors(x, target, self.masks(B))
        self.apply(f, lr_col / B)
        return f

    def apply(self, f, lr_scale) -> None:
        """Per member `v = momentum v + lr dW; W -= v`: lr / B folded into the deltas. A
        diverged member is frozen where it diverged: zero momentum, zero (not NaN) updates."""
        m = self.base.momentum
        n_w = len(self.net.weights)
        frozen = None if all(mb.alive for mb in self.members) else torch.tensor(
            [not mb.alive for mb in self.members], device=self.device).view(self.K, 1, 1)

        def scaled(delta):
            delta = delta * lr_scale
            return delta if frozen is None else torch.where(frozen, 0.0, delta)

        for l, W in enumerate(self.net.weights):
            a = f.inputs[l]
            a = a.expand(self.K, *a.shape[-2:]) if a.dim() == 2 else a
            if frozen is not None:
                a = torch.where(frozen, 0.0, a)
            delta = scaled(f.deltas[l])
            self.velocity[l].baddbmm_(delta.mT, a, beta=m)
            W.sub_(self.velocity[l])
            if l == 0 and self.first_feedback is not None:
                self.first_feedback.advance(delta, a, m)
        for l, b in enumerate(self.net.biases or []):
            v = self.velocity[n_w + l]
            v.mul_(m).add_(scaled(f.deltas[l]).sum(-2, keepdim=True))
            b.sub_(v)

    @torch.no_grad()
    def train_epoch(self, bar=None, should_stop: Callable[[], bool] | None = None) -> str:
        cfg, data = self.base, self.data
        N, B = data.x_train.shape[0], cfg.batch_size
        lrs = [lr_at(m.config, self.epoch) for m in self.members]
        lr_col = torch.tensor(lrs, device=self.device).view(self.K, 1, 1)
        perms = [torch.randperm(N, generator=m.order_gen).to(self.device) for m in self.members]
        if self.first_feedback is not None:  # exact again: no rounding builds up over epochs
            self.first_feedback.refresh(self.net.weights[0], self.velocity[0], self.net.F)
        loss_sum = torch.zeros(self.K, device=self.device)
        correct = torch.zeros(self.K, device=self.device, dtype=torch.long)
        mean_losses = torch.empty(-(-N // B), self.K, device=self.device)  # (steps, K)
        checked, every = 0, CHECK_EVERY.get(self.device.type, 1)
        start = time.perf_counter()
        for s, i in enumerate(range(0, N, B)):
            if should_stop is not None and should_stop():
                return "stopped"
            x, y = self.batch(perms, i)
            nb = y.shape[-1]
            f = self.train_step(x, self.eye[y], lr_col)
            yk = y.expand(self.K, nb) if y.dim() == 1 else y  # (K, B)
            batch_loss = -f.probs.gather(-1, yk[..., None]).clamp_min(1e-30).log().sum((1, 2))
            loss_sum += batch_loss
            correct += (f.probs.argmax(-1) == yk).sum(-1)
            mean_losses[s] = batch_loss / nb
            self.step += 1
            if s + 1 - checked >= every or i + B >= N:  # a sync
                self._check_divergence(mean_losses[checked:s + 1], self.step - s + checked)
                checked = s + 1
            for member in self.members:
                if member.alive:
                    member.emit("on_step_end", None)
            if bar is not None:
                bar.update(1)
        test_loss, test_acc = self.evaluate(data.x_test, data.y_test)
        synchronize(self.device)
        self.epoch += 1
        elapsed = time.perf_counter() - start
        for k, member in enumerate(self.members):
            if member.alive:
                member.history.append(self.epoch, epoch_lr=lrs[k],
                                      train_loss=loss_sum[k].item() / N,
                                      train_acc=correct[k].item() / N,
                                      test_loss=test_loss[k], test_acc=test_acc[k],
                                      epoch_time=elapsed / self.K)
        return "ok"

    def _check_divergence(self, mean_losses, first_step: int) -> None:
        """Mark members whose mean batch loss diverged at one of the steps `first_step`,
        `first_step + 1`, ... (rows of `mean_losses`, (steps, K)), and freeze them."""
        for step, values in enumerate(mean_losses.tolist(), start=first_step):
            for member, v in zip(self.members, values):
                reason = divergence_reason(v) if member.alive else None
                if reason is None:
                    continue
                member.divergence = {"epoch": self.epoch + 1, "step": step, "reason": reason}
                for vel in self.velocity:
                    vel[member.k].zero_()
                if self.first_feedback is not None:
                    self.first_feedback.vf[member.k].zero_()

    @torch.no_grad()
    def evaluate(self, x, y) -> tuple[list[float], list[float]]:
        """Per member: mean cross-entropy and accuracy (no dropout) on (x, y)."""
        loss = torch.zeros(self.K, device=self.device)
        correct = torch.zeros(self.K, device=self.device, dtype=torch.long)
        chunk = self.base.eval_batch_size
        L = len(self.net.weights)
        for i in range(0, x.shape[0], chunk):
            h, yb = x[i:i + chunk], y[i:i + chunk]
            with precision(self.base.precision, self.device):
                for l, W in enumerate(self.net.weights):
                    h = h @ W.mT if self.net.biases is None else h @ W.mT + self.net.biases[l]
                    h = torch.relu(h) if l < L - 1 else h
            h = h.float()
            logp = torch.log_softmax(h, -1)  # (K, b, C)
            yk = yb.expand(self.K, -1)
            loss -= logp.gather(-1, yk[..., None]).sum((1, 2))
            correct += (h.argmax(-1) == yk).sum(-1)
        n = x.shape[0]
        return (loss / n).tolist(), (correct.double() / n).tolist()

    def run(self, should_stop: Callable[[], bool] | None = None) -> list[str]:
        """Train every member to the end; returns each member's status."""
        if self.epoch == 0:
            test_loss, test_acc = self.evaluate(self.data.x_test, self.data.y_test)
            for k, m in enumerate(self.members):
                m.history.append(0, epoch_lr=lr_at(m.config, 0), train_loss=math.nan,
                                 train_acc=math.nan, test_loss=test_loss[k],
                                 test_acc=test_acc[k], epoch_time=0.0)
        for m in self.members:
            m.emit("on_train_start")
        steps = -(-self.data.x_train.shape[0] // self.base.batch_size)
        with tqdm(total=(self.base.epochs - self.epoch) * steps, unit="step",
                  disable=not self.progress, leave=False,
                  desc=f"{self.base.rule} x{self.K}") as bar:
            while self.epoch < self.base.epochs and any(m.alive for m in self.members):
                if self.train_epoch(bar, should_stop) == "stopped":
                    return ["stopped" if m.alive else "diverged" for m in self.members]
                for m in self.members:
                    if m.alive:
                        m.emit("on_epoch_end")
        return ["completed" if m.alive else "diverged" for m in self.members]
