"""Async chat jobs and the OpenAI Batch API (files + batches), run on a background worker pool.

All job, file and batch state lives in this process's memory: a restart forgets it. Every submitted job
ends `completed` or `failed` (a batch may also end `cancelled` when asked to), and each job writes one
truth-log row when it ends (path "job:async" / "job:batch").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from . import protocol
from .config import CapacityConfig
from .engine import Engine, Plan, Slots
from .errors import APIError, invalid, not_found
from .truthlog import Exchange
from .validation import ChatRequest, validate_chat

if TYPE_CHECKING:
    from .app import MockServer

CHAT_PATH = "/v1/chat/completions"
BATCH_WINDOW_S = 24 * 3600
MAX_FILE_BYTES = 200 * 1024 * 1024  # OpenAI's batch input limit


class JobFailed(Exception):
    """A job that ends `failed`, with the OpenAI-style error it reports."""

    def __init__(self, status: int, error: dict):
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


@dataclass
class AsyncJob:
    id: str
    model: str
    created_at: int
    status: str = "queued"
    result: dict | None = None
    error: dict | None = None

    def view(self) -> dict:
        body: dict[str, Any] = {
            "request_id": self.id,
            "object": "chat.completion.async",
            "status": self.status,
            "model": self.model,
            "created_at": self.created_at,
        }
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def view(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass
class Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict | None
    created_at: int
    status: str = "validating"
    errors: dict | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, int | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    task: asyncio.Task | None = None

    def mark(self, status: str, stamp: str) -> None:
        self.status = status
        self.times[stamp] = int(time.time())

    def view(self) -> dict:
        body = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": self.errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + BATCH_WINDOW_S,
            "request_counts": dict(self.counts),
            "metadata": self.metadata,
        }
        for stamp in (
            "in_progress_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        ):
            body[stamp] = self.times.get(stamp)
        return body


class JobStore:
    """In-memory jobs, files and batches, and the worker pool that runs them."""

    def __init__(self, server: MockServer):
        self.server = server
        config = server.config
        pool = CapacityConfig(
            slots=config.jobs.workers,
            queue=10**12,
            batching_slowdown=config.capacity.batching_slowdown,
            prefill_slowdown=config.capacity.prefill_slowdown,
        )
        self.engine = Engine(pool, server.rng, Slots(pool.slots, pool.queue))
        self.async_jobs: dict[str, AsyncJob] = {}
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}
        self.pending = 0  # jobs and batch lines not finished yet
        self._tasks: set[asyncio.Task] = set()

    def routes(self) -> list[web.RouteDef]:
        ep, enabled = self.server.endpoint, self.server.config.endpoints
        routes = []
        if enabled.async_:
            routes += [
                web.post("/v1/chat/completions/async", ep("/v1/chat/completions/async")(self.submit_async)),
                web.get(
                    "/v1/chat/completions/async/{id}", ep("/v1/chat/completions/async/{id}")(self.get_async)
                ),
            ]
        if enabled.batch:
            routes += [
                web.post("/v1/files", ep("/v1/files")(self.upload_file)),
                web.get("/v1/files/{id}", ep("/v1/files/{id}")(self.get_file)),
                web.get("/v1/files/{id}/content", ep("/v1/files/{id}/content")(self.file_content)),
                web.post("/v1/batches", ep("/v1/batches")(self.create_batch)),
                web.get("/v1/batches", ep("/v1/batches")(self.list_batches)),
                web.get("/v1/batches/{id}", ep("/v1/batches/{id}")(self.get_batch)),
                web.post("/v1/batches/{id}/cancel", ep("/v1/batches/{id}/cancel")(self.cancel_batch)),
            ]
        return routes

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ one generation

    async def run_chat(
        self,
        body: Any,
        on_start: Callable[[], None] | None = None,
        planned: tuple[ChatRequest, Plan] | None = None,
    ) -> dict:
        """Run one chat completion on the pool (validating `body` unless already `planned`).

        Returns the completion or raises JobFailed.
        """
        server = self.server
        if planned is None:
            try:
                chat = validate_chat(body, server.config.models)
            except APIError as exc:
                raise JobFailed(exc.status, exc.body()["error"]) from None
            plan = self.engine.plan(
                server.config.models[chat.model], chat.max_tokens, chat.prompt_tokens, chat.min_tokens
            )
        else:
            chat, plan = planned
        entry = self.engine.slots.try_enter()
        assert entry is not None, "the job pool's queue (10**12 places) never fills"
        try:
            if entry is not True:
                await entry
            if on_start:
                on_start()
            await self.engine.generate(plan)
        finally:
            self.engine.slots.leave(entry)
        server.metrics.tokens.inc(plan.tokens)
        if server.config.faults.job_failure and server.rng.random() < server.config.faults.job_failure:
            raise JobFailed(500, _server_error("The job failed (faults.job_failure)."))
        return protocol.completion(
            protocol.new_id("chatcmpl-"), int(time.time()), plan, chat.prompt_tokens, server.config.usage
        )

    def _log(self, exchange: Exchange) -> None:
        exchange.t_done = time.time()
        if self.server.truth_log is not None:
            self.server.truth_log.write(exchange)

    # ------------------------------------------------------------------ async chat jobs

    async def submit_async(self, request: web.Request, exchange: Exchange) -> web.Response:
        server = self.server
        chat = await server.read_chat(request, exchange)
        exchange.stream = False
        plan = self.engine.plan(
            server.config.models[chat.model], chat.max_tokens, chat.prompt_tokens, chat.min_tokens
        )
        headers = server.rate_limit(request, chat, plan)
        if self.pending >= server.config.jobs.queue:
            server.metrics.reject("queue_full")
            raise APIError(
                429,
                f"Too many pending jobs ({self.pending}, jobs.queue). Please retry later.",
                type="requests",
                code="queue_full",
                headers={"retry-after": "1"},
            )
        job = AsyncJob(protocol.new_id("req_"), chat.model, int(time.time()))
        self.async_jobs[job.id] = job
        exchange.request_id = job.id
        self.pending += 1
        self._spawn(
            self._run_async(
                job,
                (chat, plan),
                Exchange(
                    job.id,
                    "POST",
                    "job:async",
                    time.time(),
                    exchange.x_request_id,
                    chat.model,
                    False,
                    prompt_tokens=chat.prompt_tokens,
                ),
            )
        )
        return web.json_response({"request_id": job.id, "status": job.status}, status=202, headers=headers)

    async def _run_async(self, job: AsyncJob, planned: tuple[ChatRequest, Plan], exchange: Exchange) -> None:
        try:
            job.result = await self.run_chat(None, lambda: setattr(job, "status", "processing"), planned)
            job.status = "completed"
            exchange.completion_tokens = _completion_tokens(job.result)
            exchange.t_last_token = time.time()
        except JobFailed as exc:
            job.error, job.status = exc.error, "failed"
            exchange.error = exc.error["message"]
        except asyncio.CancelledError:
            job.error, job.status = _server_error("server stopping", "shutdown"), "failed"
            exchange.error = "cancelled: server stopping"
            raise
        except Exception as exc:  # a mock bug must still end the job, never leave it `processing`
            job.error, job.status = _server_error(f"internal error: {type(exc).__name__}: {exc}"), "failed"
            exchange.error = job.error["message"]
        finally:
            self.pending -= 1
            exchange.status = job.status
            self._log(exchange)

    async def get_async(self, request: web.Request, exchange: Exchange) -> web.Response:
        job = self.async_jobs.get(request.match_info["id"])
        if job is None:
            raise not_found(
                f"No async job with id '{request.match_info['id']}'.", param="id", code="job_not_found"
            )
        exchange.request_id, exchange.model = job.id, job.model
        return web.json_response(job.view())

    # ------------------------------------------------------------------ files

    async def upload_file(self, request: web.Request, exchange: Exchange) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise invalid("file", "upload the file as multipart/form-data with fields 'file' and 'purpose'")
        reader = await request.multipart()
        purpose: str | None = None
        upload: tuple[str, bytes] | None = None  # (filename, data)
        async for part in reader:
            if not isinstance(part, BodyPartReader):  # a nested multipart has no field name: ignored
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                upload = (part.filename or "upload.jsonl", await _read_limited(part))
        if purpose != "batch":
            raise invalid("purpose", f"only 'batch' is supported, got {purpose!r}")
        if upload is None:
            raise invalid("file", "is required (a JSONL file of batch requests)")
        filename, data = upload
        stored = StoredFile(protocol.new_id("file-"), filename, purpose, data, int(time.time()))
        self.files[stored.id] = stored
        exchange.request_id = stored.id
        return web.json_response(stored.view())

    def _file(self, file_id: str, param: str = "file_id") -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise not_found(f"No such File object: {file_id}", param=param, code="file_not_found")
        return stored

    async def get_file(self, request: web.Request, exchange: Exchange) -> web.Response:
        return web.json_response(self._file(request.match_info["id"]).view())

    async def file_content(self, request: web.Request, exchange: Exchange) -> web.Response:
        stored = self._file(request.match_info["id"])
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ------------------------------------------------------------------ batches

    async def create_batch(self, request: web.Request, exchange: Exchange) -> web.Response:
        body = await self.server.read_json(request)
        if not isinstance(body, dict):
            raise invalid("body", f"expected a JSON object, got {type(body).__name__}")
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str):
            raise invalid("input_file_id", "is required (the id returned by POST /v1/files)")
        self._file(file_id, "input_file_id")
        if body.get("endpoint") != CHAT_PATH:
            raise invalid("endpoint", f"only '{CHAT_PATH}' is supported, got {body.get('endpoint')!r}")
        if body.get("completion_window") != "24h":
            raise invalid("completion_window", f"must be '24h', got {body.get('completion_window')!r}")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise invalid("metadata", "expected an object")
        batch = Batch(protocol.new_id("batch_"), file_id, CHAT_PATH, "24h", metadata, int(time.time()))
        self.batches[batch.id] = batch
        exchange.request_id = batch.id
        batch.task = self._spawn(
            self._run_batch(
                batch, Exchange(batch.id, "POST", "job:batch", time.time(), exchange.x_request_id)
            )
        )
        return web.json_response(batch.view())

    def _batch(self, request: web.Request) -> Batch:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            raise not_found(
                f"No batch found with id '{request.match_info['id']}'.",
                param="batch_id",
                code="batch_not_found",
            )
        return batch

    async def get_batch(self, request: web.Request, exchange: Exchange) -> web.Response:
        batch = self._batch(request)
        exchange.request_id = batch.id
        return web.json_response(batch.view())

    async def list_batches(self, request: web.Request, exchange: Exchange) -> web.Response:
        data = [b.view() for b in reversed(self.batches.values())]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            }
        )

    async def cancel_batch(self, request: web.Request, exchange: Exchange) -> web.Response:
        batch = self._batch(request)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            raise APIError(
                409, f"Cannot cancel a batch with status '{batch.status}'.", code="batch_not_cancellable"
            )
        batch.mark("cancelling", "cancelling_at")
        return web.json_response(batch.view())

    def _parse_lines(self, batch: Batch) -> list[tuple[str, Any]]:
        """Check the input file's lines; on any problem fill batch.errors and return []."""
        errors: list[dict[str, Any]] = []
        lines: list[tuple[str, Any]] = []
        seen: set[str] = set()
        text = self.files[batch.input_file_id].data.decode("utf-8", errors="replace")
        rows = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        limit = self.server.config.jobs.max_batch_lines
        if not rows or len(rows) > limit:
            errors.append(
                {
                    "code": "invalid_file",
                    "line": None,
                    "param": None,
                    "message": f"The input file has {len(rows)} requests; it needs 1..{limit} "
                    "(jobs.max_batch_lines).",
                }
            )
        for number, line in rows:
            problem = _line_problem(line, batch.endpoint, seen)
            if isinstance(problem, str):
                errors.append({"code": "invalid_request", "line": number, "param": None, "message": problem})
            else:
                lines.append(problem)
        if errors:
            batch.errors = {"object": "list", "data": errors[:100]}
            return []
        return lines

    async def _run_batch(self, batch: Batch, exchange: Exchange) -> None:
        try:
            await asyncio.sleep(0)  # let the create call answer with status "validating" first
            lines = self._parse_lines(batch)
            if not lines:
                assert batch.errors is not None, "_parse_lines fills batch.errors whenever it returns []"
                batch.mark("failed", "failed_at")
                exchange.error = "validation failed: " + batch.errors["data"][0]["message"]
                return
            batch.counts["total"] = len(lines)
            batch.mark("in_progress", "in_progress_at")
            self.pending += len(lines)
            results = await asyncio.gather(*(self._run_line(batch, cid, body) for cid, body in lines))
            cancelled = batch.status == "cancelling"
            batch.mark("finalizing", "finalizing_at")
            self._write_outputs(batch, results, exchange)
            if cancelled:
                batch.mark("cancelled", "cancelled_at")
            else:
                batch.mark("completed", "completed_at")
            exchange.t_last_token = time.time()
        except asyncio.CancelledError:
            batch.mark("failed", "failed_at")
            exchange.error = "cancelled: server stopping"
            raise
        except Exception as exc:  # a mock bug must still end the batch, never leave it `in_progress`
            batch.errors = {
                "object": "list",
                "data": [
                    {
                        "code": "server_error",
                        "line": None,
                        "param": None,
                        "message": f"internal error: {type(exc).__name__}: {exc}",
                    }
                ],
            }
            batch.mark("failed", "failed_at")
            exchange.error = batch.errors["data"][0]["message"]
        finally:
            exchange.status = batch.status
            self._log(exchange)

    async def _run_line(self, batch: Batch, custom_id: str, body: Any) -> dict:
        line: dict[str, Any] = {"id": protocol.new_id("batch_req_"), "custom_id": custom_id, "error": None}

        def skip_if_cancelled() -> None:
            if batch.status == "cancelling":
                raise JobFailed(
                    499,
                    {
                        "message": "The batch was cancelled before this request ran.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "batch_cancelled",
                    },
                )

        try:
            result = await self.run_chat(body, on_start=skip_if_cancelled)
            line["response"] = {"status_code": 200, "request_id": result["id"], "body": result}
            batch.counts["completed"] += 1
        except JobFailed as exc:
            line["response"] = {
                "status_code": exc.status,
                "request_id": line["id"],
                "body": {"error": exc.error},
            }
            batch.counts["failed"] += 1
        finally:
            self.pending -= 1
        return line

    def _write_outputs(self, batch: Batch, results: list[dict], exchange: Exchange) -> None:
        done = [r for r in results if r["response"]["status_code"] == 200]
        failed = [r for r in results if r["response"]["status_code"] != 200]
        exchange.completion_tokens = sum(_completion_tokens(r["response"]["body"]) or 0 for r in done)
        exchange.prompt_tokens = sum(
            r["response"]["body"].get("usage", {}).get("prompt_tokens", 0) for r in done
        )
        if failed:
            exchange.error = f"{len(failed)} of {len(results)} requests failed"
        for rows, attr, suffix in ((done, "output_file_id", "output"), (failed, "error_file_id", "errors")):
            if rows:
                data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                stored = StoredFile(
                    protocol.new_id("file-"),
                    f"{batch.id}_{suffix}.jsonl",
                    "batch_output",
                    data,
                    int(time.time()),
                )
                self.files[stored.id] = stored
                setattr(batch, attr, stored.id)

    async def stop(self) -> None:
        """Cancel running jobs so each still logs its (failed) row before the truth log closes."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _server_error(message: str, code: str = "server_error") -> dict:
    return {"message": message, "type": "server_error", "param": None, "code": code}


def _line_problem(line: str, endpoint: str, seen: set[str]) -> tuple[str, Any] | str:
    try:
        row = json.loads(line)
    except ValueError:
        return "The line is not valid JSON."
    if not isinstance(row, dict):
        return "Each line must be a JSON object with custom_id, method, url and body."
    custom_id = row.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "custom_id is required (a non-empty string)."
    if custom_id in seen:
        return f"custom_id '{custom_id}' is duplicated; each request needs a unique custom_id."
    seen.add(custom_id)
    if row.get("method") != "POST":
        return f"method must be 'POST', got {row.get('method')!r}."
    if row.get("url") != endpoint:
        return f"url must be '{endpoint}' (the batch endpoint), got {row.get('url')!r}."
    if not isinstance(row.get("body"), dict):
        return "body must be a JSON object (the chat completion request)."
    return custom_id, row["body"]


def _completion_tokens(result: dict) -> int | None:
    usage = result.get("usage")
    if usage:
        return usage.get("completion_tokens")
    message = result.get("choices", [{}])[0].get("message", {})
    return len(message.get("content", "").split()) if message else None


async def _read_limited(part: BodyPartReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(1 << 16):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise APIError(
                413, f"File too large: over {MAX_FILE_BYTES} bytes.", param="file", code="file_too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)
