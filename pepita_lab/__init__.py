"""pepita-lab: study PEPITA, a learning rule that trains without a backward pass.

The public API: `train`, `load_run`, `load_runs`, `RunConfig`, `preset`, `PRESETS`.
"""

__version__ = "0.1.0"

from .api import Run, load_run, load_runs, train  # noqa: E402
from .config import PRESETS, ConfigError, RunConfig, preset  # noqa: E402

__all__ = ["train", "load_run", "load_runs", "Run", "RunConfig", "preset", "PRESETS",
           "ConfigError", "__version__"]
