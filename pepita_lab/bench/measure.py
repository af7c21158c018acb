"""The measurements of training: random data of a dataset's shape, one step as the loop makes
it (and BP by autograd beside it), and each rule's step time and FLOP rate at a shape
(`measure_steps`), whole epochs (`measure_epochs`), the paper's conv net (`measure_conv`) and
PEPITA populations of K nets (`measure_population`).
"""

from __future__ import annotations

import itertools
import time
from typing import Callable

import torch
from torch import Tensor

from ..analysis import conv_step_cost, step_cost
from ..config import INPUT_SIZES, SPLIT_SIZES, preset
from ..data import TensorData
from ..devices import precision, synchronize
from ..training import Trainer
from .settings import (AUTOGRAD_BP, BENCH_LR, CONV_SHAPE, EPOCH_RULES, HIDDEN, SHAPES,
                       _min_run_time, bench_rules, conv_rules)
from .timing import _rates, _reset_peak_memory, _stats, peak_memory_bytes, time_calls


def random_data(dataset: str, n_train: int, n_test: int, device: torch.device,
                seed: int = 0) -> TensorData:
    """Inputs uniform in [0, 1] and random labels, of `dataset`'s shape, made on `device`."""
    d, C = INPUT_SIZES[dataset], 100 if dataset == "cifar100" else 10
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(n_train + n_test, d, generator=g, device=device)  # (N + M, d)
    y = torch.randint(0, C, (n_train + n_test,), generator=g, device=device)  # (N + M,)
    image = {784: (1, 28, 28), 3072: (3, 32, 32)}.get(d, (1, 1, d))
    return TensorData(dataset, x[:n_train], y[:n_train], x[n_train:], y[n_train:], image, C)


def _batches(trainer: Trainer):
    """An endless cycle of (x, one-hot t, y) batches over the trainer's training data."""
    B, data = trainer.config.batch_size, trainer.data
    t = trainer.eye[data.y_train]  # (N, C), made once: not part of the timed step
    N = data.x_train.shape[0] // B * B
    return itertools.cycle([(data.x_train[i:i + B], t[i:i + B], data.y_train[i:i + B])
                            for i in range(0, N, B)])


def trainer_step(trainer: Trainer) -> Callable[[], None]:
    """One training step as the loop makes it (dropout masks, the rule's factors, the momentum
    update), on the next batch of a fixed cycle, at the learning rates the epoch loop passes
    (`Trainer.lr_column`)."""
    batches, lr = _batches(trainer), trainer.lr_column()

    @torch.no_grad()
    def step() -> None:
        x, t, _ = next(batches)
        trainer.train_step(x, t, lr)
    return step


def bp_autograd_step(weights: list[Tensor], velocity: list[Tensor], x: Tensor, y: Tensor,
                     masks: list[Tensor] | None, lr: float, momentum: float) -> Tensor:
    """One step of backprop with autograd on the bias-free MLP: ReLU hidden layers times their
    dropout masks, mean cross-entropy, then `v = momentum v + lr grad; W -= v`. `weights` must
    require grad; their grads are cleared afterwards. Returns the loss."""
    h, L = x, len(weights)
    for l, W in enumerate(weights):
        h = h @ W.T  # (B, n_l)
        if l < L - 1:
            h = torch.relu(h) if masks is None else torch.relu(h) * masks[l]
    loss = torch.nn.functional.cross_entropy(h, y)
    loss.backward()
    with torch.no_grad():
        for W, v in zip(weights, velocity):
            v.mul_(momentum).add_(W.grad, alpha=lr)
            W.sub_(v)
            W.grad = None
    return loss.detach()


def _autograd_step(trainer: Trainer) -> Callable[[], None]:
    """`bp_autograd_step` on copies of the (single run) trainer's weights and its batches and
    masks, as one net's (the loop's carry a leading K = 1)."""
    cfg, batches = trainer.config, _batches(trainer)
    weights = [W.detach().clone().requires_grad_() for W in trainer.members[0].net.weights]
    velocity = [torch.zeros_like(W) for W in weights]

    def step() -> None:
        x, _, y = next(batches)
        with precision(cfg.precision, trainer.device):
            masks = trainer.dropout_masks(cfg.batch_size)
            bp_autograd_step(weights, velocity, x, y, None if masks is None else
                             [m[0] for m in masks], cfg.lr, cfg.momentum)
    step.weights = weights  # what it trains, for the finiteness check
    return step


def _finite(weights: list[Tensor]) -> bool:
    """Whether trained weights are still finite (NaN / inf would make timings moot)."""
    return all(bool(torch.isfinite(W).all()) for W in weights)


def _config(dataset: str, rule: str, B: int, device: torch.device, s: dict | None = None,
            name: str | None = None):
    speed = {} if s is None else {"precision": s["precision"], "compile": s["compile"]}
    return preset(name or f"paper-{dataset}", rule=rule, batch_size=B, device=device.type,
                  lr=BENCH_LR, **speed)


