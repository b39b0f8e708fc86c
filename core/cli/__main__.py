"""`python -m corral.core.cli`: the full command line, as the console and the tests start it."""

import os
import sys

from corral.core.cli.main import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.exit(main(exit_hard=True))
