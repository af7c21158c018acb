"""`python -m pepita_lab.cli`: the pepita-lab command."""

import sys

from . import main

sys.exit(main())
