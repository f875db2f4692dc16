"""`python -m core.cli`: the line torchrun, accelerate and the studio's several-process runs
start (studio/live/processes.py)."""

import sys

from core.cli.main import main

sys.exit(main())
