"""The HTTP front door, as one ASGI middleware inside BentoML's app: request ids, API keys, the body-size
limit, request validation, per-endpoint latency metrics, and OpenAI-shaped errors for everything under /v1.

Why a middleware and not BentoML's own parsing: BentoML reads the whole body before validating it, answers
errors in its own shape, and logs pydantic errors that quote the input. Here the body is refused from its
Content-Length (or as soon as it grows past the limit) before it is held in memory, then validated with the
same models BentoML uses, so that BentoML only ever sees valid requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from typing import Any

from harmscan.serving.config import (
    ENV_MAX_BODY_BYTES,
    ENV_MAX_CHARS,
    ENV_MAX_REQUEST_CHARS,
    ENV_MAX_TEXTS,
    ServeConfig,
)
from harmscan.serving.errors import SERVER_ERROR, RequestError, generic_error
from harmscan.serving.lifecycle import get_drain
from harmscan.serving.schemas import (
    ModerationRequest,
    ScanRequest,
    document_errors,
    document_requests,
    parse_body,
    served_labels,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("harmscan.serving")

# Probes and metrics answer without a key: orchestrators and Prometheus scrapers do not carry one (metrics
# can be closed too: HARMSCAN_METRICS_REQUIRE_KEY, docs/serving.md#api-keys).
OPEN_PATHS = frozenset({"/livez", "/healthz", "/readyz", "/metrics"})
PROBE_PATHS = frozenset({"/livez", "/healthz", "/readyz"})
OPENAPI_PATH = "/docs.json"
JSON_ENDPOINTS: dict[str, type[ScanRequest] | type[ModerationRequest]] = {
    "/v1/scan": ScanRequest,
    "/v1/moderations": ModerationRequest,
}
ENDPOINT_NAMES = {"/v1/scan": "scan", "/v1/moderations": "moderations", "/v1/labels": "labels",
                  "/v1/chat/completions": "chat_completions"}  # the last: the gateway (serving/gateway.py)
# What a draining worker still answers as usual (serving/lifecycle.py); /readyz answers 503 then.
DRAIN_OPEN_PATHS = frozenset({"/livez", "/healthz", "/metrics"})
REQUEST_ID_STATE = "harmscan_request_id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


try:  # label BentoML's own traffic metrics with bounded values too (serving/metrics.py)
    from harmscan.serving.metrics import bound_bentoml_path_labels

    bound_bentoml_path_labels()
except ImportError:  # pragma: no cover - bentoml missing: nothing to serve, nothing to bound
    pass


class _Disconnected(Exception):
    """The client went away while sending its body: nothing to answer."""


class ShuttingDown(RequestError):
    def __init__(self) -> None:
        super().__init__("the server is shutting down: retry, another replica (or this one, restarted) will "
                         "answer", status=503, type=SERVER_ERROR, code="shutting_down",
                         headers={"Retry-After": "1", "Connection": "close"})


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is a short token (so it can be logged safely), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return uuid.uuid4().hex


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class KeyChecker:
    """API keys compared in constant time: every configured key is compared, on equal-length digests."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._digests = [hashlib.sha256(k.encode("utf-8")).digest() for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> None:
        if not authorization:
            raise RequestError("missing API key: send the header 'Authorization: Bearer <key>'",
                               status=401, code="missing_api_key",
                               headers={"WWW-Authenticate": 'Bearer realm="harmscan"'})
        scheme, _, token = authorization.partition(" ")
        presented = hashlib.sha256(token.strip().encode("utf-8", "surrogatepass")).digest()
        ok = False
        for digest in self._digests:
            ok |= hmac.compare_digest(digest, presented)
        if scheme.lower() != "bearer" or not ok:
            raise RequestError("invalid API key: send 'Authorization: Bearer <key>' with a key from "
                               "HARMSCAN_API_KEYS", status=401, code="invalid_api_key",
                               headers={"WWW-Authenticate": 'Bearer realm="harmscan"'})


