"""The lab's widgets (ipywidgets), thin over `pepita_lab.train`, `sweep.run_sweep` and
`pepita_lab.plots`: the explorer (`Explorer`, `explorer(...)`) and the sweep panel
(`SweepPanel`).

The modules (every name is importable from here):
  explorer.py     the explorer: Run / Stop / Clear, a background thread, live charts
  controls.py     its controls, to and from a RunConfig (`make_controls`,
                  `config_from_controls`)
  sweep_panel.py  the sweep panel: an F scale x lr sweep and its stability map
  charts.py       what their charts share: size, embed options, the empty chart
"""

from .charts import CHART_HEIGHT, CHART_WIDTH, EMBED_OPTIONS
from .controls import (CONTROL_WIDTH, MAX_DEPTH, OPTION_FIELDS, STYLE, WIDTHS,
                       config_from_controls, make_controls, option_controls, show_widths)
from .explorer import ADVICE, Explorer, divergence_message, explorer
from .sweep_panel import SweepPanel

__all__ = ["Explorer", "explorer", "SweepPanel", "divergence_message", "make_controls",
           "option_controls", "show_widths", "config_from_controls", "CHART_WIDTH",
           "CHART_HEIGHT", "EMBED_OPTIONS", "WIDTHS", "MAX_DEPTH", "STYLE", "CONTROL_WIDTH",
           "OPTION_FIELDS", "ADVICE"]
