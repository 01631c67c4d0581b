"""The target before load: is it up, does it accept the key, which routes does it serve?

One probe for the job (before it starts Locust) and the Locust side (at init, on the local or master
runner): a handful of cheap requests whose answers tell, per route loadgate's users call, whether the
target serves it (404/405 = absent). Reachability and auth problems are :class:`TargetError` at once (one
line, exit 2); what a run needs of the routes (a model list, a chat route that accepts loadgate's
requests) is judged by :func:`require` for the user classes that will run. Imports no Locust.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadgate.client import protocol as p
from loadgate.options import api_key
from loadgate.urls import basic_auth_header, normalize_host, public_url

# The routes loadgate's user classes call, by capability name (PREFIX_loadgate.json "capabilities").
MODELS, MODEL, CHAT, ASYNC, BATCH, HEALTH = "models", "model", "chat", "async", "batch", "health"
ROUTES: dict[str, str] = {
    MODELS: "GET /v1/models",
    MODEL: "GET /v1/models/{id}",
    CHAT: "POST /v1/chat/completions",
    ASYNC: "POST /v1/chat/completions/async + GET /v1/chat/completions/async/{id}",
    BATCH: "POST /v1/files + POST /v1/batches + GET /v1/batches/{id} + GET /v1/files/{id}/content",
    HEALTH: "GET /health",
}
# What each task of loadgate's user classes calls, and so what each class (by its loadgate_role) needs.
TASK_ROUTES: dict[str, str] = {
    "stream_chat": CHAT,
    "non_stream_chat": CHAT,
    "multi_turn_chat": CHAT,
    "async_job": ASYNC,
    "batch_job": BATCH,
    "list_models": MODELS,
    "get_model": MODEL,
    "health": HEALTH,
}


def role_routes(role: str, batch_mode: str = "both") -> set[str]:
    """The routes a loadgate user class of this role calls (batch: as --batch-mode picks)."""
    if role == "chat":
        return {CHAT}
    if role == "batch":
        return {ASYNC, BATCH} if batch_mode == "both" else ({ASYNC} if batch_mode == "async" else {BATCH})
    if role == "models":
        return {MODELS, MODEL, HEALTH}
    return set()


PROBE_TIMEOUT_S = 5.0  # one probe request
PROBE_BUDGET_S = 8.0  # the whole probe: routes not reached by then are assumed served (and said so)
PROBE_ID_PREFIX = "loadgate-probe-"  # X-Request-Id of every probe request (truth logs can tell them apart)
KEY_HINT = "OPENAI_API_KEY"


class TargetError(Exception):
    """The target cannot be load tested as given; str() is one line saying why and what to do."""


@dataclass
class RouteProbe:
    """What the probe saw of one route. served: loadgate's users may call it. detail: the answer, e.g.
    "HTTP 200", "HTTP 404 (absent)", "HTTP 500 server_error: files_settings is not set"."""

    served: bool
    detail: str
    refused: str | None = None  # chat only: why the target refuses loadgate's own request (a run can't pass)


@dataclass
class ProbeResult:
    host: str  # public URL (no credentials)
    routes: dict[str, RouteProbe] = field(default_factory=dict)
    models: list[str] | None = None  # ids GET /v1/models listed; None when it gave no list
    models_detail: str = ""  # why there is no list
    models_refused: bool = False  # GET /v1/models answered a 4xx other than 404/405/408/429

    def served(self, route: str) -> bool:
        """A route the probe did not look at counts as served (the run will show what it answers)."""
        found = self.routes.get(route)
        return True if found is None else found.served

    def capabilities(self) -> dict[str, Any]:
        """PREFIX_loadgate.json "capabilities": {route: {"served": bool, "detail": str}}."""
        return {name: {"served": r.served, "detail": r.detail} for name, r in self.routes.items()}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        data = json.loads(text)
        routes = {k: RouteProbe(**v) for k, v in (data.get("routes") or {}).items()}
        return cls(
            data["host"],
            routes,
            data.get("models"),
            data.get("models_detail", ""),
            bool(data.get("models_refused")),
        )


# -- HTTP ---------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def reason(self) -> str:
        return "HTTP 200" if self.ok else p.status_reason(self.status, self.body)


class _Transport(Exception):
    """No HTTP answer: refused, unreachable, timed out."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


