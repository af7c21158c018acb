"""Reproductions: the paper's Table 1 and figures (`table1`), the memory table, the deeper-net
comparison at fixed settings (`deeper`) and searched, trained long (`searched`, with its
search stage in `search`). Each is resumable: a finished run is loaded, not trained again."""

from .deeper import (DEEPER_DEPTHS, DEEPER_VARIANTS, deeper_plan, deeper_table,
                     scaled_milestones, variant_of, write_deeper_results)
from .table1 import (F_SCALES, MODELS, PAPER_TEST_ACC, PRESET_OF, Plan, f_scale_figure,
                     is_complete, memory_results, results_table, run_plan, runs_table,
                     table1_figures, table1_plan, table1_rules, write_results)

__all__ = ["DEEPER_DEPTHS", "DEEPER_VARIANTS", "deeper_plan", "deeper_table",
           "scaled_milestones", "variant_of", "write_deeper_results", "F_SCALES", "MODELS",
           "PAPER_TEST_ACC", "PRESET_OF", "Plan", "f_scale_figure", "is_complete",
           "memory_results", "results_table", "run_plan", "runs_table", "table1_figures",
           "table1_plan", "table1_rules", "write_results"]
