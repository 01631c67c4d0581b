"""The test users with the live SLA plugin loaded (and nothing else of loadgate)."""

from plain_locustfile import FastUser, IdleUser, MixedUser, PhaseUser  # noqa: F401

import loadgate.harness  # noqa: F401  (the live SLA check with --sla)
