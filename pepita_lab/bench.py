"""Benchmarks on the current device: the matrix-product rate at the nets' shapes, each rule's
training step (time, samples/s, achieved FLOP rate from the cost model, fraction of peak), a
whole epoch with batching and evaluation, and peak memory.

Everything runs in one process on random data of the datasets' shapes, so no files are needed.
`run_bench` returns plain JSON-able results, `format_report` a readable table of them, and
`main` is the `pepita-lab bench` command (also `benchmarks/run.py`). Times are medians over
blocks of calls (torch.utils.benchmark's `blocked_autorange`), synchronised around each block,
with warm-up calls excluded; the spread is the interquartile range of the blocks (min and max
are kept too).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import psutil
import torch
from torch import Tensor
from torch.utils import benchmark

from . import __version__
from .analysis import conv_step_cost, step_cost
from .config import COMPILE_MODES, INPUT_SIZES, PRECISIONS, SPLIT_SIZES, ConfigError, preset
from .data import TensorData
from .devices import keep_freed_memory, precision, resolve_device, synchronize
from .records import git_revision
from .training import Trainer

SCHEMA = "pepita-lab-bench/2"
# name -> (dataset, batch size); every net is the paper's d-1024-C.
SHAPES = {"mnist-64": ("mnist", 64), "mnist-512": ("mnist", 512), "cifar10-64": ("cifar10", 64)}
QUICK_SHAPES = ("mnist-64",)
HIDDEN = 1024
# BP through autograd, timed beside the rules as the reference for BP by hand: its key, label,
# and the rule whose Trainer it shares (and whose cost model counts its FLOPs)
AUTOGRAD_BP = ("bp_autograd", "BP (autograd)", "bp")
# The comparison the paper makes, timed as whole epochs too: PEPITA against BP.
EPOCH_RULES = ("pepita", "bp")
# The paper's conv net (preset paper-mnist-conv) at its batch size; BP by hand only (the
# autograd reference is written for fully connected nets).
CONV_SHAPE = ("mnist-conv-50", "paper-mnist-conv", 50)


def bench_rules() -> dict[str, tuple[str, str]]:
    """benchmark key -> (label, the Trainer's rule, whose cost model also counts the step's
    FLOPs): every registered rule, and BP by autograd right after PEPITA."""
    from .rules import get_rule, rule_names

    rows = {name: (get_rule(name).label, name) for name in rule_names()}
    key, label, rule = AUTOGRAD_BP
    return {"pepita": rows.pop("pepita"), key: (label, rule), **rows}


def conv_rules() -> list[str]:
    """The registered rules that take conv layers."""
    from .rules import get_rule, rule_names

    return [name for name in rule_names() if get_rule(name).conv]
# Population sizes K timed for PEPITA on the paper's MNIST net at batch 64.
POPULATION_SIZES = {"quick": (1, 4), "cpu": (1, 4, 16), "cuda": (1, 16, 64, 256)}
# The work of a step does not depend on the learning rate, but the values do: at the paper's
# rates, training random labels on uniform inputs saturates the softmax within an epoch (PEPITA
# at 0.1) or grows the weights without bound (DRTP), and the loop stops a "diverged" epoch early.
BENCH_LR = 1e-3
PEAK_DEFINITION = ("the highest median rate among the matrix products measured here (the nets' "
                   "forward and weight-gradient shapes and a large square); every fraction of "
                   "peak is relative to it")
MEMORY_KIND = {
    "cuda": "torch.cuda.max_memory_allocated, reset before each measurement (it includes the "
            "data and weights resident on the device)",
    "cpu": "peak resident set size of the whole process (getrusage ru_maxrss): process-wide "
           "and never decreasing, so a later measurement includes every earlier one",
}


def _settings(quick: bool, device: torch.device, repeats: int | None,
              precision_name: str = "fp32", compile_mode: str = "off") -> dict:
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int)
                                or repeats < 1):
        raise ConfigError(f"repeats={repeats!r} is not allowed: expected an integer >= 1")
    cuda = device.type == "cuda"
    return {
        "quick": quick, "shapes": list(QUICK_SHAPES if quick else SHAPES),
        # blocks are timed for repeats x block_seconds (blocked_autorange's min_run_time)
        "repeats": repeats or (3 if quick else 7),
        "warmup_calls": 3,  # untimed, before the calibration (which is untimed too)
        "block_seconds": 0.03 if quick else 0.2,
        "pool_batches": 8,  # distinct random batches the step timings cycle through
        "epoch_repeats": 2 if quick else 3,
        "epoch_samples": [1024, 512] if quick else None,  # None: the datasets' real sizes
        "large_square": 1024 if quick else (8192 if cuda else 2048),
        "lr": BENCH_LR,  # see BENCH_LR; the paper's nets, momentum and dropout otherwise
        "population_sizes": list(POPULATION_SIZES["quick" if quick else
                                                  ("cuda" if cuda else "cpu")]),
        "precision": precision_name,  # RunConfig.precision of every step, and of the peak
        "compile": compile_mode,  # RunConfig.compile of every step
    }


# ---------------------------------------------------------------- timing


def _stats(per_call: list[float]) -> dict:
    """Median, quartiles, min and max of per-call seconds (one value per timed block)."""
    # not Measurement.median / .iqr: those round to float32, and it gives no quartiles
    xs = sorted(per_call)
    q1, med, q3 = (statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1
                   else (xs[0],) * 3)
    return {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1, "min_s": xs[0],
            "max_s": xs[-1], "blocks_s": per_call}


def _own_usage():
    """`resource.getrusage` of this process, or None where `resource` is missing (Windows)."""
    # not psutil: it counts no page faults and, on Linux, no peak resident size
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF)


def minor_page_faults() -> int | None:
    """This process's minor page faults so far (None where they are not counted)."""
    usage = _own_usage()
    return None if usage is None else usage.ru_minflt