def check_limits(req: ScanRequest | ModerationRequest, config: ServeConfig) -> None:
    if isinstance(req, ScanRequest):
        field, texts, indexed = "texts", req.texts, True
    else:
        field, texts, indexed = "input", req.texts(), not isinstance(req.input, str)
    if len(texts) > config.max_texts:
        raise RequestError(
            f"'{field}' has {len(texts)} texts, more than the limit of {config.max_texts} per request "
            f"({ENV_MAX_TEXTS}): split it into several requests", param=field, code="too_many_texts")
    for i, text in enumerate(texts):
        if len(text) > config.max_chars:
            param = f"{field}[{i}]" if indexed else field
            raise RequestError(
                f"'{param}' has {len(text)} characters, more than the limit of {config.max_chars} per text "
                f"({ENV_MAX_CHARS}): split the text or raise the limit", param=param, code="text_too_long")
    total = sum(len(t) for t in texts)
    if total > config.max_request_chars:
        raise RequestError(
            f"'{field}' holds {total} characters in all, more than the limit of {config.max_request_chars} "
            f"per request ({ENV_MAX_REQUEST_CHARS}): send the texts in several requests", param=field,
            code="request_too_long")


class HarmscanMiddleware:
    def __init__(self, app: ASGIApp, config: ServeConfig | None = None) -> None:
        self.app = app
        self.config = config or ServeConfig.from_env()
        self.keys = KeyChecker(self.config.api_keys)
        self.open_paths = PROBE_PATHS if self.config.metrics_require_key else OPEN_PATHS
        self._metrics: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Start-up runs in the server's event loop, after uvicorn installed its signal handlers.
            get_drain().install(self.config.drain_timeout_s)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        rid = request_id(scope)
        scope.setdefault("state", {})[REQUEST_ID_STATE] = rid
        is_api = path == "/v1" or path.startswith("/v1/")
        status = [500, 0]  # the response's status; 1 once the app started its response
        started = time.perf_counter()
        send = self._wrap_send(send, rid, is_api, status)
        drain = get_drain()
        if drain.draining and path not in DRAIN_OPEN_PATHS:
            await self._refuse_while_draining(path, receive, send)
            if is_api:
                self._observe(ENDPOINT_NAMES.get(path, "other"), status[0], time.perf_counter() - started)
            return
        if path == OPENAPI_PATH:
            send = _rewrite_openapi(send, self.config)
        try:
            with drain.track() as cancel_scope:
                with cancel_scope:
                    await self._handle(scope, receive, send, path, status)
            if cancel_scope.cancelled_caught and not status[1]:  # the drain timeout: answer, do not cut off
                self._count_rejected()
                await send_error(send, ShuttingDown())
            if not status[1]:
                await _end_unanswered(send, status[0])
        except Exception:
            if not status[1]:
                with suppress(Exception):  # the error that got here is the one to report
                    await _end_unanswered(send, 500)
            raise
        finally:
            if is_api:
                self._observe(ENDPOINT_NAMES.get(path, "other"), status[0], time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str, status: list[int]) -> None:
        try:
            if self.keys.enabled and path not in self.open_paths:
                self.keys.check(_header(scope, b"authorization"))
            model = JSON_ENDPOINTS.get(path)
            if model is not None and scope["method"] == "POST":
                body = await self._read_body(scope, receive)
                check_limits(parse_body(model, body), self.config)
                await self.app(_json_scope(scope, len(body)), _replay(body, receive), send)
            else:
                await self.app(scope, receive, send)
        except RequestError as exc:
            await send_error(send, exc)
        except _Disconnected:
            status[0] = 499

    async def _refuse_while_draining(self, path: str, receive: Receive, send: Send) -> None:
        if path == "/readyz":
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]})
            await send({"type": "http.response.body", "body": b"draining\n", "more_body": False})
            return
        get_drain().refuse()
        self._count_rejected()
        await self._discard_body(receive)
        await send_error(send, ShuttingDown())

    async def _discard_body(self, receive: Receive) -> None:
        """Read, and drop, what the client is still sending (up to the body-size limit) before refusing it:
        a connection closed with unread data is reset by the kernel, and the client loses the 503 sent just
        before (the soak's slow clients did, while a worker drained)."""
        size = 0
        while size <= self.config.max_body_bytes:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            size += len(message.get("body", b""))

    def _count_rejected(self) -> None:
        try:
            from harmscan.serving.metrics import get_metrics

            get_metrics().rejected.labels(lane="all", reason="shutting_down").inc()
        except Exception as exc:  # noqa: BLE001 - metrics must never break a response
            log.debug("metrics not recorded: %s", type(exc).__name__)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.config.max_body_bytes
        too_large = RequestError(
            f"the request body is larger than {limit} bytes ({ENV_MAX_BODY_BYTES}): send fewer or shorter "
            f"texts per request (at most {self.config.max_texts} texts of {self.config.max_chars} "
            "characters)",
            status=413, code="body_too_large")
        encoding = _header(scope, b"content-encoding")
        if encoding and encoding.strip().lower() != "identity":
            raise RequestError("compressed request bodies are not supported: send plain JSON without "
                               "Content-Encoding", status=415, code="unsupported_encoding")
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise RequestError("the Content-Length header is not a number", code="invalid_content_length")
            if int(declared) > limit:
                raise too_large  # refused before reading a byte of it
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _wrap_send(self, send: Send, rid: str, is_api: bool, status: list[int]) -> Send:
        held: list[Message] = []
        body_parts: list[bytes] = []

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0], status[1] = int(message["status"]), 1
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                if get_drain().draining and (b"connection", b"close") not in headers:
                    headers.append((b"connection", b"close"))  # the client opens its next one elsewhere
                message = {**message, "headers": headers}
                if is_api and status[0] >= 400:
                    held.append(message)  # wait for the body: it may need rewriting
                    return
                await send(message)
            elif message["type"] == "http.response.body" and held:
                body_parts.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start, body = held.pop(), b"".join(body_parts)
                body_parts.clear()
                if not _is_openai_error(body):
                    body = json.dumps(generic_error(status[0], rid)).encode("utf-8")
                    start["headers"] = [(k, v) for k, v in start["headers"]
                                        if k.lower() not in (b"content-length", b"content-type")]
                    start["headers"] += [(b"content-type", b"application/json"),
                                         (b"content-length", str(len(body)).encode())]
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
            else:
                await send(message)

        return wrapped

    def _observe(self, endpoint: str, status: int, seconds: float) -> None:
        try:
            if self._metrics is None:
                from harmscan.serving.metrics import get_metrics

                self._metrics = get_metrics()
            self._metrics.latency.labels(endpoint=endpoint, status=str(status)).observe(seconds)
        except Exception as exc:  # noqa: BLE001 - metrics must never break a response
            log.debug("metrics not recorded: %s", type(exc).__name__)


