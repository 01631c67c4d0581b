"""loadgate's shipped locustfile: ChatUser, BatchUser and ModelsUser, and the --profile load shapes.

    locust -f "$(python -c 'import loadgate.harness.locustfile as m; print(m.__file__)')" --headless ...

``loadgate run`` uses it unless -f/--locustfile names another; the repository's ``locustfiles/`` are thin
user-facing copies of these classes (tests check they agree).
"""

from loadgate.harness.profiles import LoadProfileShape
from loadgate.harness.users import BatchUserBase, ChatUserBase, ModelsUserBase


class ChatUser(ChatUserBase):
    """POST /v1/chat/completions, streamed and not, single- and multi-turn. Tags: stream, non-stream,
    multi-turn (all also "chat")."""

    weight = 85  # --chat-weight / LOADGATE_CHAT_WEIGHT overrides at start


class BatchUser(BatchUserBase):
    """The async endpoint (submit + poll) and the OpenAI Batch API. Tags: async, batch."""

    weight = 5  # --batch-weight / LOADGATE_BATCH_WEIGHT overrides at start


class ModelsUser(ModelsUserBase):
    """GET /v1/models, GET /v1/models/{id}, GET /health. Tags: models, health."""

    weight = 10  # --models-weight / LOADGATE_MODELS_WEIGHT overrides at start


__all__ = ["BatchUser", "ChatUser", "LoadProfileShape", "ModelsUser"]