def _min_run_time(s: dict) -> float:
    """Seconds a measurement of settings `s` times (after its warm-up and calibration)."""
    return s["repeats"] * s["block_seconds"]


def time_calls(fn: Callable[[], object], device: torch.device, *, min_run_time: float,
               warmup: int = 3) -> dict:
    """Seconds per call of `fn`: `warmup` untimed calls, then `blocked_autorange`: an untimed
    calibration that picks the calls per block, then timed blocks, each synchronised before
    and after, until `min_run_time` seconds are timed (garbage collection off, as in `timeit`).
    Returns `_stats` of the blocks plus `calls_per_block` and `page_faults_per_call` (minor
    faults of the process per call, the calibration's included; None where not counted):
    hundreds a call mean the allocator handed freed memory back to the OS and each call faults
    it in again, which can double a CPU time (docs/performance.md)."""
    for _ in range(warmup):
        fn()

    def now() -> float:  # the measured device, not torch.accelerator's current one
        synchronize(device)
        return time.perf_counter()

    calls = itertools.count()  # counted in the statement (a C call): the calibration's too
    timer = benchmark.Timer("fn(); next(calls)", timer=now, globals={"fn": fn, "calls": calls},
                            num_threads=torch.get_num_threads())  # its default is 1
    faults_before = minor_page_faults()
    m = timer.blocked_autorange(min_run_time=min_run_time)
    faults_after, n_calls = minor_page_faults(), next(calls)
    faults = None if faults_before is None else (faults_after - faults_before) / n_calls
    return {**_stats(m.times), "calls_per_block": m.number_per_run,
            "page_faults_per_call": faults}


FAULTS_WORTH_SAYING = 20  # page faults a call: 20 x 4 KiB pages or more faulted in afresh


