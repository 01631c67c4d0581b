#!/usr/bin/env python3
"""Pinned entry point of the SLA gate, the same as `loadgate gate`:

    python sla/check_sla.py PREFIX [--thresholds FILE] [--baseline BASE_PREFIX] [--junit F] [--json F] ...

Exit 0 every threshold holds, 1 a threshold is breached (or has no data), 2 the gate could not judge.
Needs loadgate installed (pip install -e . in the repository; the ci/ scripts do it).
"""

import sys

try:
    from loadgate.cli import main
except ModuleNotFoundError as e:
    sys.stderr.write(
        f"check_sla: error: missing dependency '{e.name}'; install loadgate first: pip install -e .\n"
    )
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main(["gate", *sys.argv[1:]]))
