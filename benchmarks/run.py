"""Run the benchmark: `python benchmarks/run.py [--quick] [--json PATH] [--device D] [--repeats N]`.

A thin entry point over `pepita_lab.bench.main` (the same as `pepita-lab bench`); see README.md
beside this file for what is measured.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, when not installed

from pepita_lab.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
