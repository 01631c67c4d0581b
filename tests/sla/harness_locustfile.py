"""loadgate's own user classes with the plugin and the live SLA plugin loaded (as loadgate.plugin will)."""

import loadgate.harness  # noqa: F401  (the live SLA check with --sla)
import loadgate.harness  # noqa: F401  (settings, LLM metrics, precision, final CSVs)
from locustfiles.batch import BatchUser  # noqa: F401
from locustfiles.chat import ChatUser  # noqa: F401
from locustfiles.models import ModelsUser  # noqa: F401