class Client:
    """Plain HTTP(S) to the target with loadgate's headers: Authorization from OPENAI_API_KEY, or Basic
    from credentials in the host URL (which, as in Locust's own session, take the header's place).
    Certificates are not verified, as Locust's FastHttpUser does not."""

    def __init__(self, host: str, timeout_s: float = PROBE_TIMEOUT_S, basic_auth: str | None = None) -> None:
        parts = urlsplit(host)
        self.public = public_url(normalize_host(host)) or host
        self.scheme, self.hostname, self.port = parts.scheme, parts.hostname or "", parts.port
        self.base_path = urlsplit(normalize_host(host)).path
        self.timeout_s = timeout_s
        self.headers = {"Accept": "application/json", "User-Agent": "loadgate-probe"}
        key = api_key()
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        basic = basic_auth_header(host) or basic_auth
        if basic:
            self.headers["Authorization"] = basic

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout_s: float | None = None,
        max_bytes: int = 1024 * 1024,
    ) -> Answer:
        timeout = timeout_s or self.timeout_s
        if self.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.hostname, self.port, timeout=timeout, context=ssl._create_unverified_context()
            )
        else:
            conn = http.client.HTTPConnection(self.hostname, self.port, timeout=timeout)
        headers = {**self.headers, "X-Request-Id": PROBE_ID_PREFIX + uuid.uuid4().hex[:12]}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, self.base_path + path, body=body, headers=headers)
            answer = conn.getresponse()
            return Answer(answer.status, answer.read(max_bytes))
        except ConnectionRefusedError:
            raise _Transport("refused", "connection refused") from None
        except TimeoutError:
            raise _Transport("timeout", f"no answer within {timeout:g}s") from None
        except socket.gaierror as e:
            raise _Transport("dns", f"host name not resolved ({e.strerror or e})") from None
        except (OSError, http.client.HTTPException) as e:
            raise _Transport("error", f"{type(e).__name__}: {e}") from None
        finally:
            conn.close()


# -- health -------------------------------------------------------------------------------------------


def wait_healthy(host: str, path: str, timeout_s: float) -> str:
    """Poll ``host + path`` until it answers 200 (with the API key: gateways that guard /health too).

    Returns "ok", or "absent" when the target has no such route (404/405: the probe checks it instead,
    no waiting), or "answered" for another 4xx (an auth or config answer: the probe will name it). Keeps
    waiting on 5xx, timeouts and refused connections (a target still starting); TargetError at the end."""
    client = Client(host, timeout_s=2)
    deadline, last, kind = time.monotonic() + timeout_s, "no answer", ""
    while True:
        try:
            answer = client.request("GET", path)
            if answer.ok:
                return "ok"
            if answer.status in (404, 405):
                return "absent"
            if 400 <= answer.status < 500 and answer.status not in (408, 425, 429):
                return "answered"
            last, kind = answer.reason(), "status"
        except _Transport as e:
            last, kind = str(e), e.kind
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if kind == "refused":
        raise TargetError(
            f"nothing listens at {client.public}: connection refused for {timeout_s:g}s; start the target "
            "or fix --host"
        )
    raise TargetError(
        f"target not healthy: {client.public}{path} did not answer 200 within {timeout_s:g}s (last: {last}); "
        "check --host, or --health-path none if it has no health route"
    )


# -- the probe ----------------------------------------------------------------------------------------


def _absent(answer: Answer, resource_in_path: bool = False) -> bool:
    return p.is_route_absent(answer.status, answer.body, resource_in_path)


def _absent_detail(answer: Answer) -> str:
    return f"HTTP {answer.status}, absent"


def auth_line(where: str, answer: Answer) -> str:
    return (
        f"the target refused the API key: {where} answered {answer.reason()}; set {KEY_HINT} to a key "
        "the target accepts"
    )


