"""Measured memory of one training step, for every rule: the peak bytes of tensors allocated
during the step above those alive when it starts (the net, its feedback, momentum, the rule's
state, the preallocated dropout masks and the batch), read from PyTorch's own instrumentation:

- CPU: the profiler's memory events (`torch.profiler.profile(profile_memory=True)`): every
  allocation and free of the CPU allocator with its size, in order; the peak of their running
  sum over the step.
- CUDA: the caching allocator's `max_memory_allocated` after `reset_peak_memory_stats`,
  minus `memory_allocated` at the start of the step.

Both count bytes requested from PyTorch's allocator (tensor storage), not what the operating
system or the CUDA cache hands out around them. Each rule is measured on its second step (the
first may fill caches); the step is the loop's (`Trainer.train_step`: masks drawn into their
buffers, the rule's step, the momentum update), with "bp-autograd" (BP by autograd on the same
net, `autograd_bp_step`) and "pepita-streamed" (`streamed=True`) beside the registered rules.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as nnf

from ..config import IMAGE_SHAPES, INPUT_SIZES, N_CLASSES, RunConfig, preset
from ..data import TensorData
from ..devices import synchronize
from ..nets import forward_pass
from ..rules import get_rule
from ..training import Trainer

# what a step table measures: the registered rules plus two ways of running them
EXTRA_STEPS = {"bp-autograd": ("bp", {}), "pepita-streamed": ("pepita", {"streamed": True})}
STEP_ORDER = ("bp", "bp-autograd", "fa", "dfa", "drtp", "ff", "pepita", "pepita-streamed")


def step_names(model: str = "fc") -> list[str]:
    """The steps measured for `model`: every registered rule that takes it, BP by autograd,
    streamed PEPITA (registered rules outside STEP_ORDER last)."""
    from ..rules import rule_names

    names = [n for n in STEP_ORDER if n in EXTRA_STEPS or n in rule_names()]
    names += [n for n in rule_names() if n not in names]
    return [n for n in names if model == "fc" or get_rule(rule_of(n)).conv]


def rule_of(step: str) -> str:
    """The registered rule a step name runs."""
    return EXTRA_STEPS.get(step, (step, {}))[0]


def step_config(step: str, *, model: str = "fc", dataset: str = "mnist", hidden=(1024,),
                batch_size: int = 64, device: str = "cpu") -> RunConfig:
    """The paper's settings for `dataset` (its conv preset for model "conv") with `step`'s
    rule and options, `hidden` and `batch_size`; a rule's `paper_overrides` that change the
    net (FF's biases) are kept, its learning rate and batch are not (memory does not depend
    on them)."""
    rule, options = EXTRA_STEPS.get(step, (step, {}))
    name = {"fashion-mnist": "paper-fashion-mnist", "cifar10": "paper-cifar10",
            "cifar100": "paper-cifar100"}.get(dataset, "paper-mnist")
    net = {k: v for k, v in get_rule(rule).paper_overrides.items()
           if k in ("bias", "keep_prob")}
    return preset(name + ("-conv" if model == "conv" else ""), dataset=dataset, rule=rule,
                  batch_size=batch_size, device=device, epochs=1, lr=0.01,
                  hidden=tuple(hidden) if model == "fc" else (), **net, **options)


def random_batch_data(config: RunConfig, n_batches: int = 3, seed: int = 0) -> TensorData:
    """Inputs uniform in [0, 1] and random labels of the dataset's shape, `n_batches` batches
    (made on the CPU: no data files needed)."""
    d, C, B = INPUT_SIZES[config.dataset], N_CLASSES[config.dataset], config.batch_size
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n_batches * B, d, generator=g), torch.randint(0, C, (n_batches * B,),
                                                                    generator=g)
    return TensorData(config.dataset, x, y, x[:B], y[:B], IMAGE_SHAPES[config.dataset], C)


def autograd_bp_step(trainer: Trainer, x: Tensor, target: Tensor, masks, lr) -> Tensor:
    """BP by autograd on the loop's net: the forward pass with weights that require grad
    (views of the net's: no copy), mean cross-entropy per member, `torch.autograd.grad`,
    then the loop's momentum update `v = m v + lr g; W -= v`. Returns the loss."""
    net, m = trainer.net, trainer.base.momentum
    params = [p.detach().requires_grad_() for p in net.params()]
    n_w = len(net.weights)
    with torch.enable_grad():
        logits = forward_pass(params[:n_w], net.shape_input(x), masks,
                              params[n_w:] or None, pool=net.pool, softmax=False)[0][-1]
        loss = -(target * nnf.log_softmax(logits, -1)).sum(-1).mean(-1).sum()  # members' sum
        grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, v, g in zip(net.params(), trainer.velocity, grads):
            if g.dim() < p.dim():  # a fully connected bias: (K, out) -> (K, 1, out)
                g = g.view(p.shape)
            v.mul_(m).add_(g, alpha=lr)
            p.sub_(v)
    return loss.detach()


def prepared_step(step: str, config: RunConfig) -> tuple[Trainer, Callable[[], object]]:
    """A trainer for `config` on random data and a function making one training step of
    `step` on the next batch (a cycle of three)."""
    trainer = Trainer(config, random_batch_data(config), progress=False)
    B, data = config.batch_size, trainer.data
    batches = [(data.x_train[i:i + B], trainer.eye[data.y_train[i:i + B]])
               for i in range(0, data.x_train.shape[0], B)]
    state = {"i": 0}

    @torch.no_grad()
    def one_step():
        x, t = batches[state["i"] % len(batches)]
        state["i"] += 1
        if step == "bp-autograd":
            return autograd_bp_step(trainer, x, t, trainer.dropout_masks(B), config.lr)
        return trainer.train_step(x, t, config.lr)
    return trainer, one_step


def peak_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes of tensors allocated while `fn()` runs above those alive when it starts (its
    result counts: it is alive at the end); see the module's docstring."""
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        del result
        return int(torch.cuda.max_memory_allocated(device) - start)
    from torch.profiler import ProfilerActivity, profile

    with profiler_log_filtered():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            result = fn()
            del result
        return peak_of_events(prof)


# What the profiler's C++ side writes to fd 2 and nobody can act on: Kineto's stage and USDT
# trace points; the allocator's note that a block made before the step was freed during it
# (the peak is by definition above what was alive at the start: such frees are not counted);
# and, on a CUDA build of torch without a GPU, Kineto's probe for one.
_KINETO_CHATTER = re.compile(r"^(USDT|STAGE|INFO|VERBOSE):\S* \S+ \S+ \S+\] |^\[W.*\] Memory "
                             r"block of unknown size was allocated before the profiling started")
_NO_GPU_PROBE = re.compile(r"^ERROR:.*\] gpuGetDeviceCount failed with code \d+$")


@contextlib.contextmanager
def profiler_log_filtered():
    """Run the block with fd 2 caught in a file, then write back to stderr every line but the
    profiler's own chatter (`_KINETO_CHATTER`) and, when torch sees no GPU, its failed GPU
    probe: real errors still reach the user, the noise does not. (Kineto reads its log level
    once per process, so an environment variable would not help after the first profile.)"""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 to catch: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            no_gpu = not torch.cuda.is_available()
            kept = [line for line in caught.read().decode(errors="replace").splitlines()
                    if not _KINETO_CHATTER.match(line)
                    and not (no_gpu and _NO_GPU_PROBE.match(line))]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def peak_of_events(prof) -> int:
    """The peak of the running sum of a profiler's CPU memory events (bytes; frees are
    negative), in the order they happened."""
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    alive = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):  # stable: ties keep their order
        alive += e.nbytes()
        peak = max(peak, alive)
    return int(peak)


