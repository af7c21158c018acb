"""Settings that cannot learn, said before a run (`unlearnable`) and after it (`outcome`).

Before: combinations that leave the net untrained or that the docs measured as unstable
(weight mirroring whose pre-mirroring epochs take the whole run, or with the paper's x + F e;
two mirrored layers or three PEPITA layers at lr 0.1; normalised activations at a small lr; an
lr far above the rule's own). They are warnings, not refusals: the run may still be wanted.
After: a completed run whose test accuracy ends at chance, or at or below the untrained
net's, did not learn; that is said (with the likely cause) in the explorer's status, the
CLI's last lines and the run's record (`outcome_attrs`), apart from divergence, which stops
a run.
"""

from __future__ import annotations

from .config import RunConfig
from .rules import rule_names
from .rules.defaults import own_settings

# A run "ends at chance" below this multiple of 1 / classes: a net that predicts one class
# scores the frequency of that class (MNIST's test set: 8.9 % to 11.4 %).
CHANCE_FACTOR = 1.5
# Less than this gain over the untrained net (epoch 0) is no learning (half a point: the
# sampling noise of an accuracy near 50 % on 10000 test images).
NO_GAIN = 0.005
# An lr this many times the rule's own: FF at 0.1 (100x) stays at chance, DRTP at 0.1 (100x)
# diverges within its first epoch; both learn at 10x or less (FF at 0.005: 77 % in 2 epochs).
LR_RATIO = 30


def unlearnable(cfg: RunConfig) -> list[str]:
    """Why `cfg` is unlikely to learn, one sentence each (empty when nothing is known)."""
    found = []
    mirroring = cfg.rule == "pepita" and cfg.weight_mirroring
    if mirroring and cfg.premirror_epochs >= cfg.epochs:
        found.append(f"pre-mirroring takes {cfg.premirror_epochs} of the {cfg.epochs} epochs: "
                     "the forward weights never train (set pre-mirroring epochs below epochs)")
    if mirroring and cfg.sign > 0:
        found.append("weight mirroring with x + F e: mirroring turns F towards the forward "
                     "weights, so the hidden layers learn uphill; it needs x - F e (sign -1, "
                     "docs/after-the-paper.md)")
    if mirroring and len(cfg.hidden) >= 2 and cfg.lr >= 0.1:
        found.append(f"weight mirroring on {len(cfg.hidden)} hidden layers at lr {cfg.lr:g}: "
                     "two mirrored layers diverged at lr 0.1 within 5 epochs (notebook 07 "
                     "uses 0.01)")
    if (cfg.rule == "pepita" and cfg.model == "fc" and not cfg.normalize
            and len(cfg.hidden) >= 3 and cfg.lr >= 0.1):
        found.append(f"PEPITA with {len(cfg.hidden)} hidden layers at lr {cfg.lr:g} can "
                     "collapse to chance in its first epochs (notebook 06); try lr 0.01")
    if cfg.normalize and cfg.lr < 1:
        found.append(f"normalised activations at lr {cfg.lr:g}: their updates are about "
                     "1 / sqrt(batch x width) of the raw ones, so the lr has to be far larger "
                     "(the deeper-net table uses 5)")
    own_lr = _own_lr(cfg.rule)
    if own_lr is not None and cfg.lr >= LR_RATIO * own_lr:
        found.append(f"lr {cfg.lr:g} is {cfg.lr / own_lr:.0f}x {cfg.rule}'s own ({own_lr:g}): "
                     f"that far above it {cfg.rule} stays at chance or diverges")
    return found


def outcome(cfg: RunConfig, test_acc, n_classes: int) -> str | None:
    """None if the run learned; else what its test accuracy (`test_acc`, one value per epoch
    from epoch 0, the untrained net) did and the likely cause. Only runs with a trained epoch
    are judged."""
    acc = [float(a) for a in test_acc]
    if len(acc) < 2:
        return None
    final, untrained, chance = acc[-1], acc[0], 1.0 / n_classes
    if final < CHANCE_FACTOR * chance:
        what = f"ended at chance ({final:.1%}; chance {chance:.1%})"
    elif final < untrained + NO_GAIN:
        what = (f"ended at or below its untrained accuracy ({final:.1%} after training, "
                f"{untrained:.1%} at epoch 0)")
    else:
        return None
    return f"did not learn: {what}; likely cause: {likely_cause(cfg)}"


def likely_cause(cfg: RunConfig) -> str:
    """The first known reason `cfg` cannot learn, else the usual suspects."""
    reasons = unlearnable(cfg)
    if reasons:
        return reasons[0]
    own_lr = _own_lr(cfg.rule)
    if own_lr is not None and cfg.lr > own_lr:
        return f"lr {cfg.lr:g} above {cfg.rule}'s own ({own_lr:g})"
    return (f"the lr ({cfg.lr:g})" + (f" or F scale ({cfg.f_scale:g})" if cfg.rule == "pepita"
                                      else "") + " too large (or too small) for these settings")


def outcome_attrs(cfg: RunConfig, test_acc, n_classes: int) -> dict:
    """The record of `outcome` (netCDF-safe): `learned` "no" and `not_learned` the sentence,
    or nothing when the run learned."""
    said = outcome(cfg, test_acc, n_classes)
    return {} if said is None else {"learned": "no", "not_learned": said}


def _own_lr(rule: str) -> float | None:
    """The lr rule `rule` declares (None: the paper's, or a rule `validate` will refuse)."""
    return own_settings(rule).get("lr") if rule in rule_names() else None
