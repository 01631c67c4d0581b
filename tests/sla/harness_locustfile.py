"""loadgate's own user classes with the plugin and the live SLA plugin loaded (as the shipped locustfile does)."""

import loadgate.harness  # noqa: F401  (settings, LLM metrics, the live SLA check with --sla)
from locustfiles.batch import BatchUser  # noqa: F401
from locustfiles.chat import ChatUser  # noqa: F401
from locustfiles.models import ModelsUser  # noqa: F401
