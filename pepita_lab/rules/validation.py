"""The one door into training: `validate(config)` checks every field (`config.check_fields`)
and what needs the registered rules: the rule's name, whether it takes conv nets, and the
options only some rules read (a value a rule would ignore is refused, naming the rules that
read it). It lives beside the registry so that `config` imports nothing above it."""

from __future__ import annotations

import dataclasses

from ..config import ConfigError, RunConfig, check_fields, field_default
from .base import get_rule, rule_names


def validate(cfg: RunConfig) -> RunConfig:
    """`cfg` checked and normalised (tuples, floats) for training, or ConfigError naming the
    field, the value and what is allowed."""
    if not isinstance(cfg, RunConfig):
        raise ConfigError(f"config={cfg!r:.60} is not allowed: expected a RunConfig")
    if cfg.rule not in rule_names():
        raise ConfigError(f"rule={cfg.rule!r} is not allowed: expected one of "
                          f"{', '.join(rule_names())}")
    check_fields(cfg)
    rule = get_rule(cfg.rule)
    if cfg.model == "conv" and not rule.conv:
        _fail("rule", cfg.rule, "this rule takes fully connected nets only (model='fc')")
    for f in dataclasses.fields(cfg):
        if (f.metadata["rule_option"] and f.name not in rule.options
                and getattr(cfg, f.name) != field_default(f.name)):
            takes = [n for n in rule_names() if f.name in get_rule(n).options]
            _fail(f.name, getattr(cfg, f.name), f"rule {cfg.rule!r} does not read it (an "
                  f"option of {', '.join(takes) or 'no registered rule'}); leave it at "
                  f"{field_default(f.name)!r}")
    refusal = rule.refusal(cfg)
    if refusal is not None:
        raise ConfigError(refusal)
    return cfg


def _fail(name: str, value, allowed: str):
    raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")
