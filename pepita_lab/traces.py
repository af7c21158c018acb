"""What happens inside a run, measured on fixed probe sets while it trains (torch only).

`Tracer` is a training callback. At the start, after every epoch and optionally every N steps
it records per-layer weight and update norms, the alignment of the rule's update with the BP
gradient on a fixed probe batch, and the angle between the network's end-to-end map and F
(`f_angle`) or, for FA / DFA / DRTP, between forward and feedback matrices; with a factorised
F the angle of each factor B_l with W_l^T (weight mirroring), and for PEPITA the angle of its
implied feedback with BP's. At chosen epochs
it keeps PEPITA's activation differences `h_l - h_l^err` and modulated inputs `x + sign F e`
on a fixed probe set of test samples. `records.py` turns the lists into xarray datasets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .nets import Net, forward_pass
from .rules import (Rule, bp_factors, pepita_factors, pepita_options_factors,
                    updates_from_factors)

PROBE_BATCH = 256  # training samples on which update alignment and norms are measured
PROBE_SAMPLES = 16  # test samples whose activations are kept


def default_snapshot_epochs(epochs: int) -> tuple[int, ...]:
    """Every epoch for short runs; else 0, 1, 2, 5, 10, 20, 50, ... and the last."""
    if epochs <= 10:
        return tuple(range(epochs + 1))
    marks = {0, epochs}
    k = 1
    while k < epochs:
        marks.update(m for m in (k, 2 * k, 5 * k) if m < epochs)
        k *= 10
    return tuple(sorted(marks))


def cosine(a: Tensor, b: Tensor) -> float:
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return math.nan
    return float((a.flatten() @ b.flatten()) / (na * nb))


def angle_deg(a: Tensor, b: Tensor) -> float:
    c = cosine(a, b)
    return math.degrees(math.acos(max(-1.0, min(1.0, c)))) if not math.isnan(c) else math.nan


def end_to_end(weights: list[Tensor], start: int = 0) -> Tensor:
    """`W_L ... W_{start+1}`, shape (C, n_start): the net's linear map above layer `start`."""
    M = weights[-1]
    for W in reversed(weights[start:-1]):
        M = M @ W
    return M


@torch.no_grad()
def f_angle(net: Net) -> float:
    """Angle (degrees) between `vec((W_L ... W_1)^T)` and `vec(F)`; NaN for a conv net, whose
    layers (a convolution, a max-pool) have no end-to-end matrix to compare F with."""
    if any(W.dim() != 2 for W in net.weights):
        return math.nan
    return angle_deg(end_to_end(net.weights).T, net.F)


@torch.no_grad()
def feedback_angles(net: Net, rule: Rule) -> list[float]:
    """Per layer: the angle between a feedback matrix and the forward map it stands in for
    (chain feedback, as FA: `B_l` vs `W_{l+1}`, a conv kernel too; direct feedback, as DFA /
    DRTP: `B_l` vs `W_L ... W_{l+1}`); NaN where there is none (direct feedback below a conv
    layer: no end-to-end matrix)."""
    L = len(net.weights)
    kind = rule.feedback
    out = [math.nan] * L
    for l, B in enumerate(net.feedback):
        if kind == "chain":
            out[l] = angle_deg(net.weights[l + 1], B)
        elif all(W.dim() == 2 for W in net.weights[l + 1:]):
            out[l] = angle_deg(end_to_end(net.weights, l + 1), B)
    return out


@torch.no_grad()
def mirror_angles(net: Net) -> list[float]:
    """Per layer: the angle between the factor B_l of a factorised F (`Net.F_factors`) and
    W_l^T, which weight mirroring drives towards 0; NaN without factors."""
    if not net.F_factors:
        return [math.nan] * len(net.weights)
    return [angle_deg(B, W.T) for B, W in zip(net.F_factors, net.weights)]


@torch.no_grad()
def implied_feedback_angles(net: Net, rule: Rule, sign: float) -> list[float]:
    """PEPITA seen as adaptive feedback alignment (ICLR 2024): to first order, hidden layer l
    receives `-sign (W_l ... W_1 F) e` where BP sends `(W_L ... W_{l+1})^T e` (both before the
    ReLU derivatives), so its implied feedback matrix is `-sign W_l ... W_1 F` (n_l, C). Per
    hidden layer, the angle between the two; NaN for the output layer, conv nets and rules
    that do not read F."""
    L = len(net.weights)
    out = [math.nan] * L
    if not rule.reads_F or any(W.dim() != 2 for W in net.weights):
        return out
    implied = net.F
    for l in range(L - 1):
        implied = net.weights[l] @ implied  # W_l ... W_1 F, (n_l, C)
        out[l] = angle_deg(-sign * implied, end_to_end(net.weights, l + 1).T)
    return out