def _client_error(answer: Answer) -> bool:
    """A 4xx that no retry would change (not 404/408/409/425/429)."""
    return 400 <= answer.status < 500 and answer.status not in (404, 408, 409, 425, 429)


class _Probe:
    def __init__(
        self, host: str, budget_s: float, timeout_s: float, basic_auth: str | None, extra_body: dict[str, Any]
    ) -> None:
        self.client = Client(host, timeout_s, basic_auth)
        self.extra_body = extra_body
        self.deadline = time.monotonic() + budget_s
        self.result = ProbeResult(self.client.public)
        self.first = True

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None, ctype: str = ""
    ) -> Answer:
        """One request within the budget; the first one also tells whether anything listens."""
        left = self.deadline - time.monotonic()
        if left <= 0.2:
            raise _Transport("budget", "not probed: the probe's time budget was spent")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        try:
            return self.client.request(
                method,
                path,
                data,
                content_type=ctype or "application/json",
                timeout_s=min(self.client.timeout_s, left),
            )
        except _Transport as e:
            if self.first:
                url = self.client.public
                if e.kind == "refused":
                    raise TargetError(
                        f"nothing listens at {url}: connection refused; start the target or fix --host"
                    ) from None
                raise TargetError(
                    f"cannot reach {url}: {e}; check --host and that the target is up"
                ) from None
            raise
        finally:
            self.first = False

    def route(self, name: str, served: bool, detail: str, refused: str | None = None) -> None:
        self.result.routes[name] = RouteProbe(served, detail, refused)


