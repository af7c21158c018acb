"""PEPITA: `passes` (the two passes, written once, and every form of the rule as an argument:
the paper's, the ICLR 2024 options, the streamed step), `rule` (the registered rule, its
training step, cost model and tracked `W_1 F`), `mirroring` (weight mirroring between steps)
and `streamed` (what the streamed step refuses, and its cost)."""

from .passes import (CONV_UPDATES, modulated_input, pepita_factors, pepita_options_factors,
                     pepita_passes, pepita_updates)
from .rule import FirstLayerFeedback, Pepita

__all__ = ["pepita_passes", "pepita_factors", "pepita_options_factors", "pepita_updates",
           "modulated_input", "CONV_UPDATES", "FirstLayerFeedback", "Pepita"]
