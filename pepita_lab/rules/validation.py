"""The one door into training: `resolve(config)` makes a config (checked when it was made:
`RunConfig`) the config that trains. It puts the rule's own settings in every training field
the user did not set (`settings.with_rule_settings`), then refuses what needs the registered
rules (`validate`: the rule's name, whether it takes conv nets, the options only some rules
read, the rule's own refusal) and, for several configs, what cannot train as one population.
`pepita_lab.train`, the CLI, the explorer, sweeps and `reproduce` all resolve through it; the
machine's memory is the one check made later (`preflight`). It lives beside the registry so
that `config` imports nothing above it."""

from __future__ import annotations

import dataclasses

from ..config import MEMBER_FIELDS, ConfigError, RunConfig, field_default
from ..config.names import nearest
from .interface import get_rule, rule_names


def resolve(config: RunConfig | dict | list) -> RunConfig | list[RunConfig]:
    """`config` as it trains: the rule's own settings where the user set none, the rules'
    refusals and (for a list: one population) the population's; ConfigError naming the field
    otherwise. Resolving a resolved config changes nothing."""
    if isinstance(config, (list, tuple)):
        configs = [resolve_and_say(c)[0] for c in config]
        check_population(configs)
        return configs
    return resolve_and_say(config)[0]


def resolve_and_say(config: RunConfig | dict) -> tuple[RunConfig, dict]:
    """`resolve` of one config, and the rule's own settings it took (field: value; what the
    CLI and the explorer say: `settings.describe`)."""
    from .defaults import with_rule_settings

    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    if not isinstance(config, RunConfig):
        raise ConfigError(f"config={type(config).__name__} is not allowed: expected a "
                          "RunConfig (pepita_lab.preset(...) or RunConfig(...)) or a dict of "
                          "its fields")
    _check_rule_name(config.rule)
    config, taken = with_rule_settings(config)
    return validate(config), taken


def validate(cfg: RunConfig) -> RunConfig:
    """`cfg` if the rules take it as it is (no rule settings put in: `resolve` does that), or
    ConfigError naming the field, the value and what is allowed."""
    if not isinstance(cfg, RunConfig):
        raise ConfigError(f"config={type(cfg).__name__} is not allowed: expected a RunConfig")
    _check_rule_name(cfg.rule)
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


def shared_settings(config: RunConfig) -> dict:
    """The settings members of one population must share."""
    return {k: v for k, v in config.identity().items() if k not in MEMBER_FIELDS}


def check_population(configs: list[RunConfig]) -> None:
    """ConfigError unless `configs` can train as one population."""
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
    if not get_rule(base.rule).populations:
        raise ConfigError(f"rule={base.rule!r} is not available for populations: train its "
                          "runs one at a time (pepita_lab.train)")


def _check_rule_name(name: str) -> None:
    names = rule_names()
    if name not in names:
        guess = nearest(name, names)
        hint = f"did you mean {guess!r}? " if guess is not None and guess != name else ""
        _fail("rule", name, f"{hint}expected one of {', '.join(names)}")


def _fail(name: str, value, allowed: str):
    raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")
