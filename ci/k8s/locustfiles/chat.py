"""ChatUser alone: POST /v1/chat/completions, streamed and not, single- and multi-turn.
Tags: stream, non-stream, multi-turn (all also "chat")."""

from loadgate.harness.locustfile import ChatUser, LoadProfileShape

__all__ = ["ChatUser", "LoadProfileShape"]
