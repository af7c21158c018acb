"""Learning rules: pure functions on a bias-free net (conv layers, then fully connected ones)
and, for each, one registered `Rule` object that the rest of the lab reads by name.

Pure functions (the contract outside checks call): `pepita_updates`, `bp_updates`, `fa_updates`,
`dfa_updates`, `drtp_updates` (Forward-Forward, whose inputs carry the label: `ff_factors`,
`ff_scores`). Each returns the batch-mean updates `dW` applied as
`W -= lr * dW`. Their readable per-sample forms are tests/oracles.py. A rule of your own
lives in your own module: `from pepita_lab.rules import Rule, register_rule`, then
`register_rule(MyRule)` (or `@register_rule`, or an entry point in the group `pepita_lab.rules`;
docs/adding-a-rule.md); nothing inside this package is edited.

Modules: `interface` (the `Rule` base, the `Step` a training step gets, `Cost`, the registry),
`factors` (the `Factors` a rule returns and the layer arithmetic on them), `pepita/` (the passes
written once, the registered rule, mirroring, the streamed step's checks), `backprop`,
`feedback_alignment`, `drtp`, `forward_forward`, `defaults` (a rule's own training
settings) and `validation` (`resolve`, the one door into training). The per-sample oracles of
the rules are tests/oracles.py.
"""

from __future__ import annotations

from ..nets import forward, forward_pass
from .backprop import Backprop, bp_factors, bp_updates, chain_factors
from .interface import (ENTRY_POINT_GROUP, STEP_FIELDS, Cost, Rule, Step, get_rule,
                        load_entry_points, register, rule_names, unregister)
from .factors import Factors, one_hot, relu_grad, updates_from_factors
from .drtp import DRTP, drtp_factors, drtp_updates
from .forward_forward import ForwardForward, ff_factors, ff_scores
from .feedback_alignment import (DirectFeedbackAlignment, FeedbackAlignment, dfa_factors,
                                 dfa_updates, fa_factors, fa_updates)
from .pepita import (CONV_UPDATES, FirstLayerFeedback, Pepita, pepita_factors,
                     pepita_options_factors, pepita_passes, pepita_updates)
from .validation import resolve, validate

register(Pepita())
register(Backprop())
register(FeedbackAlignment())
register(DirectFeedbackAlignment())
register(DRTP())
register(ForwardForward())
register_rule = register  # the name the package's top level exports

__all__ = ["pepita_updates", "bp_updates", "fa_updates", "dfa_updates", "drtp_updates",
           "pepita_passes", "pepita_factors", "pepita_options_factors", "bp_factors", "fa_factors", "dfa_factors", "drtp_factors",
           "chain_factors", "ff_factors", "ff_scores", "Factors", "forward", "forward_pass", "one_hot",
           "updates_from_factors", "CONV_UPDATES", "FirstLayerFeedback", "Rule", "Cost",
           "Step", "STEP_FIELDS", "register", "register_rule", "unregister", "load_entry_points",
           "ENTRY_POINT_GROUP", "relu_grad", "get_rule", "rule_names", "validate", "resolve"]
