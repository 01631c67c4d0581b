"""All three loadgate user classes: ChatUser, BatchUser, ModelsUser.

locust -f locustfiles/locustfile.py --headless -u 20 -r 5 -t 1m --host http://127.0.0.1:8000 --csv out/run
"""

import _repo_path  # noqa: F401  (before importing loadgate)

import loadgate.plugin  # noqa: F401  (settings, LLM metrics, precision, final CSVs)
from loadgate.profiles import LoadProfileShape  # noqa: F401  (inert without --profile)
from locustfiles.batch import BatchUser
from locustfiles.chat import ChatUser
from locustfiles.models import ModelsUser

__all__ = ["BatchUser", "ChatUser", "ModelsUser"]
