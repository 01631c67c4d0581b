"""BatchUser: the async endpoint (submit + poll) and the OpenAI Batch API (upload, create, poll,
download, check). Tags: async, batch. --batch-mode async|batch|both picks the flow."""

import _repo_path  # noqa: F401  (before importing loadgate)

from loadgate.plugin import BatchUserBase
from loadgate.profiles import LoadProfileShape  # noqa: F401  (inert without --profile)


class BatchUser(BatchUserBase):
    weight = 5  # --batch-weight / LOADGATE_BATCH_WEIGHT overrides at start
