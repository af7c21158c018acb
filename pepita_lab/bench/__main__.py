"""`python -m pepita_lab.bench`: the same as `pepita-lab bench`."""

import sys

from .harness import main

if __name__ == "__main__":
    sys.exit(main())