def measure_step(step: str, config: RunConfig) -> dict:
    """Peak step memory (bytes, `peak_bytes`) and multiply-adds counted by
    `torch.utils.flop_counter.FlopCounterMode` (`flops.count_macs`) of `step` with `config`,
    each on a step after a warm-up one."""
    from .flops import count_macs

    trainer, one_step = prepared_step(step, config)
    one_step()  # warm-up: lazily made buffers and caches are not the step's
    peak = peak_bytes(one_step, trainer.device)
    macs = count_macs(one_step)
    return {"step": step, "rule": config.rule, "peak_bytes": peak, "macs_counted": macs}


def model_cost(step: str, config: RunConfig):
    """The cost model (`analysis.step_cost` / `conv_step_cost`, a `rules.Cost`) of `step` with
    `config`. BP by autograd: BP's model plus one float per weight, the gradients autograd
    returns whole before the momentum update (the loop's BP folds each layer's product
    straight into its momentum buffer instead)."""
    import math

    from ..analysis import _conv_layers, conv_step_cost, step_cost
    from ..rules import Cost

    rule, options = EXTRA_STEPS.get(step, (step, {}))
    options = dict(options, output_error=config.output_error) if rule == "pepita" else options
    C, B = N_CLASSES[config.dataset], config.batch_size
    if config.model == "conv":
        conv = (IMAGE_SHAPES[config.dataset], config.conv_channels, config.kernel_size,
                config.pool, config.hidden, C)
        cost = conv_step_cost(rule, *conv, B, **options)
        n_weights = sum(_conv_layers(*conv)[2])
    else:
        sizes = [INPUT_SIZES[config.dataset], *config.hidden, C]
        cost = step_cost(rule, sizes, B, **options)
        n_weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    if step == "bp-autograd":
        floats = cost.activation_floats + n_weights
        cost = Cost(cost.macs, floats, 4 * floats)
    assert math.isfinite(cost.macs)
    return cost


