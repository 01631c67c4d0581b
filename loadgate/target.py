"""The target before load: is it up? One helper for the job and the Locust side (imports no Locust)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from loadgate.options import api_key
from loadgate.urls import public_url


class TargetError(Exception):
    """The target cannot be load tested as given; str() is one line saying why and what to do."""


def wait_healthy(url: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200 (with the API key: gateways that guard /health too)."""
    deadline, last = time.monotonic() + timeout_s, "no answer"
    key = api_key()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, urllib.error.URLError) as e:
            last = str(getattr(e, "reason", e))
        time.sleep(0.2)
    raise TargetError(
        f"target not healthy: {public_url(url)} did not answer 200 within {timeout_s:g}s (last: {last}); "
        "check --host, or --health-path none if it has no health route"
    )