@torch.no_grad()
def layer_traces(net: Net, rule: Rule, settings, x: Tensor, target: Tensor) -> dict:
    """Norms, BP alignment and feedback angles on one probe batch (no dropout); `settings`:
    the run's config."""
    dW = updates_from_factors(rule.factors(net, x, target, None, settings))
    f = bp_factors(net.weights, net.shape_input(x), target, None, net.biases, net.pool)
    grads = updates_from_factors(f)
    probs = torch.softmax(rule.scores(net, x, settings), -1)
    loss = -probs.gather(1, target.argmax(1, keepdim=True)).clamp_min(1e-30).log().mean()
    return {
        "weight_norm": [float(W.norm()) for W in net.weights],
        "update_norm": [float(d.norm()) for d in dW],
        "bp_cosine": [cosine(d, g) for d, g in zip(dW, grads)],
        "bp_angle": [angle_deg(d, g) for d, g in zip(dW, grads)],
        "feedback_angle": feedback_angles(net, rule),
        "mirror_angle": mirror_angles(net),
        "implied_angle": implied_feedback_angles(net, rule, float(settings.sign)),
        "f_angle": f_angle(net),
        "probe_loss": float(loss),
        "probe_acc": float((probs.argmax(1) == target.argmax(1)).float().mean()),
    }


@torch.no_grad()
def activation_snapshot(net: Net, x: Tensor, target: Tensor, sign: float,
                        normalize: bool = False) -> dict:
    """PEPITA's two passes on probe samples (no dropout): `h_l`, `h_l - h_l^err` per hidden
    layer (a conv layer's map flattened channel-first, before pooling), the modulated input
    (flat) and the first-pass error, as CPU tensors."""
    hs, _ = forward_pass(net.weights, net.shape_input(x), biases=net.biases, pool=net.pool,
                         normalize=normalize)
    if normalize:  # the follow-up's normalisation: fully connected nets only
        f = pepita_options_factors(net.weights, x, target, net.F, sign=sign, biases=net.biases,
                                   normalize=True)
    else:
        f = pepita_factors(net.weights, net.shape_input(x), target, net.F, sign=sign,
                           biases=net.biases, pool=net.pool)
    L = len(net.weights)
    diffs = f.deltas[:L - 1]  # h_l - h_l^err, l = 1 .. L-1
    return {"h": [h.flatten(1).cpu() for h in hs[1:L]],
            "h_diff": [d.flatten(1).cpu() for d in diffs],
            "x_err": f.inputs[0].flatten(1).cpu(),
            "error": (f.probs - target).cpu()}


@dataclass
class Tracer:
    """Training callback that collects traces; `every_steps` adds step-level traces."""

    every_steps: int | None = None
    snapshot_epochs: tuple[int, ...] | None = None
    epochs: list[int] = field(default_factory=list)
    epoch_traces: list[dict] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    step_traces: list[dict] = field(default_factory=list)
    snapshots: dict[int, dict] = field(default_factory=dict)
    snapshot_default: bool = False  # snapshot_epochs were the default for the run's length

    def on_train_start(self, trainer) -> None:
        data = trainer.data
        self.probe_x = data.x_train[:PROBE_BATCH]
        self.probe_t = trainer.eye[data.y_train[:PROBE_BATCH]]
        self.sample_x = data.x_test[:PROBE_SAMPLES]
        self.sample_y = data.y_test[:PROBE_SAMPLES]
        if self.snapshot_epochs is None:  # the default, for the run's length (also extended)
            self.snapshot_default = True
            self.snapshot_epochs = default_snapshot_epochs(trainer.config.epochs)
        if trainer.epoch == 0 and 0 not in self.epochs:
            self.on_epoch_end(trainer)

    def _traces(self, trainer) -> dict:
        return layer_traces(trainer.net, trainer.rule, trainer.config, self.probe_x,
                            self.probe_t)

    def on_step_end(self, trainer, factors) -> None:
        if self.every_steps and trainer.step % self.every_steps == 0:
            self.steps.append(trainer.step)
            self.step_traces.append(self._traces(trainer))

    def on_epoch_end(self, trainer) -> None:
        self.epochs.append(trainer.epoch)
        self.epoch_traces.append(self._traces(trainer))
        if trainer.epoch in self.snapshot_epochs:
            self.snapshots[trainer.epoch] = activation_snapshot(
                trainer.net, self.sample_x, trainer.eye[self.sample_y], trainer.config.sign,
                trainer.config.normalize)

    def state_dict(self) -> dict:
        """What was traced so far (plain values and CPU tensors), for checkpoints."""
        return {"every_steps": self.every_steps,
                "epochs": self.epochs, "epoch_traces": self.epoch_traces, "steps": self.steps,
                "step_traces": self.step_traces, "snapshots": self.snapshots,
                "snapshot_epochs": list(self.snapshot_epochs or ()),
                "snapshot_default": self.snapshot_default}

    def load_state_dict(self, state: dict) -> None:
        self.epochs, self.epoch_traces = list(state["epochs"]), list(state["epoch_traces"])
        self.steps, self.step_traces = list(state["steps"]), list(state["step_traces"])
        self.snapshots = dict(state["snapshots"])
        # the default is recomputed for the resumed run's length (it may have been extended);
        # checkpoints before this flag: chosen epochs are kept
        self.snapshot_default = state.get("snapshot_default", False)
        chosen = tuple(state["snapshot_epochs"]) or None
        self.snapshot_epochs = None if self.snapshot_default else chosen

    def sample_arrays(self) -> dict:
        """The probe samples: clean inputs and labels, as numpy arrays."""
        return {"x": self.sample_x.cpu().numpy(), "label": self.sample_y.cpu().numpy()}


def stack(traces: list[dict], key: str) -> np.ndarray:
    return np.asarray([t[key] for t in traces], dtype=np.float64)