def step_time(step: str, config: RunConfig, *, steps: int = 30, warmup: int = 5) -> float:
    """Median wall time in seconds of one step of `step` (`prepared_step`: BP by autograd as
    well as the loop's rules), synchronised around each step, after `warmup` steps."""
    import time

    trainer, one_step = prepared_step(step, config)
    times = []
    for _ in range(warmup + steps):
        synchronize(trainer.device)
        start = time.perf_counter()
        one_step()
        synchronize(trainer.device)
        times.append(time.perf_counter() - start)
    return float(torch.tensor(times[warmup:]).median())


def cost_rows(*, model: str = "fc", dataset: str = "mnist", hidden=(1024,),
              batch_size: int = 64, device: str = "cpu", steps=None,
              timed: bool = False) -> list[dict]:
    """For each step of `step_names(model)` (or `steps`): modelled and counted multiply-adds,
    modelled activation memory and the measured peak step memory (bytes), one row each; with
    `timed`, the median step time too (`step_s`, `step_time`). `bench.memory_table.cost_table`
    makes the table people read from them."""
    rows = []
    for step in steps or step_names(model):
        config = step_config(step, model=model, dataset=dataset, hidden=hidden,
                             batch_size=batch_size, device=device)
        measured, cost = measure_step(step, config), model_cost(step, config)
        rows.append({"step": step, "model": model, "hidden": "x".join(map(str, config.hidden)),
                     "batch_size": batch_size, "macs_model": cost.macs,
                     "macs_counted": measured["macs_counted"],
                     "bytes_model": cost.activation_bytes,
                     "peak_bytes_measured": measured["peak_bytes"],
                     "device": torch.device(device).type})
        if timed:
            rows[-1]["step_s"] = step_time(step, config)
    return rows


__all__ = ["cost_rows", "model_cost", "peak_bytes", "peak_of_events", "profiler_log_filtered",
           "measure_step", "step_time", "prepared_step", "step_config", "step_names", "rule_of",
           "autograd_bp_step", "random_batch_data", "EXTRA_STEPS", "STEP_ORDER"]
