#!/usr/bin/env python3
"""Pinned entry point of the SLA gate: python sla/check_sla.py PREFIX [--thresholds FILE] [--baseline ...].

Exit 0 every threshold holds, 1 a threshold is breached (or has no data), 2 the gate could not judge.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgate.gate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
