"""Altair charts of run records: xarray datasets (or pandas frames) in, a chart out. No torch.

Each function takes a history or activations dataset as `records.py` writes them (one run or
several concatenated along `run`, whose settings are coordinates along `run`) and returns an
altair chart; `save_chart` writes one as PNG, SVG or HTML, and `run_figures` writes the standard
set. Charts carry their data inline, so every dataset stays under altair's 5000-row limit by
aggregating (binning units, pooling pixels, thinning epochs), never by raising the limit.

The modules, by family of chart (every public name is importable from here):
  common.py       what every chart shares: MAX_ROWS, EMBED_OPTIONS, LABELS, `history_frame`,
                  `run_settings`, thinning, colours (`run_colors`: one per run, the same in
                  every chart), tooltips, axes, the accuracy zoom, lines drawn one under
                  another (`coinciding`, `coinciding_note`), `save_chart`
  curves.py       metrics over epochs: `learning_curves`, `depth_curves`
  alignment.py    angles: `bp_alignment`, `f_alignment`, `layer_angles`, `mirror_angle_curves`,
                  `per_layer_curves`
  activations.py  the snapshots: `activation_heatmap`, `activation_distribution`,
                  `activation_summary`, `modulated_inputs`
  summaries.py    final values across runs: `accuracy_map`, `final_vs_setting`,
                  `best_points_chart`, `slowness_chart`, `cost_chart`
  figures.py      `run_figures`: the standard set, written to files
"""

from .activations import (activation_distribution, activation_heatmap, activation_summary,
                          modulated_inputs)
from .alignment import (bp_alignment, f_alignment, layer_angles, mirror_angle_curves,
                        per_layer_curves)
from .common import (EMBED_OPTIONS, KEY_SETTINGS, LABELS, LEGEND_LABEL_LIMIT, MAX_ROWS, PALETTE,
                     RULE_COLORS, coinciding, coinciding_note, history_frame, run_colors,
                     run_settings, save_chart)
from .curves import depth_curves, learning_curves
from .figures import run_figures
from .summaries import (accuracy_map, best_points_chart, cost_chart, final_vs_setting,
                        slowness_chart)

__all__ = ["MAX_ROWS", "EMBED_OPTIONS", "LEGEND_LABEL_LIMIT", "KEY_SETTINGS", "LABELS",
           "PALETTE", "RULE_COLORS", "run_colors", "coinciding", "coinciding_note",
           "run_settings", "history_frame", "save_chart", "learning_curves", "depth_curves",
           "bp_alignment", "f_alignment", "layer_angles", "mirror_angle_curves", "per_layer_curves",
           "activation_heatmap", "activation_distribution", "activation_summary",
           "modulated_inputs", "accuracy_map", "final_vs_setting", "best_points_chart",
           "slowness_chart", "cost_chart", "run_figures"]
