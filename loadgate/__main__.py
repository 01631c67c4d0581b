"""``python -m loadgate``: the same as the ``loadgate`` command."""

import sys

from loadgate.cli import main

sys.exit(main())
