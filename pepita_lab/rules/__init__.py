"""Learning rules, as pure functions on a bias-free net (conv layers, then fully connected ones)
and behind one interface for training.

Pure functions (the contract outside checks call): `pepita_updates`, `bp_updates`, `fa_updates`,
`dfa_updates`, `drtp_updates`. Each returns the batch-mean updates `dW` applied as
`W -= lr * dW`. `make_rule(config)` returns the step the training loop calls by name.
"""

from __future__ import annotations

from typing import Callable

from .backprop import bp_factors, bp_updates, chain_factors
from .common import Factors, forward, forward_pass, one_hot, updates_from_factors
from .drtp import drtp_factors, drtp_updates
from .feedback_alignment import dfa_factors, dfa_updates, fa_factors, fa_updates
from .pepita import CONV_UPDATES, FirstLayerFeedback, pepita_factors, pepita_updates

# rule name -> kind of fixed feedback it needs: "F" (d, C), "chain" (shapes of weights[1:]),
# "direct" ((C, n_l) per hidden layer) or None.
FEEDBACK_KIND = {"pepita": "F", "bp": None, "fa": "chain", "dfa": "direct", "drtp": "direct"}

RuleStep = Callable[..., Factors]  # (net, x, target, masks) -> Factors


def make_rule(config) -> RuleStep:
    """The factor function of `config.rule`, with its options bound: `step(net, x, t, masks)`
    with x flat (B, d) as the data hold it (a conv net views it as its images). PEPITA's also
    takes `first_feedback=W_1 F` (see `FirstLayerFeedback`)."""
    name = config.rule
    if name == "pepita":
        return lambda net, x, t, masks, first_feedback=None: pepita_factors(
            net.weights, net.shape_input(x), t, net.F, sign=config.sign,
            output_error=config.output_error, masks=masks, biases=net.biases,
            fused_first_layer="auto", pool=net.pool, conv_update=config.conv_update,
            first_feedback=first_feedback)
    if name == "bp":
        return lambda net, x, t, masks: bp_factors(net.weights, net.shape_input(x), t, masks,
                                                   net.biases, net.pool)
    by_name = {"fa": fa_factors, "dfa": dfa_factors, "drtp": drtp_factors}
    if name not in by_name:
        raise ValueError(f"rule={name!r} is unknown; allowed: {', '.join(FEEDBACK_KIND)}")
    fn = by_name[name]
    return lambda net, x, t, masks: fn(net.weights, net.shape_input(x), t, net.feedback, masks,
                                       net.biases, net.pool)


__all__ = ["pepita_updates", "bp_updates", "fa_updates", "dfa_updates", "drtp_updates",
           "pepita_factors", "bp_factors", "fa_factors", "dfa_factors", "drtp_factors",
           "chain_factors", "Factors", "forward", "forward_pass", "one_hot",
           "updates_from_factors", "make_rule", "FEEDBACK_KIND", "CONV_UPDATES",
           "FirstLayerFeedback"]