def _faults_note(t: dict) -> str:
    """A remark for a report line whose timing includes many page faults, else ''."""
    faults = t.get("page_faults_per_call")
    return (f"  {faults:.0f} page faults/call" if faults is not None
            and faults >= FAULTS_WORTH_SAYING else "")


def _rates(flops: int, t: dict) -> dict:
    """GFLOP/s at the median time and at the quartiles (slow quartile first)."""
    return {"gflops": flops / t["median_s"] / 1e9,
            "gflops_iqr": [flops / t["q3_s"] / 1e9, flops / t["q1_s"] / 1e9]}


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """See MEMORY_KIND: per measurement on CUDA, the whole process's peak RSS on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    usage = _own_usage()
    if usage is None:
        return None
    rss = usage.ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS: bytes; Linux: KiB


# ---------------------------------------------------------------- matrix-product peak


def _matmul_shapes(shapes: list[str], large: int) -> list[dict]:
    """The products a step spends its time in, in the layouts training uses, and a square."""
    out, seen = [], set()
    for name in shapes:
        dataset, B = SHAPES[name]
        d = INPUT_SIZES[dataset]
        for what, m, k, n, lhs_t, rhs_t in (
                ("forward", B, d, HIDDEN, False, True),  # x (B, d) @ W_1.T (d, n_1)
                ("weight gradient", HIDDEN, B, d, True, False)):  # delta.T (n_1, B) @ h (B, d)
            if (m, k, n, lhs_t, rhs_t) not in seen:
                seen.add((m, k, n, lhs_t, rhs_t))
                out.append({"name": f"{name} {what}", "m": m, "k": k, "n": n,
                            "lhs_transposed": lhs_t, "rhs_transposed": rhs_t})
    out.append({"name": f"square {large}", "m": large, "k": large, "n": large,
                "lhs_transposed": False, "rhs_transposed": False})
    return out


def measure_peak(shapes: list[str], device: torch.device, s: dict, log=None) -> dict:
    """The float32 `torch.mm` rate (2 M N K / time) at each shape of `_matmul_shapes`, under
    the settings' precision (TF32 products with "tf32"); the peak is the highest median rate
    (PEAK_DEFINITION)."""
    entries = []
    for e in _matmul_shapes(shapes, s["large_square"]):
        if log:
            log(f"matrix product {e['name']}: {e['m']} x {e['k']} x {e['n']}")
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.rand(*((e["k"], e["m"]) if e["lhs_transposed"] else (e["m"], e["k"])),
                       generator=g, device=device)
        b = torch.rand(*((e["n"], e["k"]) if e["rhs_transposed"] else (e["k"], e["n"])),
                       generator=g, device=device)
        a, b = (a.T if e["lhs_transposed"] else a), (b.T if e["rhs_transposed"] else b)
        c = torch.empty(e["m"], e["n"], device=device)
        with precision(s["precision"], device):
            t = time_calls(lambda: torch.mm(a, b, out=c), device,
                           min_run_time=_min_run_time(s), warmup=s["warmup_calls"])
        flops = 2 * e["m"] * e["k"] * e["n"]
        entries.append({**e, "flops": flops, "time": t, **_rates(flops, t)})
        del a, b, c
    return {"gflops": max(e["gflops"] for e in entries), "definition": PEAK_DEFINITION,
            "dtype": "float32", "matmuls": entries}


# ---------------------------------------------------------------- training steps


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
    update), on the next batch of a fixed cycle."""
    batches, lr = _batches(trainer), trainer.config.lr

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
    """`bp_autograd_step` on copies of the trainer's weights and its batches and masks."""
    cfg, batches = trainer.config, _batches(trainer)
    weights = [W.detach().clone().requires_grad_() for W in trainer.net.weights]
    velocity = [torch.zeros_like(W) for W in weights]

    def step() -> None:
        x, _, y = next(batches)
        with precision(cfg.precision, trainer.device):
            bp_autograd_step(weights, velocity, x, y, trainer.dropout_masks(cfg.batch_size),
                             cfg.lr, cfg.momentum)
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