def probe(
    host: str,
    models: Iterable[str] = (),
    routes: Iterable[str] | None = None,
    max_tokens: int = 1,
    budget_s: float = PROBE_BUDGET_S,
    timeout_s: float = PROBE_TIMEOUT_S,
    basic_auth: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> ProbeResult:
    """Probe ``host`` (with credentials, if any, in the URL) for ``routes`` (default: all of ROUTES).
    ``models``: --models, used instead of the list for the model and chat checks; ``basic_auth``: a
    ``Basic ...`` header for credentials kept apart from the URL; ``extra_body``: --extra-body, merged into
    the chat check's body as into every chat request (a gateway may require a field). Raises TargetError
    when nothing listens, the target cannot be reached, or it refuses the API key on the model list or
    chat; anything else is recorded per route."""
    wanted = set(ROUTES if routes is None else routes)
    pr = _Probe(host, budget_s, timeout_s, basic_auth, dict(extra_body or {}))
    given = [m for m in models if m]
    checks = [
        (MODELS, _models),
        (MODEL, _model),
        (CHAT, _chat),
        (ASYNC, _async),
        (BATCH, _batch),
        (HEALTH, _health),
    ]
    # the model list is fetched whenever a model is needed and none was given (and to tell reachability)
    need_list = MODELS in wanted or (not given and bool(wanted & {MODEL, CHAT, ASYNC, BATCH}))
    for name, check in checks:
        if name not in wanted and not (name == MODELS and need_list):
            continue
        try:
            check(pr, given, max_tokens)
        except _Transport as e:
            pr.route(name, True, f"{e} (assumed served)")
    if MODELS not in wanted:
        pr.result.routes.pop(MODELS, None)
    return pr.result


def _models(pr: _Probe, given: list[str], _max_tokens: int) -> None:
    try:
        answer = pr.call("GET", p.MODELS_PATH)
    except _Transport as e:
        pr.result.models_detail = str(e)
        raise
    if p.is_auth_failure(answer.status, answer.body):
        raise TargetError(auth_line("GET /v1/models", answer))
    if _absent(answer):
        pr.result.models_detail = f"GET /v1/models answered {answer.status}: the target has no model list"
        return pr.route(MODELS, False, f"GET /v1/models: {_absent_detail(answer)}")
    if not answer.ok:
        pr.result.models_detail = f"GET /v1/models answered {answer.reason()}"
        pr.result.models_refused = _client_error(answer)
        return pr.route(MODELS, False, f"GET /v1/models: {answer.reason()}")
    try:
        data = p.parse_json_body(answer.body)
        p.expect_object_list(data)
    except p.ResponseInvalid as e:
        pr.result.models_detail = f"GET /v1/models answered 200 with {e}"
        return pr.route(MODELS, False, f"GET /v1/models: HTTP 200 but {e}")
    pr.result.models = p.model_ids(data)
    if not pr.result.models:
        pr.result.models_detail = "GET /v1/models listed no model"
    pr.route(MODELS, True, "GET /v1/models: HTTP 200")


def _a_model(pr: _Probe, given: list[str]) -> str | None:
    listed = pr.result.models or []
    return given[0] if given else (listed[0] if listed else None)


def _model(pr: _Probe, given: list[str], _max_tokens: int) -> None:
    model = _a_model(pr, given)
    if model is None:
        return pr.route(MODEL, True, "not probed: no model id known")
    answer = pr.call("GET", f"{p.MODELS_PATH}/{model}")
    if p.is_auth_failure(answer.status, answer.body) or _absent(answer, resource_in_path=True):
        why = answer.reason() if answer.status in (401, 403) else _absent_detail(answer)
        return pr.route(MODEL, False, f"GET /v1/models/{{id}}: {why}")
    if answer.ok or p.error_code(answer.body) in p.RESOURCE_NOT_FOUND:
        return pr.route(MODEL, True, f"GET /v1/models/{{id}}: {answer.reason()}")
    pr.route(MODEL, False, f"GET /v1/models/{{id}}: {answer.reason()}")


def _chat(pr: _Probe, given: list[str], max_tokens: int) -> None:
    model = _a_model(pr, given)
    if model is None:  # no model to ask with: an empty body still tells whether the route is there
        answer = pr.call("POST", p.CHAT_PATH, {})
        if p.is_auth_failure(answer.status, answer.body):
            raise TargetError(auth_line("POST /v1/chat/completions", answer))
        if _absent(answer):
            return pr.route(CHAT, False, f"POST /v1/chat/completions: {_absent_detail(answer)}")
        return pr.route(
            CHAT, True, f"POST /v1/chat/completions: {answer.reason()} (to an empty body: no model known)"
        )
    body = {
        **pr.extra_body,
        "model": model,
        "messages": [{"role": "user", "content": "Reply with OK."}],
        "max_tokens": max_tokens,
        "stream": False,
    }
    try:
        answer = pr.call("POST", p.CHAT_PATH, body)
    except _Transport as e:
        return pr.route(CHAT, True, f"{e} (assumed served)")
    if p.is_auth_failure(answer.status, answer.body):
        raise TargetError(auth_line("POST /v1/chat/completions", answer))
    if _absent(answer):
        return pr.route(CHAT, False, f"POST /v1/chat/completions: {_absent_detail(answer)}")
    refused = None
    if _client_error(answer):
        refused = (
            f"the target refuses loadgate's chat request (model {model!r}, max_tokens {max_tokens}): "
            f"POST /v1/chat/completions answered {answer.reason()}; check {KEY_HINT}, --models and the "
            "target's settings"
        )
    pr.route(CHAT, True, f"POST /v1/chat/completions: {answer.reason()}", refused)


def _async(pr: _Probe, given: list[str], _max_tokens: int) -> None:
    answer = pr.call("POST", p.ASYNC_PATH, {})  # an empty body: a served route answers 400/422
    if _absent(answer):
        return pr.route(ASYNC, False, f"POST /v1/chat/completions/async: {_absent_detail(answer)}")
    if answer.status >= 500 or p.is_auth_failure(answer.status, answer.body):
        return pr.route(ASYNC, False, f"POST /v1/chat/completions/async: {answer.reason()}")
    poll = pr.call("GET", f"{p.ASYNC_PATH}/{PROBE_ID_PREFIX}{uuid.uuid4().hex[:8]}")
    if _absent(poll, resource_in_path=True):
        return pr.route(ASYNC, False, f"GET /v1/chat/completions/async/{{id}}: {_absent_detail(poll)}")
    pr.route(ASYNC, True, f"POST /v1/chat/completions/async: {answer.reason()}")


def _batch(pr: _Probe, given: list[str], max_tokens: int) -> None:
    model = _a_model(pr, given) or "loadgate-probe"
    _, content = p.batch_input(
        [
            {
                "model": model,
                "messages": [{"role": "user", "content": "Reply with OK."}],
                "max_tokens": max_tokens,
            }
        ]
    )
    payload, ctype = p.multipart({"purpose": "batch"}, "loadgate-probe.jsonl", content)
    answer = pr.call("POST", p.FILES_PATH, raw=payload, ctype=ctype)
    if _absent(answer):
        return pr.route(BATCH, False, f"POST /v1/files: {_absent_detail(answer)}")
    if not answer.ok:  # the upload is a valid one: any refusal means batches cannot run
        return pr.route(BATCH, False, f"POST /v1/files: {answer.reason()}")
    try:
        file_id = p.job_id(p.parse_json_body(answer.body))
    except p.ResponseInvalid as e:
        return pr.route(BATCH, False, f"POST /v1/files: HTTP 200 but {e}")
    create = pr.call(
        "POST",
        p.BATCHES_PATH,
        {"input_file_id": file_id, "endpoint": p.CHAT_PATH, "completion_window": "loadgate-probe"},
    )  # an invalid window: a served route answers 400 without starting a batch
    if _absent(create) or create.status >= 500:
        detail = _absent_detail(create) if _absent(create) else create.reason()
        return pr.route(BATCH, False, f"POST /v1/batches: {detail}")
    poll = pr.call("GET", f"{p.BATCHES_PATH}/{PROBE_ID_PREFIX}{uuid.uuid4().hex[:8]}")
    if _absent(poll, resource_in_path=True):
        return pr.route(BATCH, False, f"GET /v1/batches/{{id}}: {_absent_detail(poll)}")
    content_answer = pr.call("GET", f"{p.FILES_PATH}/{file_id}/content")
    if _absent(content_answer, resource_in_path=True):
        return pr.route(BATCH, False, f"GET /v1/files/{{id}}/content: {_absent_detail(content_answer)}")
    pr.route(BATCH, True, "POST /v1/files: HTTP 200")


def _health(pr: _Probe, _given: list[str], _max_tokens: int) -> None:
    answer = pr.call("GET", p.HEALTH_PATH)
    if _absent(answer):
        return pr.route(HEALTH, False, f"GET /health: {_absent_detail(answer)}")
    pr.route(HEALTH, answer.ok, f"GET /health: {answer.reason()}")


# -- what a run needs ---------------------------------------------------------------------------------


def require(result: ProbeResult, routes: Iterable[str], models_given: bool) -> None:
    """TargetError when the routes a run will call cannot give a valid run: no model to use (no list
    and no --models), or a chat route that refuses loadgate's request, or none of the routes served."""
    needed = set(routes)
    if not needed:
        return
    if not any(result.served(r) for r in needed):
        absent = ", ".join(f"{ROUTES[r].split(' + ')[0]} ({result.routes[r].detail})" for r in sorted(needed))
        raise TargetError(
            f"the target at {result.host} serves none of the routes the user classes call: {absent}; "
            "check --host"
        )
    if needed & {CHAT, ASYNC, BATCH} and not models_given and not result.models:
        why = result.models_detail or "no model list"
        if result.models_refused:
            raise TargetError(
                f"no model to use: {why}; check {KEY_HINT} (a gateway may answer a key it does not know "
                "this way), or set --models (LOADGATE_MODELS)"
            )
        raise TargetError(
            f"no model to use: {why}; set --models (LOADGATE_MODELS) to the model ids the target serves"
        )
    chat = result.routes.get(CHAT)
    if CHAT in needed and chat is not None and chat.refused:
        raise TargetError(chat.refused)
