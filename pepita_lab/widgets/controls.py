"""The explorer's controls, to and from a RunConfig: a widget per setting starting at a base
config's value (`make_controls`, with the ICLR 2024 PEPITA and Forward-Forward options of
`option_controls`), and the config they show (`config_from_controls`, validated by
`rules.validate`).
"""

from __future__ import annotations

import dataclasses

import ipywidgets as W

from ..config import (DATASETS, F_DISTRIBUTIONS, INITS, MOMENTUM_STYLES, PEPITA_VARIANTS,
                      RunConfig, field_default)
from ..rules import get_rule, rule_names, validate

WIDTHS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]
MAX_DEPTH = 4
# Room for the longest control label ("subset (0 = all)"): ipywidgets' default cuts it.
STYLE = {"description_width": "110px"}
CONTROL_WIDTH = "290px"  # the column holding "subset (0 = all)"
# The explorer's three columns (with the options) fit the output area of a notebook panel of
# about 950 px (about 860 px beside the prompts): each column's labels as wide as its longest
# (`column_style`), the others narrower.
COLUMN_STYLES = {"left": ("80px", "262px"), "right": ("110px", CONTROL_WIDTH),
                 "options": ("100px", "262px")}
# The follow-up's options (ICLR 2024 PEPITA) and Forward-Forward's: a third column of
# controls with `Explorer(options=True)`.
OPTION_FIELDS = ("weight_decay", "momentum_style", "normalize", "init", "pepita_variant",
                 "f_distribution", "weight_mirroring", "mirror_lr", "premirror_epochs",
                 "ff_threshold", "streamed")
# Controls only rules that read F take (not `rule_option` fields: other rules accept and
# ignore them), and those that matter only with weight mirroring ticked.
F_FIELDS = ("f_scale", "sign", "output_error", "f_distribution")
MIRROR_FIELDS = ("mirror_lr", "premirror_epochs")


def read_by(rule: str, name: str, mirroring: bool = False) -> bool:
    """Whether rule `rule` reads the setting of control `name` (with weight mirroring ticked
    or not): F's settings only rules that read F, a `rule_option` field only the rules that
    list it in `Rule.options`, the mirroring settings only while mirroring."""
    r = get_rule(rule)
    if name in F_FIELDS:
        return r.reads_F
    if name in MIRROR_FIELDS:
        return "weight_mirroring" in r.options and mirroring
    if name in _RULE_OPTIONS:
        return name in r.options
    return True


_RULE_OPTIONS = {f.name for f in dataclasses.fields(RunConfig) if f.metadata["rule_option"]}


def _with_rules_values(name: str, values) -> list:
    """`values` and every rule's own value of setting `name`, so the rule dropdown can set it."""
    own = {get_rule(r).trained_with[name] for r in rule_names()
           if name in get_rule(r).trained_with}
    return sorted(set(values) | own)


def make_controls(base: RunConfig, max_depth: int) -> dict[str, W.Widget]:
    """A control per setting the explorer shows, each starting at `base`'s value: rule,
    dataset, F scale, lr, depth and a width per layer (up to `max_depth`), batch, epochs,
    seed, modulation sign, last layer's error, keep prob, subset, and the options of
    `option_controls`."""
    log = dict(base=10, step=0.05, continuous_update=False, readout_format=".3g",
               style=STYLE)
    styled = dict(style=STYLE)
    c = {
        "rule": W.Dropdown(options=rule_names(), value=base.rule, description="rule",
                           **styled),
        "dataset": W.Dropdown(options=DATASETS, value=base.dataset, description="dataset",
                              **styled),
        "f_scale": W.FloatLogSlider(value=base.f_scale, min=-3, max=1,
                                    description="F scale", **log),
        "lr": W.FloatLogSlider(value=base.lr, min=-4, max=0, description="lr", **log),
        "depth": W.IntSlider(value=len(base.hidden), min=1, max=max_depth,
                             description="depth", continuous_update=False, **styled),
        "batch_size": W.Dropdown(options=_with_rules_values("batch_size", {
                                     16, 32, 50, 64, 128, 256, 512, base.batch_size}),
                                 value=base.batch_size, description="batch", **styled),
        "epochs": W.IntSlider(value=base.epochs, min=1, max=100, description="epochs",
                              continuous_update=False, **styled),
        "seed": W.IntText(value=base.seed, description="seed", **styled),
        "sign": W.ToggleButtons(options=[("x + F e", 1.0), ("x - F e", -1.0)],
                                value=base.sign, description="modulation",
                                style={**STYLE, "button_width": "78px"}),
        # a dropdown: two toggle buttons' "modulated" would be cut in the narrow column
        "output_error": W.Dropdown(options=["modulated", "clean"], value=base.output_error,
                                   description="last layer", **styled),
        "keep_prob": W.FloatSlider(value=base.keep_prob, min=0.5, max=1.0, step=0.05,
                                   description="keep prob", continuous_update=False,
                                   **styled),
        "subset": W.IntText(value=base.subset or 0, description="subset (0 = all)",
                            **styled),
    }
    c.update(option_controls(base))
    for l in range(max_depth):
        width = base.hidden[l] if l < len(base.hidden) else base.hidden[-1]
        options = sorted(set(WIDTHS) | {width})
        c[f"width_{l + 1}"] = W.SelectionSlider(options=options, value=width,
                                                description=f"width {l + 1}",
                                                continuous_update=False, **styled)
    for control in c.values():
        control.layout.width = CONTROL_WIDTH
    c["sign"].add_class("widget-inline-hbox")  # label beside the buttons, like the others
    return c


