"""A rule's own settings: what it is usually trained with, applied wherever the rule is chosen
and the user has not set them.

Each rule declares `Rule.trained_with`, the training settings (fields of `TRAINING_FIELDS`)
where it departs from the paper's preset for the dataset (PEPITA, BP, FA and DFA declare none: the
paper's settings are theirs). `rule_settings` is the whole of them for a dataset and model.
`with_rule_settings` puts a rule's own into a config, leaving every field the user set alone
(`RunConfig.set_fields`; a preset's own values are the paper's PEPITA settings, not the
user's); `rules.resolve`, the one door into training, goes through it, and the explorer's
rule dropdown through `switched_settings`. A run records which of its settings are its rule's
own (`settings_attrs`, attributes of its history).
"""

from __future__ import annotations

from ..config import PRESETS, RunConfig, field_default
from .interface import get_rule, rule_names

# The settings a rule may declare: how it trains, never what it trains on or its net's shape.
TRAINING_FIELDS = ("lr", "batch_size", "weight_decay", "bias", "keep_prob", "lr_milestones",
                   "lr_gamma", "momentum", "feedback_scale")


def paper_settings(dataset: str = "mnist", model: str = "fc") -> dict:
    """The paper's training settings for `dataset` and `model` (its preset; a dataset without
    one, as synthetic data, takes MNIST's), every field of `TRAINING_FIELDS`."""
    name = f"paper-{dataset}" if f"paper-{dataset}" in PRESETS else "paper-mnist"
    values = PRESETS[name + ("-conv" if model == "conv" else "")]
    return {k: values.get(k, field_default(k)) for k in TRAINING_FIELDS}


def own_settings(rule: str) -> dict:
    """The settings rule `rule` declares (where it departs from the paper's)."""
    settings = dict(get_rule(rule).trained_with)
    unknown = sorted(set(settings) - set(TRAINING_FIELDS))
    if unknown:
        raise ValueError(f"rule {rule!r} declares settings {unknown}: a rule's settings are "
                         f"among {', '.join(TRAINING_FIELDS)}")
    return settings


def rule_settings(rule: str, dataset: str = "mnist", model: str = "fc") -> dict:
    """Every training setting rule `rule` is usually trained with on `dataset` and `model`:
    the paper's, with the rule's own on top."""
    return {**paper_settings(dataset, model), **own_settings(rule)}


def with_rule_settings(cfg: RunConfig) -> tuple[RunConfig, dict]:
    """`cfg` with its rule's own settings in every field the user did not set
    (`RunConfig.set_fields`), and those it took (field: value; empty for a rule with the
    paper's). The rest of `cfg` (a preset, or the defaults: the paper's MNIST settings) stays,
    and so do its set fields: taking them again changes nothing."""
    if cfg.rule not in rule_names():  # refused by `validate`, which names the known ones
        return cfg, {}
    taken = {k: v for k, v in own_settings(cfg.rule).items() if k not in cfg.set_fields}
    return cfg.replace(**taken).with_set_fields(cfg.set_fields), taken


def switched_settings(rule: str, base: RunConfig) -> dict:
    """The training settings when `rule` replaces `base`'s rule (the explorer's dropdown):
    `rule`'s own, and elsewhere `base`'s values, but the paper's where those were the own
    settings of `base`'s rule (from FF back to PEPITA: lr 0.1 again, not FF's 0.001)."""
    paper, owned = paper_settings(base.dataset, base.model), own_settings(base.rule)
    background = {k: paper[k] if k in owned else getattr(base, k) for k in TRAINING_FIELDS}
    return {**background, **own_settings(rule)}


def describe(taken: dict, rule: str) -> str:
    """One line on the settings a run took from its rule ('' if none)."""
    if not taken:
        return ""
    shown = ", ".join(f"{k}={_value(v)}" for k, v in taken.items())
    return f"{rule}'s own settings: {shown} (a flag or control you set wins over them)"


def settings_attrs(cfg: RunConfig) -> dict:
    """What a run's record says about its rule's own settings (netCDF-safe strings):
    `rule_settings`, those of them the run has ("lr=0.001 bias=True ..."), and
    `rule_settings_overridden`, those it changed ("lr=0.01 (ff's: 0.001)"); empty for a
    rule that declares none."""
    own = own_settings(cfg.rule)
    kept = {k: v for k, v in own.items() if _same(getattr(cfg, k), v)}
    changed = {k: v for k, v in own.items() if k not in kept}
    attrs = {}
    if kept:
        attrs["rule_settings"] = " ".join(f"{k}={_value(v)}" for k, v in kept.items())
    if changed:
        attrs["rule_settings_overridden"] = " ".join(
            f"{k}={_value(getattr(cfg, k))} ({cfg.rule}'s: {_value(v)})"
            for k, v in changed.items())
    return attrs


def _same(a, b) -> bool:
    return tuple(a) == tuple(b) if isinstance(a, (tuple, list)) else a == b


def _value(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else f"{v:g}" if isinstance(
        v, float) else str(v)
