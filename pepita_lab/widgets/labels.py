"""The explorer's run names: what tells overlaid runs apart (rule, modulation, options)."""

from __future__ import annotations

import xarray as xr

from ..config import field_default
from ..rules import get_rule, rule_names
from .controls import OPTION_FIELDS, read_by

# How an option that differs from its default is named in a legend (value -> words).
SHORT = {"weight_mirroring": lambda v: "mirroring", "normalize": lambda v: "normalised",
         "f_distribution": lambda v: f"F {v}", "pepita_variant": lambda v: f"{v} update",
         "init": lambda v: f"init {v}", "weight_decay": lambda v: f"wd={float(v):g}",
         "momentum_style": lambda v: f"{v} momentum", "output_error": lambda v: f"{v} e_out",
         "ff_threshold": lambda v: f"threshold={float(v):g}",
         "premirror_epochs": lambda v: f"pre-mirroring {int(v)}"}


def run_label(history: xr.Dataset, number: int) -> str:
    """'#2 pepita x-Fe F=0.05 lr=0.01 h=1024x1024 mirroring F factorised': the run's number,
    rule, its modulation and F scale when the rule reads F, lr, widths, and every option the
    rule reads that is not at its default."""
    h = history.isel(run=0)
    value = lambda k: h[k].item() if k in h.coords else field_default(k)  # noqa: E731
    rule = str(value("rule"))
    parts = [f"#{number}", rule]
    reads_f = rule in rule_names() and get_rule(rule).reads_F
    if reads_f:
        parts += ["x-Fe" if float(value("sign")) < 0 else "x+Fe", f"F={float(value('f_scale')):.3g}"]
    parts += [f"lr={float(value('lr')):.3g}", f"h={value('hidden')}"]
    mirroring = bool(value("weight_mirroring"))
    for k in (*OPTION_FIELDS, "output_error"):
        if k in SHORT and rule in rule_names() and read_by(rule, k, mirroring) and _differs(
                value(k), field_default(k)):
            parts.append(SHORT[k](value(k)))
    return " ".join(parts)


def _differs(a, b) -> bool:
    try:
        return float(a) != float(b)
    except (TypeError, ValueError):
        return str(a) != str(b)


def percent(accuracy: float) -> str:
    """An accuracy as the charts show it: '73.66 %'."""
    return f"{100 * accuracy:.2f} %"


def plural(n: int, word: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n} {word}" + ("" if n == 1 else "s")
