"""Learning rules: pure functions on a bias-free net (conv layers, then fully connected ones)
and, for each, one registered `Rule` object that the rest of the lab reads by name.

Pure functions (the contract outside checks call): `pepita_updates`, `bp_updates`, `fa_updates`,
`dfa_updates`, `drtp_updates` (Forward-Forward, whose inputs carry the label: `ff_factors`,
`ff_scores`). Each returns the batch-mean updates `dW` applied as
`W -= lr * dW`. Their readable per-sample forms are in `rules.reference`. A rule of your own
lives in your own module: `from pepita_lab.rules import Rule, register_rule`, then
`register_rule(MyRule)` (or `@register_rule`, or an entry point in the group `pepita_lab.rules`;
docs/adding-a-rule.md); nothing inside this package is edited.
"""

from __future__ import annotations

from ..nets import forward, forward_pass
from .backprop import Backprop, bp_factors, bp_updates, chain_factors
from .base import (ENTRY_POINT_GROUP, Cost, Rule, StepState, get_rule, load_entry_points,
                   register, rule_names, unregister)
from .common import relu_grad
from .common import Factors, one_hot, updates_from_factors
from .drtp import DRTP, drtp_factors, drtp_updates
from .forward_forward import ForwardForward, ff_factors, ff_scores
from .feedback_alignment import (DirectFeedbackAlignment, FeedbackAlignment, dfa_factors,
                                 dfa_updates, fa_factors, fa_updates)
from .pepita import CONV_UPDATES, pepita_factors, pepita_updates
from .pepita_fast import FirstLayerFeedback
from .pepita_options import pepita_options_factors
from .pepita_rule import Pepita
from .validation import resolve, validate

register(Pepita())
register(Backprop())
register(FeedbackAlignment())
register(DirectFeedbackAlignment())
register(DRTP())
register(ForwardForward())
register_rule = register  # the name the package's top level exports

__all__ = ["pepita_updates", "bp_updates", "fa_updates", "dfa_updates", "drtp_updates",
           "pepita_factors", "pepita_options_factors", "bp_factors", "fa_factors", "dfa_factors", "drtp_factors",
           "chain_factors", "ff_factors", "ff_scores", "Factors", "forward", "forward_pass", "one_hot",
           "updates_from_factors", "CONV_UPDATES", "FirstLayerFeedback", "Rule", "Cost",
           "StepState", "register", "register_rule", "unregister", "load_entry_points",
           "ENTRY_POINT_GROUP", "relu_grad", "get_rule", "rule_names", "validate", "resolve"]
