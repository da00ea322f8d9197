"""``python -m opwatch_local.simulator --port 8090`` (see :mod:`opwatch_local.simulator.cli`)."""

import sys

from opwatch_local.simulator.cli import main

sys.exit(main())
