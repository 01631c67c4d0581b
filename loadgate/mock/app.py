"""The aiohttp application: routes, auth, body limits, rate limits, faults and the truth log."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from . import protocol
from .config import MockConfig
from .engine import Engine, Plan
from .errors import JSON_TYPE, APIError, not_found, server_error
from .jobs import JobStore
from .metrics import MockMetrics
from .ratelimit import RateLimiter
from .truthlog import Exchange, TruthLog
from .validation import ChatRequest, parse_json, validate_chat

Handler = Callable[[web.Request, Exchange], Awaitable[web.StreamResponse]]

# the transport went away under us (client closed, or a cut fault)
DISCONNECTS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type=JSON_TYPE, headers=headers
    )


class MockServer:
    """Shared state of one mock process: config, engine, limiter, job store, truth log."""

    def __init__(self, config: MockConfig, truth_log: TruthLog | None = None, seed: int | None = None):
        self.config = config
        self.rng = random.Random(seed if seed is not None else config.seed)
        self.engine = Engine(config.capacity, self.rng)
        self.limiter = RateLimiter(config.rate_limits) if config.rate_limits.enabled else None
        self.truth_log = truth_log
        self.pick_fault = config.faults.pick if config.faults.any_request_fault else None
        self.started = int(time.time())
        self.jobs = JobStore(self)
        self.metrics = MockMetrics(self.engine.slots, self.jobs.engine.slots)

    # ------------------------------------------------------------------ request plumbing

    def endpoint(self, path: str, *, public: bool = False) -> Callable[[Handler], Callable]:
        """Wrap a handler: exchange record, auth, OpenAI-style errors, truth-log row at the end."""

        def decorate(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            @wraps(handler)
            async def run(request: web.Request) -> web.StreamResponse:
                exchange = Exchange(
                    request_id="",
                    method=request.method,
                    path=path,
                    t_received=arrived_at(request),
                    x_request_id=request.headers.get("X-Request-Id"),
                )
                try:
                    if not public:
                        request["api_key"] = self.authenticate(request)
                    response = await handler(request, exchange)
                except APIError as exc:
                    exchange.error = f"{exc.code or exc.type}: {exc.message}"
                    response = exc.response()
                except asyncio.CancelledError:
                    exchange.error = exchange.error or "cancelled: server stopping"
                    self.finish(exchange, 499)
                    raise
                except Exception as exc:  # a mock bug: still answer OpenAI-style and say what broke
                    print(
                        f"loadgate mock: internal error on {request.method} {request.path}: "
                        f"{type(exc).__name__}: {exc}",
                        file=sys.stderr,
                        flush=True,
                    )
                    error = server_error(500, f"loadgate mock internal error: {type(exc).__name__}: {exc}")
                    exchange.error = f"internal_error: {type(exc).__name__}: {exc}"
                    response = error.response()
                self.finish(exchange, response.status)
                return response

            return run

        return decorate

    def finish(self, exchange: Exchange, status: int) -> None:
        """Close an exchange record; the status already sent (e.g. 200 before a cut) wins."""
        exchange.status = exchange.status or status
        if self.truth_log is not None:
            exchange.request_id = exchange.request_id or protocol.new_id("req_")
            exchange.t_done = time.time()
            self.truth_log.write(exchange)

    def authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else ""
        keys = self.config.auth_keys
        if keys:
            if not key:
                raise APIError(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
            if key not in keys:
                raise APIError(401, f"Incorrect API key provided: {_redact(key)}.", code="invalid_api_key")
        return key or "anonymous"

    async def read_json(self, request: web.Request) -> object:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(request.content_length, limit)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(None, limit) from None
        return parse_json(raw)

    async def read_chat(self, request: web.Request, exchange: Exchange) -> ChatRequest:
        chat = validate_chat(await self.read_json(request), self.config.models)
        exchange.model, exchange.stream, exchange.prompt_tokens = chat.model, chat.stream, chat.prompt_tokens
        return chat

    def rate_limit(self, request: web.Request, chat: ChatRequest, plan: Plan) -> dict[str, str]:
        """Charge the caller's key; tokens = prompt + max_tokens (or the drawn length without one)."""
        if self.limiter is None:
            return {}
        try:
            return self.limiter.check(
                request["api_key"], chat.prompt_tokens + (chat.max_tokens or plan.tokens)
            )
        except APIError:
            self.metrics.reject("rate_limited")
            raise

    # ------------------------------------------------------------------ chat completions

    async def chat_completions(self, request: web.Request, exchange: Exchange) -> web.StreamResponse:
        chat = await self.read_chat(request, exchange)
        plan = self.engine.plan(
            self.config.models[chat.model], chat.max_tokens, chat.prompt_tokens, chat.min_tokens
        )
        headers = self.rate_limit(request, chat, plan)
        fault = exchange.fault = self.pick_fault(self.rng) if self.pick_fault else None
        if fault == "error_5xx":
            raise server_error(self.config.faults.error_5xx_status)
        entry = self.engine.slots.try_enter()
        if entry is None:
            self.metrics.reject("overloaded")
            raise self.overloaded()
        exchange.request_id = request_id = protocol.new_id("chatcmpl-")
        headers["x-request-id"] = request_id
        try:
            if fault == "slow_header":
                await asyncio.sleep(self.config.faults.slow_header_seconds)
            if chat.stream:
                return await self._stream(request, exchange, chat, plan, entry, headers, fault)
            return await self._complete(request, exchange, chat, plan, entry, headers, fault)
        finally:
            self.engine.slots.leave(entry)

    @property
    def chunker(self) -> Callable[[str, bool], list[str]] | None:
        """How streamed text is cut into content chunks when not one token per chunk: (pending text, last
        token?) -> the chunks to send now (the rest waits for the next token)."""
        chars, per = self.config.chars_per_chunk, self.config.tokens_per_chunk
        if chars:

            def by_chars(text: str, last: bool) -> list[str]:
                end = len(text) if last else len(text) - len(text) % chars
                return [text[i : i + chars] for i in range(0, end, chars)]

            return by_chars
        if per > 1:
            count = {"tokens": 0}

            def by_tokens(text: str, last: bool) -> list[str]:
                count["tokens"] += 1
                if last or count["tokens"] % per == 0:
                    return [text]
                return []

            return by_tokens
        return None

    def overloaded(self) -> APIError:
        status = self.config.capacity.overload_status
        slots = self.engine.slots
        message = (
            f"The server is overloaded: {slots.active} generations running and {slots.queued} "
            "queued (capacity.slots + capacity.queue reached). Please retry later."
        )
        if status == 429:
            return APIError(
                429, message, type="requests", code="rate_limit_exceeded", headers={"retry-after": "1"}
            )
        return APIError(503, message, type="server_error", code="overloaded", headers={"retry-after": "1"})

    async def _complete(self, request, exchange, chat, plan, entry, headers, fault) -> web.StreamResponse:
        if entry is not True:
            await entry
        if plan.ttft or plan.model.tokens_per_s:  # zero-latency profiles skip the pacing coroutine
            await self.engine.generate(plan)
        if fault == "stall":
            await asyncio.sleep(self.config.faults.stall_seconds)
        data = protocol.completion_bytes(
            exchange.request_id, int(time.time()), plan, chat.prompt_tokens, self.config.usage
        )
        exchange.completion_tokens = plan.tokens
        self.metrics.tokens.inc(plan.tokens)
        if fault in ("cut", "malformed_chunk"):
            return await self._broken_body(request, exchange, data, headers, fault)
        response = web.Response(body=data, content_type=JSON_TYPE, headers=headers)
        if self.truth_log is None:  # nobody reads the exchange's times: let aiohttp send it
            return response
        try:
            await response.prepare(request)
            exchange.t_last_token = time.time()
            await response.write_eof()
        except DISCONNECTS:
            exchange.error = "client disconnected"
        return response

    async def _broken_body(
        self, request, exchange, data: bytes, headers: dict, fault: str
    ) -> web.StreamResponse:
        """Non-streaming faults: a truncated body, announced with the full length (cut) or not."""
        half = data[: len(data) // 2]
        if fault == "malformed_chunk":
            exchange.error = "fault: malformed JSON body"
            exchange.t_last_token = time.time()
            return web.Response(body=half, content_type=JSON_TYPE, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_type = JSON_TYPE
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(half)
        exchange.error = "fault: connection cut mid-body"
        exchange.status = 200
        request.transport.close()
        return response

    async def _stream(self, request, exchange, chat, plan, entry, headers, fault) -> web.StreamResponse:
        response = web.StreamResponse(headers={**SSE_HEADERS, **headers})
        exchange.status = 200
        encoder = protocol.ChunkEncoder(exchange.request_id, int(time.time()), plan.model.id)
        log = self.truth_log is not None
        if log:
            exchange.t_chunks = chunks = []
        sent = 0  # tokens generated and sent (in chunks of several tokens or characters, when configured)
        trouble_at = plan.tokens // 2
        chunker, pending = self.chunker, ""
        try:
            await response.prepare(request)
            await response.write(encoder.role())
            if entry is not True:
                await entry
            async for index in self.engine.stream_tokens(plan):
                if index == trouble_at and fault is not None:
                    if fault == "cut":
                        exchange.error = f"fault: stream cut after {sent} tokens"
                        request.transport.close()
                        return response
                    if fault == "stall":
                        await asyncio.sleep(self.config.faults.stall_seconds)
                    elif fault == "malformed_chunk":
                        await response.write(protocol.MALFORMED_CHUNK)
                if chunker is not None:
                    pending += protocol.token_text(index)
                    pieces = chunker(pending, index == plan.tokens - 1)
                    pending = pending[sum(len(piece) for piece in pieces) :]
                    for piece in pieces:
                        sent_at = time.time()
                        await response.write(encoder.text(piece))
                        if log:
                            chunks.append(sent_at)
                    sent += 1  # generated; sent with its chunk (a partial one waits for the next token)
                    continue
                data = encoder.token(index)
                sent_at = time.time()  # the moment the chunk is handed to the transport
                await response.write(data)
                sent += 1
                if log:
                    chunks.append(sent_at)
            await response.write(encoder.finish(plan.finish_reason))
            if chat.include_usage and self.config.usage:
                await response.write(encoder.usage(chat.prompt_tokens, plan.tokens))
            await response.write(protocol.SSE_DONE)
            await response.write_eof()
        except DISCONNECTS:
            exchange.error = f"client disconnected after {sent} tokens"
        finally:
            exchange.completion_tokens = sent
            self.metrics.tokens.inc(sent)
            if log and chunks:
                exchange.t_first_token, exchange.t_last_token = chunks[0], chunks[-1]
        return response

    # ------------------------------------------------------------------ models, health, 404

    def _model_object(self, model_id: str) -> dict:
        return {
            "id": model_id,
            "object": "model",
            "created": self.started,
            "owned_by": self.config.models[model_id].owned_by,
        }

    async def list_models(self, request: web.Request, exchange: Exchange) -> web.Response:
        return json_response({"object": "list", "data": [self._model_object(m) for m in self.config.models]})

    async def get_model(self, request: web.Request, exchange: Exchange) -> web.Response:
        model_id = request.match_info["model"]
        exchange.model = model_id
        if model_id not in self.config.models:
            raise not_found(
                f"The model `{model_id}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return json_response(self._model_object(model_id))

    async def health(self, request: web.Request, exchange: Exchange) -> web.Response:
        slots = self.engine.slots
        return json_response(
            {
                "status": "ok",
                "active": slots.active,
                "queued": slots.queued,
                "jobs_pending": self.jobs.pending,
            }
        )

    async def prometheus(self, request: web.Request) -> web.Response:
        """GET /metrics: Prometheus text; not an endpoint() (no auth, no truth-log row: a scrape is no load)."""
        return web.Response(body=self.metrics.page(), headers={"Content-Type": self.metrics.content_type})

    async def unknown_route(self, request: web.Request, exchange: Exchange) -> web.Response:
        raise not_found(f"Invalid URL ({request.method} {request.path})")

    # ------------------------------------------------------------------ assembly

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        ep = self.endpoint
        enabled = self.config.endpoints
        routes = [
            web.get("/health", ep("/health", public=True)(self.health)),
            web.get("/metrics", self.prometheus),
        ]
        if enabled.chat:
            routes.append(web.post("/v1/chat/completions", ep("/v1/chat/completions")(self.chat_completions)))
        if enabled.models:
            routes.append(web.get("/v1/models", ep("/v1/models")(self.list_models)))
            if enabled.model_by_id:
                routes.append(web.get("/v1/models/{model}", ep("/v1/models/{id}")(self.get_model)))
        routes += self.jobs.routes()
        routes.append(web.route("*", "/{tail:.*}", ep("unknown", public=True)(self.unknown_route)))
        app.add_routes(routes)
        return app


def _too_large(length: int | None, limit: int) -> APIError:
    got = f"{length} bytes" if length is not None else "more"
    return APIError(
        413,
        f"Request body too large: {got} exceeds the {limit}-byte limit (max_body_bytes).",
        code="request_too_large",
    )


def _redact(key: str) -> str:
    return key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"


# -- arrival stamps ---------------------------------------------------------------------------------------
# The truth log's t_received is when the request's head was parsed off the socket, not when its handler
# started: aiohttp runs the handler two event-loop turns later (the connection's task wakes, then the
# handler's task starts), and a busy mock would put its own queueing outside the TTFT it reports
# (measured at 150 streams: p99 4-5 ms). aiohttp offers no hook there, so RequestHandler.data_received is
# wrapped (aiohttp is pinned; tests/mock/test_chat.py checks the privates it uses).
_HEAD_KEY = "loadgate_t_head"
_data_received = RequestHandler.data_received


def _stamping_data_received(self: RequestHandler, data: bytes) -> None:
    queued, now = len(self._messages), time.time()
    _data_received(self, data)
    if len(self._messages) > queued:  # a request head was parsed from these bytes
        self._cache[_HEAD_KEY] = now


RequestHandler.data_received = _stamping_data_received  # type: ignore[method-assign]


def arrived_at(request: web.Request) -> float:
    """When the request's head reached the mock: the stamp of the connection's latest parsed head, never
    later than now (a pipelining client's later head can only make it later, up to the old stamp)."""
    now = time.time()
    protocol = request.protocol
    stamp = protocol._cache.get(_HEAD_KEY) if protocol is not None else None
    return min(stamp, now) if stamp is not None else now
