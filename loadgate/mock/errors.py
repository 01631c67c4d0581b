"""OpenAI-style error bodies: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

JSON_TYPE = "application/json"


class APIError(Exception):
    """Raised anywhere in a handler; turned into an OpenAI-style error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=json.dumps(self.body()).encode(),
            content_type=JSON_TYPE,
            headers=self.headers,
        )


def invalid(param: str, message: str) -> APIError:
    """400 for a field: the message starts with the field name so the fix is obvious."""
    return APIError(400, f"{param}: {message}", param=param, code="invalid_value")


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(404, message, param=param, code=code)


def server_error(
    status: int, message: str = "The server had an error while processing your request."
) -> APIError:
    return APIError(status, message, type="server_error", code="server_error")
