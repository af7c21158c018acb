"""The paper's settings as named presets (`preset`, the one function that makes a config from
a preset). A rule's own settings go into the fields the preset's user did not set when the
config is resolved for training (`pepita_lab.resolve`), as for any config."""

from __future__ import annotations


from .facts import ConfigError
from .names import unknown_name
from .run import RunConfig


PRESETS: dict[str, dict] = {
    "paper-mnist": dict(dataset="mnist", hidden=(1024,), lr=0.1, batch_size=64, epochs=100,
                        lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
    "paper-fashion-mnist": dict(dataset="fashion-mnist", hidden=(1024,), lr=0.1, batch_size=64,
                                epochs=100, lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
    "paper-cifar10": dict(dataset="cifar10", hidden=(1024,), lr=0.01, batch_size=64, epochs=100,
                          lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
    # The paper does not state CIFAR-100's learning rate; 0.01 as for CIFAR-10 (docs/pepita.md).
    "paper-cifar100": dict(dataset="cifar100", hidden=(1024,), lr=0.01, batch_size=64, epochs=100,
                           lr_milestones=(60, 90), keep_prob=0.9, f_scale=0.05),
}


# The paper's conv net (the ICML code's Net1conv1fcXL): 32 filters 5x5, ReLU, max-pool 2, then
# the output layer; PyTorch default init, lr 0.01, batch 50, no dropout, no lr decay; the last
# layer learns from the first pass's error as in the ICML conv code. The conv layer learns by
# the rule's convolutional form, not the ICML code's scaling (docs/conv.md says why).
_PAPER_CONV = dict(model="conv", conv_channels=(32,), kernel_size=5, pool=2, hidden=(), lr=0.01,
                   batch_size=50, epochs=100, lr_milestones=(), keep_prob=1.0, f_scale=0.05,
                   output_error="clean", conv_update="rule")
PRESETS.update({f"{name}-conv": dict(_PAPER_CONV, dataset=PRESETS[name]["dataset"])
                for name in ("paper-mnist", "paper-fashion-mnist", "paper-cifar10",
                             "paper-cifar100")})


def preset(name: str, **overrides) -> RunConfig:
    """Preset `name` (`PRESETS`: the paper's settings) with `overrides` on top. The overrides
    count as set by you (`RunConfig.set_fields`); the preset's own values are the paper's
    PEPITA settings, so training resolves a rule's own settings over them
    (`pepita_lab.resolve`): `preset("paper-mnist", rule="ff")` trains FF as FF trains (lr
    0.001, ...), `preset(..., rule="ff", lr=0.01)` at lr 0.01."""
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r} is unknown; allowed: {', '.join(PRESETS)}")
    names = [f for f in RunConfig.__dataclass_fields__]
    for key in overrides:
        if key not in names:
            raise unknown_name(key, f"preset {name!r}", names)
    return RunConfig(**{**PRESETS[name], **overrides}).with_set_fields(overrides)
