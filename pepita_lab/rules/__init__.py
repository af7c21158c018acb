"""Learning rules: pure functions on a bias-free net (conv layers, then fully connected ones)
and, for each, one registered `Rule` object that the rest of the lab reads by name.

Pure functions (the contract outside checks call): `pepita_updates`, `bp_updates`, `fa_updates`,
`dfa_updates`, `drtp_updates` (Forward-Forward, whose inputs carry the label: `ff_factors`,
`ff_scores`). Each returns the batch-mean updates `dW` applied as
`W -= lr * dW`. Their readable per-sample forms are in `rules.reference`. A new rule is one
module with a `Rule` subclass plus one `register(...)` line below (README: "Add a learning
rule").
"""

from __future__ import annotations

from ..nets import forward, forward_pass
from .backprop import Backprop, bp_factors, bp_updates, chain_factors
from .base import Cost, Rule, StepState, get_rule, register, rule_names, unregister
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

__all__ = ["pepita_updates", "bp_updates", "fa_updates", "dfa_updates", "drtp_updates",
           "pepita_factors", "pepita_options_factors", "bp_factors", "fa_factors", "dfa_factors", "drtp_factors",
           "chain_factors", "ff_factors", "ff_scores", "Factors", "forward", "forward_pass", "one_hot",
           "updates_from_factors", "CONV_UPDATES", "FirstLayerFeedback", "Rule", "Cost",
           "StepState", "register", "unregister", "get_rule", "rule_names", "validate", "resolve"]