def measure_steps(shape: str, device: torch.device, s: dict, peak_gflops: float,
                  log=None) -> dict:
    """Step time, samples/s, FLOP rate (2 x the cost model's MACs) and fraction of peak of
    every rule of `bench_rules()` at `shape`, and the PEPITA / BP ratios of time and of
    FLOPs."""
    dataset, B = SHAPES[shape]
    data = random_data(dataset, B * s["pool_batches"], B, device)
    sizes = [data.n_features, HIDDEN, data.n_classes]
    rules = {}
    for key, (label, rule) in bench_rules().items():
        if log:
            log(f"{shape}: {label} step")
        trainer = Trainer(_config(dataset, rule, B, device, s), data, progress=False)
        step = _autograd_step(trainer) if key == AUTOGRAD_BP[0] else trainer_step(trainer)
        _reset_peak_memory(device)
        t = time_calls(step, device, min_run_time=_min_run_time(s), warmup=s["warmup_calls"])
        cost = step_cost(rule, sizes, B)
        r = _rates(2 * cost.macs, t)
        rules[key] = {"label": label, "cost_model_rule": rule, "flops_per_step": 2 * cost.macs,
                      "step": t, "samples_per_s": B / t["median_s"], **r,
                      "fraction_of_peak": r["gflops"] / peak_gflops,
                      "peak_memory_bytes": peak_memory_bytes(device),
                      "activation_bytes_model": cost.activation_bytes,
                      "weights_finite": _finite(getattr(step, "weights", trainer.net.weights))}
        del trainer, step
    ratios = {}
    for bp in ("bp_autograd", "bp"):
        p, b = rules["pepita"], rules[bp]
        ratios[f"pepita_over_{bp}"] = {
            "time_ratio": p["step"]["median_s"] / b["step"]["median_s"],
            "flop_ratio": p["flops_per_step"] / b["flops_per_step"]}
    return {"name": shape, "available": True, "dataset": dataset, "sizes": sizes,
            "batch_size": B, "rules": rules, "ratios": ratios}


def measure_epochs(shape: str, device: torch.device, s: dict, steps: dict, log=None) -> dict:
    """Seconds per `Trainer.train_epoch` (index-sliced batches, the steps, one loss sync a step,
    the test evaluation) for the rules in EPOCH_RULES, on random data of the dataset's full
    size (quick: `epoch_samples`); also the evaluation alone and what the steps alone would
    take (`steps` is `measure_steps`'s result for the same shape)."""
    dataset, B = SHAPES[shape]
    n_train, n_test = s["epoch_samples"] or SPLIT_SIZES[dataset]
    data = random_data(dataset, n_train, n_test, device, seed=1)
    out = {"train_samples": n_train, "test_samples": n_test, "rules": {}}
    labels = bench_rules()
    for key in EPOCH_RULES:
        if log:
            log(f"{shape}: {labels[key][0]} epoch of {n_train} + {n_test} samples")
        trainer = Trainer(_config(dataset, key, B, device, s), data, progress=False)
        warm = trainer_step(trainer)  # warm-up at the step's and the evaluation's shapes
        for _ in range(s["warmup_calls"]):
            warm()
        chunk = trainer.config.eval_batch_size
        trainer.evaluate(data.x_test[:chunk], data.y_test[:chunk])
        _reset_peak_memory(device)
        times, status = [], []
        # by hand: a fixed count of whole epochs, each one's status kept (blocked_autorange
        # would run more, calibrating)
        for _ in range(s["epoch_repeats"]):
            synchronize(device)
            start = time.perf_counter()
            status.append(trainer.train_epoch())  # synchronises at its end
            times.append(time.perf_counter() - start)
        memory = peak_memory_bytes(device)
        evaluation = time_calls(lambda: trainer.evaluate(data.x_test, data.y_test), device,
                                min_run_time=_min_run_time(s), warmup=1)
        epoch = _stats(times)
        steps_alone = trainer.steps_per_epoch * steps["rules"][key]["step"]["median_s"]
        other = epoch["median_s"] - steps_alone - evaluation["median_s"]  # batching, syncs
        out["rules"][key] = {
            "label": labels[key][0], "epoch": epoch, "status": status,
            "samples_per_s": n_train / epoch["median_s"],
            "steps_per_epoch": trainer.steps_per_epoch, "evaluation": evaluation,
            "steps_alone_s": steps_alone, "other_s": other,
            "other_fraction": other / epoch["median_s"],
            "peak_memory_bytes": memory, "weights_finite": _finite(trainer.net.weights)}
        del trainer, warm
    return out