async def send_error(send: Send, exc: RequestError) -> None:
    body = exc.to_bytes()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _end_unanswered(send: Send, status: int) -> None:
    """End an exchange that has no response yet: the client hung up while sending its body (499, which
    uvicorn drops: nobody is left to read it), or the app returned or failed without answering (500).
    Why send anything: BentoML's TimeoutMiddleware, above this one, waits for the first message of a
    response or for its traffic timeout (HARMSCAN_TIMEOUT, 120 s), so the request's task outlived its
    client by minutes, and uvicorn's shutdown waits for every task (serving/lifecycle.py)."""
    body = json.dumps(generic_error(status)).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _rewrite_openapi(send: Send, config: ServeConfig) -> Send:
    """BentoML's /docs.json documents errors as its own {"error": "..."}; the server sends OpenAI's shape:
    document that (schemas.document_errors), from the pydantic model the errors are built with."""
    held: list[Message] = []
    parts: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and int(message["status"]) == 200:
            held.append(message)
            return
        if message["type"] == "http.response.body" and held:
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            start, body = held.pop(), b"".join(parts)
            try:
                spec = document_requests(json.loads(body), config.limits(), served_labels())
                body = json.dumps(document_errors(spec)).encode("utf-8")
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                log.warning("OpenAPI spec left as BentoML wrote it: %s", type(exc).__name__)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return wrapped


def _is_openai_error(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict) and "message" in data["error"]


def _json_scope(scope: Scope, length: int) -> Scope:
    # The body was validated as JSON: say so to BentoML, whatever the client declared (BentoML would pick
    # another deserialiser, e.g. multipart, from the Content-Type).
    headers = [(k, v) for k, v in scope["headers"]
               if k not in (b"content-type", b"content-length", b"transfer-encoding")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]
    return {**scope, "headers": headers}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
