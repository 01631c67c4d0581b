"""ChatUser: POST /v1/chat/completions, streamed and not, single- and multi-turn.

Tags: stream, non-stream, multi-turn (all also "chat"). Settings: README.md, "Traffic model and LLM metrics".
"""

import _repo_path  # noqa: F401  (before importing loadgate)

from loadgate.plugin import ChatUserBase
from loadgate.profiles import LoadProfileShape  # noqa: F401  (inert without --profile)


class ChatUser(ChatUserBase):
    weight = 85  # --chat-weight / LOADGATE_CHAT_WEIGHT overrides at start
