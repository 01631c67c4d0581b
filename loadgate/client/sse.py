"""Incremental Server-Sent Events parser (the WHATWG event-stream format).

Bytes go in as they arrive from the socket, complete events come out, so the caller can timestamp
each event at the moment its terminating blank line was received. Handles LF, CRLF and CR line
endings, multi-line ``data:`` fields, comments and a field split across network reads.

:meth:`SSEParser.payloads` is the hot path of a streamed chat: it returns only the data of each event,
as bytes, and splits on the blank line without decoding when an event is a single ``data: `` line (what
every OpenAI-compatible server sends); anything else goes through the full line parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event; ``data`` joins multi-line data fields with "\\n"."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Feed raw bytes with :meth:`feed`; it yields every event completed by them."""

    def __init__(self) -> None:
        self._pending = b""  # bytes of an incomplete line
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._has_fields = False
        self._pending_cr = False  # last chunk ended in CR: a following LF belongs to it

    def feed(self, chunk: bytes) -> Iterator[SSEEvent]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        buf = self._pending + chunk
        lines = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._pending = lines.pop()  # "" when buf ended with a line terminator
        for raw in lines:
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                yield event

    def payloads(self, chunk: bytes) -> list[bytes]:
        """The data of every event completed by ``chunk`` (the same events as :meth:`feed`), as bytes."""
        if self._pending_cr or self._has_fields or b"\r" in chunk:
            return [event.data.encode() for event in self.feed(chunk)]
        buf = self._pending + chunk if self._pending else chunk
        if buf.startswith(b"data: "):  # the usual read: single-line data events (and part of the next)
            if buf.find(b"\n") == len(buf) - 2 and buf.endswith(b"\n"):  # one whole event: a token's read
                self._pending = b""
                return [buf[6:-2]]
            cut = buf.rfind(b"\n\n") + 2
            tail = buf[cut:]
            if cut >= 8 and b"\n" not in tail:
                events = buf[6 : cut - 2].split(b"\n\ndata: ")
                if buf.count(b"\n", 0, cut) == 2 * len(events):  # no other line: each block one data line
                    self._pending = tail
                    return events
        blocks = buf.split(b"\n\n")
        tail = blocks.pop()
        self._pending = b""
        out: list[bytes] = []
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:
                out.append(block[6:])
            elif block:  # other fields, comments, multi-line data: the full parser, whole lines only
                out += [event.data.encode() for event in self.feed(block + b"\n\n")]
        # a tail of bare line ends is blank lines after a dispatched event: nothing pending
        self._pending = tail if tail.strip(b"\n") else b""
        return out

    @property
    def incomplete(self) -> bool:
        """True when the stream stopped in the middle of an event."""
        return self._has_fields or bool(self._pending)

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        self._has_fields = True
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_fields:
            return None
        data = self._data
        event = SSEEvent(data="\n".join(data), event=self._event or "message", id=self._id)
        self._data, self._event, self._has_fields = [], "", False
        return event if data else None
