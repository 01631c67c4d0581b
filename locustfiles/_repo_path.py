"""Put the repository root on sys.path so `locust -f locustfiles/...` finds the loadgate package
without installing it (Locust itself only adds the locustfile's own folder)."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
