"""loadgate's ChatUser, plus a greenlet that blocks the event loop for STALL_MS every ~100 ms while the
streams are in flight (a stand-in for the other streams' work at scale): reads are made late."""

import os
import time

import gevent
from locust import events

from loadgate.harness.locustfile import ChatUser

__all__ = ["ChatUser"]

STALL_S = float(os.environ.get("STALL_MS", "0")) / 1000
_stallers: list[gevent.Greenlet] = []


def stall_forever() -> None:
    while True:
        gevent.sleep(0.1)
        end = time.perf_counter() + STALL_S
        while time.perf_counter() < end:  # busy: nothing else runs, the sockets fill
            pass


@events.test_start.add_listener
def start_stalling(environment, **_kwargs) -> None:
    _stallers.append(gevent.spawn(stall_forever))


@events.test_stop.add_listener
def stop_stalling(environment, **_kwargs) -> None:
    gevent.killall(_stallers)