def measure_conv(device: torch.device, s: dict, peak_gflops: float, fc_pepita_gflops: float,
                 log=None) -> dict:
    """The paper's MNIST conv net (CONV_SHAPE): each rule's step (FLOPs from
    `conv_step_cost`), the conv layer's own library calls alone (forward `conv2d` and the
    weight update's `conv2d_weight` at the step's shapes: the rate its convolutions can reach
    here), and PEPITA's FLOP rate relative to the fully connected PEPITA step's
    (`fc_pepita_gflops`, MNIST batch 64): 1 means as fast per FLOP."""
    name, preset_name, B = CONV_SHAPE
    data = random_data("mnist", B * s["pool_batches"], B, device)
    rules = {}
    for rule in conv_rules():
        label = bench_rules()[rule][0]
        if log:
            log(f"{name}: {label} step")
        config = _config("mnist", rule, B, device, s, name=preset_name)
        trainer = Trainer(config, data, progress=False)
        t = time_calls(trainer_step(trainer), device, min_run_time=_min_run_time(s),
                       warmup=s["warmup_calls"])
        cost = conv_step_cost(rule, data.image_shape, config.conv_channels, config.kernel_size,
                              config.pool, config.hidden, data.n_classes, B)
        r = _rates(2 * cost.macs, t)
        rules[rule] = {"label": label, "flops_per_step": 2 * cost.macs, "step": t,
                       "samples_per_s": B / t["median_s"], **r,
                       "fraction_of_peak": r["gflops"] / peak_gflops,
                       "weights_finite": _finite(trainer.net.weights)}
        del trainer
    W = torch.randn(32, *data.image_shape[:1], 5, 5, device=device)  # (32, 1, 5, 5)
    x = data.x_train[:B].view(B, *data.image_shape)
    h = torch.nn.functional.conv2d(x, W)
    ops = {}
    for what, fn in (("conv2d forward", lambda: torch.nn.functional.conv2d(x, W)),
                     ("conv2d_weight", lambda: torch.nn.grad.conv2d_weight(x, W.shape, h))):
        with precision(s["precision"], device):
            t = time_calls(fn, device, min_run_time=_min_run_time(s), warmup=s["warmup_calls"])
        flops = 2 * h.numel() * W[0].numel()
        ops[what] = {"flops": flops, "time": t, **_rates(flops, t)}
    pepita = rules["pepita"]["gflops"]
    return {"name": name, "available": True, "preset": preset_name, "batch_size": B,
            "rules": rules, "conv_ops": ops,
            "pepita_over_bp_time": (rules["pepita"]["step"]["median_s"]
                                    / rules["bp"]["step"]["median_s"]),
            "pepita_over_bp_flops": rules["pepita"]["flops_per_step"] / rules["bp"][
                "flops_per_step"],
            "gflops_relative_to_fc_pepita": pepita / fc_pepita_gflops}


def measure_population(device: torch.device, s: dict, peak_gflops: float, log=None) -> dict:
    """PEPITA populations of K paper-MNIST nets (batch 64, F scales spread over 0.01..0.1,
    one data order): seconds per population step, member-samples per second, the speed-up of
    throughput over K = 1, and the FLOP rate (K times the single net's count)."""
    B = 64
    data = random_data("mnist", B * s["pool_batches"], B, device)
    cost = step_cost("pepita", [data.n_features, HIDDEN, data.n_classes], B)
    out = []
    for K in s["population_sizes"]:
        if log:
            log(f"population: K = {K}")
        scales = torch.logspace(-2, -1, K).tolist() if K > 1 else [0.05]
        configs = [_config("mnist", "pepita", B, device, s).replace(f_scale=f) for f in scales]
        pop = Trainer(configs, data, progress=False)
        batches = itertools.cycle([(data.x_train[i:i + B], pop.eye[data.y_train[i:i + B]])
                                   for i in range(0, data.x_train.shape[0] // B * B, B)])
        lr_col = torch.full((K, 1, 1), BENCH_LR, device=device)

        @torch.no_grad()
        def step() -> None:
            pop.train_step(*next(batches), lr_col)

        t = time_calls(step, device, min_run_time=_min_run_time(s), warmup=s["warmup_calls"])
        flops = K * 2 * cost.macs
        out.append({"K": K, "step": t, "member_samples_per_s": K * B / t["median_s"],
                    "flops_per_step": flops, **_rates(flops, t),
                    "fraction_of_peak": flops / t["median_s"] / 1e9 / peak_gflops,
                    "weights_finite": _finite(pop.net.weights)})
        del pop
    one = out[0]["member_samples_per_s"] if out and out[0]["K"] == 1 else None
    for entry in out:
        entry["throughput_over_K1"] = None if one is None else entry[
            "member_samples_per_s"] / one
    return {"net": f"{INPUT_SIZES['mnist']}-{HIDDEN}-10", "batch_size": B, "rule": "pepita",
            "sizes": out}
