"""BatchUser alone: the async endpoint (submit + poll) and the OpenAI Batch API (upload, create, poll,
download, check). Tags: async, batch. --batch-mode async|batch|both picks the flow."""

from loadgate.harness.locustfile import BatchUser, LoadProfileShape

__all__ = ["BatchUser", "LoadProfileShape"]
