"""``python -m lvmlib.training``: see ``lvmlib.training.cli``."""

import sys

from lvmlib.training.cli import main

sys.exit(main())
