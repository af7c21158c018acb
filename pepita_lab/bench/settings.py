"""What the bench measures: the shapes (dataset, batch size) and the net, the rules timed as
steps, as whole epochs and on the conv net, the population sizes, the learning rate, and the
settings of one benchmark (`_settings`: repeats, block time, epoch sizes...).
"""

from __future__ import annotations

import torch

from ..config import ConfigError

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
    from ..rules import get_rule, rule_names

    rows = {name: (get_rule(name).label, name) for name in rule_names()}
    key, label, rule = AUTOGRAD_BP
    return {"pepita": rows.pop("pepita"), key: (label, rule), **rows}


def conv_rules() -> list[str]:
    """The registered rules that take conv layers."""
    from ..rules import get_rule, rule_names

    return [name for name in rule_names() if get_rule(name).conv]


# Population sizes K timed for PEPITA on the paper's MNIST net at batch 64.
POPULATION_SIZES = {"quick": (1, 4), "cpu": (1, 4, 16), "cuda": (1, 16, 64, 256)}
# The work of a step does not depend on the learning rate, but the values do: at the paper's
# rates, training random labels on uniform inputs saturates the softmax within an epoch (PEPITA
# at 0.1) or grows the weights without bound (DRTP), and the loop stops a "diverged" epoch early.
BENCH_LR = 1e-3


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


def _min_run_time(s: dict) -> float:
    """Seconds a measurement of settings `s` times (after its warm-up and calibration)."""
    return s["repeats"] * s["block_seconds"]