# ---------------------------------------------------------------- conv net and populations


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


# ---------------------------------------------------------------- the whole benchmark


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # by hand: no installed library names the CPU model (psutil does not)
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(device: torch.device) -> dict:
    env = {"pepita_lab": __version__, "git_revision": git_revision(),
           "device": device.type, "device_name": _device_name(device),
           "torch": torch.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "threads": torch.get_num_threads(),
           "interop_threads": torch.get_num_interop_threads(), "cpu_count": psutil.cpu_count(),
           "float32_matmul_precision": torch.get_float32_matmul_precision(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    if hasattr(os, "getloadavg"):  # other work on the machine makes timings noisy
        env["load_average_start"] = list(os.getloadavg())
    return env


def run_bench(quick: bool = False, device: str = "auto", repeats: int | None = None, *,
              precision: str = "fp32", compile: str = "off",
              log: Callable[[str], None] | None = None) -> dict:
    """Run every measurement (see the module docstring) and return JSON-able results:
    environment, settings, peak (the matrix products), shapes (per shape: rules, ratios,
    epoch), conv (`measure_conv`), population (`measure_population`) and memory. `quick`:
    MNIST at batch 64 only, few repeats, small epochs, K = 1 and 4. `precision` and `compile`
    are RunConfig's speed settings, used by every step. `log`, if given, gets one line per
    measurement."""
    dev = resolve_device(device)
    if precision not in PRECISIONS or compile not in COMPILE_MODES:
        raise ConfigError(f"precision={precision!r} / compile={compile!r}: expected one of "
                          f"{', '.join(PRECISIONS)} / {', '.join(COMPILE_MODES)}")
    s = _settings(quick, dev, repeats, precision, compile)
    results = {"schema": SCHEMA, "environment": _environment(dev), "settings": s}
    if dev.type == "cpu":  # every figure under the trainers' allocator policy, from the first
        results["environment"]["freed_memory_kept"] = keep_freed_memory()
    results["peak"] = peak = measure_peak(s["shapes"], dev, s, log)
    shapes = []
    for name in s["shapes"]:
        entry = measure_steps(name, dev, s, peak["gflops"], log)
        entry["epoch"] = measure_epochs(name, dev, s, entry, log)
        shapes.append(entry)
    results["shapes"] = shapes
    fc_pepita = shapes[0]["rules"]["pepita"]["gflops"]  # MNIST, batch 64
    results["conv"] = measure_conv(dev, s, peak["gflops"], fc_pepita, log)
    results["population"] = measure_population(dev, s, peak["gflops"], log)
    results["memory"] = {"kind": MEMORY_KIND[dev.type],
                         "process_peak_bytes": peak_memory_bytes(dev)}
    if hasattr(os, "getloadavg"):
        results["environment"]["load_average_end"] = list(os.getloadavg())
    return results


# ---------------------------------------------------------------- the report


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def format_report(results: dict) -> str:
    """The results as a readable plain-text table."""
    env, s, peak = results["environment"], results["settings"], results["peak"]
    version = f" {env['pepita_lab']} ({env['git_revision']})" if "pepita_lab" in env else ""
    lines = [f"pepita-lab{version} bench on {env['device']} ({env['device_name']}), "
             f"torch {env['torch']}, "
             f"{env['threads']} threads, {env['date']}" + (" [quick]" if s["quick"] else "")
             + f"; precision {s['precision']}, compile {s['compile']}",
             f"times: median over blocks timed for {_min_run_time(s):g} s in all "
             "(blocked_autorange), warm-up excluded; spread: interquartile range (IQR)"]
    if "load_average_start" in env:
        load = env["load_average_start"]
        lines.append("load average at start: " + " ".join(f"{v:.2f}" for v in load))
        if env["device"] == "cpu" and load[0] + env["threads"] > (env["cpu_count"] or 1) + 0.5:
            lines.append(f"warning: other work competes for the {env['cpu_count']} cores: "
                         "a multi-threaded op waits for its descheduled threads, so these times "
                         "measure the scheduler; compare with OMP_NUM_THREADS=1")
    lines += ["", f"{'matrix product (float32)':<26} {'M x K x N':>16} {'ms':>9} "
                  f"{'GFLOP/s':>8} {'IQR GFLOP/s':>15}"]
    for e in peak["matmuls"]:
        lo, hi = e["gflops_iqr"]
        mkn = f"{e['m']}x{e['k']}x{e['n']}"
        lines.append(f"{e['name']:<26} {mkn:>16} {1e3 * e['time']['median_s']:>9.3f} "
                     f"{e['gflops']:>8.1f} {f'{lo:.1f}-{hi:.1f}':>15}")
    lines.append(f"peak = {peak['gflops']:.1f} GFLOP/s: the fastest matrix product above; "
                 "'% peak' is relative to it")
    for shape in results["shapes"]:
        lines.append("")
        if not shape["available"]:
            lines.append(f"{shape['name']}: not available ({shape['reason']})")
            continue
        lines += _shape_report(shape)
    lines += ["", *_conv_report(results["conv"]), "", *_population_report(results["population"])]
    lines += ["", f"peak memory: {_mib(results['memory']['process_peak_bytes'])} MiB; "
                  f"mem MiB columns: {results['memory']['kind']}"]
    return "\n".join(lines)


def _step_rows(rules, memory: bool) -> list[str]:
    """A header and one line per rule: step time, throughput, FLOP rate (and peak memory)."""
    lines = [f"  {'rule':<14} {'step ms':>9} {'IQR ms':>8} {'samples/s':>10} {'MFLOP/step':>11} "
             f"{'GFLOP/s':>8} {'% peak':>7}" + (f" {'mem MiB':>8}" if memory else "")]
    for r in rules:
        t = r["step"]
        lines.append(f"  {r['label']:<14} {1e3 * t['median_s']:>9.3f} {1e3 * t['iqr_s']:>8.3f} "
                     f"{r['samples_per_s']:>10.0f} {r['flops_per_step'] / 1e6:>11.1f} "
                     f"{r['gflops']:>8.1f} {100 * r['fraction_of_peak']:>7.1f}"
                     + (f" {_mib(r['peak_memory_bytes']):>8}" if memory else "")
                     + ("" if r["weights_finite"] else "  weights not finite")
                     + _faults_note(t))
    return lines


def _shape_report(shape: dict) -> list[str]:
    sizes = "-".join(map(str, shape["sizes"]))
    lines = [f"{shape['name']}: {sizes}, batch {shape['batch_size']}",
             *_step_rows(shape["rules"].values(), memory=True)]
    for bp in ("bp_autograd", "bp"):
        q = shape["ratios"][f"pepita_over_{bp}"]
        lines.append(f"  PEPITA / {shape['rules'][bp]['label']}: time {q['time_ratio']:.2f}x, "
                     f"FLOPs {q['flop_ratio']:.2f}x")
    ep = shape["epoch"]
    lines += [f"  whole epoch: {ep['train_samples']} train + {ep['test_samples']} test samples; "
              "steps alone = steps per epoch x median step,",
              "  other = epoch - eval - steps alone (batching, per-step loss sync; noise)",
              f"  {'rule':<14} {'s median':>9} {'min-max s':>13} {'eval s':>8} "
              f"{'steps alone':>11} {'other s':>8} {'mem MiB':>8}"]
    for r in ep["rules"].values():
        e = r["epoch"]
        flag = "" if all(x == "ok" for x in r["status"]) else f"  status {r['status']}"
        flag += "" if r["weights_finite"] else "  weights not finite"
        spread = f"{e['min_s']:.2f}-{e['max_s']:.2f}"
        lines.append(f"  {r['label']:<14} {e['median_s']:>9.3f} {spread:>13} "
                     f"{r['evaluation']['median_s']:>8.3f} {r['steps_alone_s']:>11.3f} "
                     f"{r['other_s']:>8.3f} {_mib(r['peak_memory_bytes']):>8}" + flag)
    return lines


def _conv_report(conv: dict) -> list[str]:
    lines = [f"{conv['name']}: the paper's conv net ({conv['preset']}), batch "
             f"{conv['batch_size']}; FLOPs from analysis.conv_step_cost",
             *_step_rows(conv["rules"].values(), memory=False)]
    for what, op in conv["conv_ops"].items():
        lines.append(f"  {what} alone: {1e3 * op['time']['median_s']:.3f} ms, "
                     f"{op['gflops']:.1f} GFLOP/s" + _faults_note(op["time"]))
    lines += [f"  PEPITA / BP: time {conv['pepita_over_bp_time']:.2f}x, FLOPs "
              f"{conv['pepita_over_bp_flops']:.2f}x",
              f"  conv PEPITA GFLOP/s / FC PEPITA GFLOP/s (MNIST, batch 64): "
              f"{conv['gflops_relative_to_fc_pepita']:.2f}"]
    return lines


def _population_report(pop: dict) -> list[str]:
    lines = [f"population: K PEPITA nets {pop['net']} at batch {pop['batch_size']} trained "
             "together (one (K, out, in) tensor per layer)",
             f"  {'K':>5} {'step ms':>9} {'IQR ms':>8} {'member-samples/s':>17} "
             f"{'x K=1':>7} {'GFLOP/s':>8} {'% peak':>7}"]
    for e in pop["sizes"]:
        t = e["step"]
        gain = "" if e["throughput_over_K1"] is None else f"{e['throughput_over_K1']:.2f}"
        lines.append(f"  {e['K']:>5} {1e3 * t['median_s']:>9.3f} {1e3 * t['iqr_s']:>8.3f} "
                     f"{e['member_samples_per_s']:>17.0f} {gain:>7} {e['gflops']:>8.1f} "
                     f"{100 * e['fraction_of_peak']:>7.1f}"
                     + ("" if e["weights_finite"] else "  weights not finite")
                     + _faults_note(t))
    return lines


# ---------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The bench flags (defined beside the CLI, which must not import this module)."""
    from .cli import add_bench_arguments

    return add_bench_arguments(p)


def build_parser(prog: str = "pepita-lab bench") -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog=prog, description=(
        "Time the training step of every rule, a whole epoch and the matrix-product peak on "
        "this machine; print a table and optionally write JSON.")))


def run_from_args(args: argparse.Namespace) -> int:
    """Run with parsed `add_arguments` flags: progress on stderr, the report on stdout, the
    JSON to `args.json`. Returns the exit status (2 on a refused setting)."""
    log = lambda line: print(f"bench: {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        results = run_bench(args.quick, args.device, args.repeats, precision=args.precision,
                            compile=args.compile, log=log)
    except ConfigError as err:
        print(f"pepita-lab bench: error: {err}", file=sys.stderr)
        return 2
    print(format_report(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`pepita-lab bench [--quick] [--json PATH] [--device auto|cpu|cuda] [--repeats N]
    [--precision fp32|tf32|bf16] [--compile MODE]`
    (`argv` without the program name; None: sys.argv[1:]). Returns the exit status."""
    return run_from_args(build_parser().parse_args(argv))


__all__ = ["run_bench", "format_report", "main", "add_arguments", "build_parser",
           "run_from_args", "time_calls", "measure_peak", "measure_steps", "measure_epochs",
           "measure_conv", "measure_population",
           "bp_autograd_step", "trainer_step", "random_data", "peak_memory_bytes", "SHAPES",
           "bench_rules", "conv_rules"]

if __name__ == "__main__":
    sys.exit(main())