def option_controls(base: RunConfig) -> dict[str, W.Widget]:
    """The ICLR 2024 PEPITA options and FF's threshold (shown with `options=True`)."""
    styled = dict(style=STYLE)
    decays = _with_rules_values("weight_decay", {0.0, 1e-5, 1e-4, 1e-3, 1e-2,
                                                 base.weight_decay})
    return {
        "weight_decay": W.Dropdown(options=[(f"{v:g}", v) for v in decays],
                                   value=base.weight_decay, description="weight decay",
                                   **styled),
        "momentum_style": W.Dropdown(options=MOMENTUM_STYLES, value=base.momentum_style,
                                     description="momentum", **styled),
        "normalize": W.Checkbox(value=base.normalize, description="normalise activations",
                                indent=False),
        "init": W.Dropdown(options=INITS, value=base.init, description="init", **styled),
        "pepita_variant": W.Dropdown(options=PEPITA_VARIANTS, value=base.pepita_variant,
                                     description="PEPITA update", **styled),
        "f_distribution": W.Dropdown(options=F_DISTRIBUTIONS, value=base.f_distribution,
                                     description="F", **styled),
        "weight_mirroring": W.Checkbox(value=base.weight_mirroring,
                                       description="weight mirroring (factorised F)",
                                       indent=False),
        "mirror_lr": W.FloatLogSlider(value=base.mirror_lr, min=-3, max=0, step=0.25,
                                      description="mirror lr", continuous_update=False,
                                      readout_format=".3g", **styled),
        "premirror_epochs": W.IntSlider(value=base.premirror_epochs, min=0, max=5,
                                        description="pre-mirroring", continuous_update=False,
                                        **styled),
        "ff_threshold": W.FloatSlider(value=base.ff_threshold, min=0.1, max=4.0, step=0.1,
                                      description="FF threshold", continuous_update=False,
                                      **styled),
        # PEPITA's streamed step: the same weights, less memory (docs/memory.md)
        "streamed": W.Checkbox(value=base.streamed, description="streamed step (PEPITA)",
                               indent=False),
    }


def column_style(controls: dict[str, W.Widget], names, column: str) -> list[W.Widget]:
    """The controls `names`, styled for explorer column `column` (`COLUMN_STYLES`)."""
    label, width = COLUMN_STYLES[column]
    for name in names:
        if hasattr(controls[name].style, "description_width"):
            controls[name].style.description_width = label
        controls[name].layout.width = width
    return [controls[name] for name in names]


def show_widths(controls: dict[str, W.Widget], max_depth: int) -> None:
    """Show the width sliders of the layers the depth slider asks for, hide the others."""
    for l in range(max_depth):
        shown = l < controls["depth"].value
        controls[f"width_{l + 1}"].layout.display = None if shown else "none"


def config_from_controls(controls: dict[str, W.Widget], base: RunConfig) -> RunConfig:
    """The config the controls show: `base` with their values, but for the controls the
    chosen rule does not read (`read_by`: hidden), which keep `base`'s value (a rule option:
    its default); raises ConfigError for a bad combination."""
    c = controls
    depth = c["depth"].value
    values = {k: c[k].value for k in ("rule", "dataset", "f_scale", "lr", "batch_size",
                                      "epochs", "seed", "sign", "output_error",
                                      "keep_prob")}
    values["hidden"] = tuple(c[f"width_{l + 1}"].value for l in range(depth))
    values["subset"] = c["subset"].value or None
    values.update({k: c[k].value for k in OPTION_FIELDS})
    if values["rule"] in rule_names():  # an unknown rule: validate names it
        mirroring = bool(values["weight_mirroring"])
        for k in list(values):
            if k in c and not read_by(values["rule"], k, mirroring):
                values[k] = field_default(k) if k in _RULE_OPTIONS else getattr(base, k)
    if values["weight_mirroring"] and values["f_distribution"] != "factorised":
        values["f_distribution"] = "factorised"  # the checkbox says so: it needs one
        c["f_distribution"].value = "factorised"
    return validate(dataclasses.replace(base, **values))
