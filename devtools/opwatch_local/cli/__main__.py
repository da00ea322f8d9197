"""``python -m opwatch_local.cli``, the same as the ``opwatch`` console script."""

import sys

from opwatch_local.cli import main

sys.exit(main())
