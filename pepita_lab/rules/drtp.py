"""Direct random target projection (DRTP, Frenkel et al. 2021): DFA with the one-hot target in
place of the error, so hidden layers learn before the output is computed."""

from __future__ import annotations

from torch import Tensor

from .common import Factors, check_feedback, check_mlp, updates_from_factors
from .feedback_alignment import direct_factors, direct_shapes


def drtp_factors(weights, x, target, feedback, masks=None, biases=None, pool=1) -> Factors:
    return direct_factors(weights, x, target, feedback, "target", masks, biases, pool)


def drtp_updates(weights: list[Tensor], x: Tensor, target: Tensor,
                 feedback: list[Tensor], *, pool: int = 1) -> list[Tensor]:
    """DRTP: hidden layer i learns from `(t feedback[i]) * relu'`, feedback[i]: (C, n_i)."""
    check_mlp(weights, x, target, pool)
    check_feedback(feedback, direct_shapes(weights, x, pool), "feedback")
    return updates_from_factors(drtp_factors(weights, x, target, feedback, pool=pool))
