"""loadgate's own user classes with the plugin and the live SLA plugin loaded (as loadgate.plugin will)."""

import loadgate.live_sla  # noqa: F401
import loadgate.plugin  # noqa: F401
from locustfiles.batch import BatchUser  # noqa: F401
from locustfiles.chat import ChatUser  # noqa: F401
from locustfiles.models import ModelsUser  # noqa: F401
