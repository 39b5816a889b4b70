"""The guardrail gateway: an OpenAI-compatible chat endpoint in front of any OpenAI-compatible LLM server
(vLLM, llama.cpp server, a hosted API), with a policy applied to prompts and completions.

    POST /v1/chat/completions   checked, then forwarded to $HARMSCAN_UPSTREAM/chat/completions
    GET  /v1/models             forwarded
    GET  /livez /readyz /metrics   BentoML's probes and Prometheus metrics (plus harmscan_* metrics)

- The prompt is checked first (harmscan.classifiers.guard.Guard.check_input); on `block` the upstream is
  never called: the answer is a refusal in the chat-completion shape with finish_reason "content_filter"
  (or an OpenAI error, HARMSCAN_ON_INPUT_BLOCK=error). `annotate` / `review` forward and record.
- A non-streamed completion is checked before it is returned; a streamed one as it arrives (Guard's
  OutputStream): on `block` the stream ends with a chunk whose finish_reason is "content_filter", and
  nothing from the harmful sentence on is sent; `redact` sends a marker in place of the sentence.
- Upstream errors pass through as OpenAI errors (502 / 504 when it cannot be reached or times out); a client
  that disconnects cancels the upstream call.
- Same API keys, limits, request ids, metrics and audit log as `harmscan serve` (serving/middleware.py,
  serving/audit.py). Audit records are the guard's: hashes and scores, never prompt or completion text.

Run it with `harmscan gateway --upstream URL --policy P --bundle B`. Docs: docs/guardrails.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar, cast

import bentoml
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harmscan import __version__
from harmscan.classifiers.guard import Guard, OutputStream, StreamEvent, Verdict, input_texts
from harmscan.errors import InputError
from harmscan.serving.audit import AuditLog
from harmscan.serving.config import ServeConfig, service_host, service_timeout
from harmscan.serving.errors import SERVER_ERROR, RequestError
from harmscan.serving.gateway_config import GatewayConfig
from harmscan.serving.metrics import get_metrics
from harmscan.serving.middleware import REQUEST_ID_STATE, HarmscanMiddleware

log = logging.getLogger("harmscan.serving")
T = TypeVar("T")
ENDPOINT = "chat_completions"
CONTENT_FILTER = "content_filter"


class UpstreamError(RequestError):
    """The upstream failed: its own OpenAI error when it sent one, else one naming what happened."""


def _openai_error(status: int, body: bytes) -> UpstreamError:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict) and "message" in data["error"]:
        err = data["error"]
        exc = UpstreamError(str(err["message"]), status=status, param=err.get("param"), code=err.get("code"),
                            type=str(err.get("type") or "upstream_error"))
        return exc
    return UpstreamError(f"the upstream answered HTTP {status} without an OpenAI error body",
                         status=502 if status < 400 else status, type=SERVER_ERROR, code="upstream_error")


def _upstream_failure(exc: httpx.HTTPError) -> UpstreamError:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError("the upstream did not answer in time (HARMSCAN_UPSTREAM_TIMEOUT)", status=504,
                             type=SERVER_ERROR, code="upstream_timeout")
    return UpstreamError(f"the upstream cannot be reached ({type(exc).__name__})", status=502,
                         type=SERVER_ERROR, code="upstream_unreachable")


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


async def _chat_endpoint(request: Request) -> Response:
    service = bentoml.get_current_service()
    return cast(Response, await service.chat_completions(request))


async def _models_endpoint(request: Request) -> Response:
    service = bentoml.get_current_service()
    return cast(Response, await service.models())


gateway_app = Starlette(routes=[Route("/chat/completions", _chat_endpoint, methods=["POST"]),
                                Route("/models", _models_endpoint, methods=["GET"])])


@bentoml.asgi_app(gateway_app, path="/v1", name="harmscan_gateway")
@bentoml.service(name="harmscan-gateway", http={"host": service_host()}, traffic={"timeout": service_timeout()},
                 workers=1)
class HarmscanGateway:
    def __init__(self) -> None:
        from harmscan.classifiers import HarmClassifier
        from harmscan.serving.service import _enable_logging

        _enable_logging()
        self.config = ServeConfig.from_env()
        self.gateway = GatewayConfig.from_env()
        self.classifier = HarmClassifier.load(self.config.require_bundle(), variant=self.config.variant,
                                              threads=self.config.threads, policy=self.config.policy)
        bundle = self.classifier.bundle
        self.audit = AuditLog(self.config.audit_log, bundle.fingerprint) if self.config.audit_log else None
        self.guard = Guard(self.classifier, self.classifier.policy, audit=self._audit,
                           chunk_chars=self.gateway.chunk_chars, context_chars=self.gateway.context_chars)
        self.metrics = get_metrics()
        self._limiter: Any = None  # one model call at a time, created inside the event loop
        self._client: httpx.AsyncClient | None = None
        self.classifier.predict_proba(["warm-up"])
        log.info("harmscan %s gateway to %s: %s (variant %s), policy sha256 %s; API keys %s; audit log %s",
                 __version__, self.gateway.upstream, bundle.path, self.classifier.variant,
                 self.guard.policy.sha256[:12], "required" if self.config.api_keys else "off",
                 self.config.audit_log or "off")

    # -- endpoints -----------------------------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        rid = str(getattr(request.state, REQUEST_ID_STATE, None) or uuid.uuid4().hex)
        key_id = _key_id(request.headers.get("authorization")) if self.config.api_keys else None
        try:
            body = await self._read_json(request)
            messages, stream = body.get("messages"), body.get("stream", False)
            if not isinstance(stream, bool):
                raise RequestError("'stream' must be true or false", param="stream", code="invalid_type")
            try:
                texts = input_texts(messages)  # type: ignore[arg-type]
            except InputError as exc:
                raise RequestError(str(exc), param="messages", code="invalid_messages") from None
            self._check_limits(texts)
            verdict = await self._run(partial(self.guard.check_input, messages, key_id=key_id, request_id=rid))
            self._observe([verdict])
            if verdict.blocked:
                log.info("request %s: input blocked (%s)", rid, ",".join(verdict.labels) or verdict.reason)
                return self._refuse(body, verdict, stream)
            if stream:
                return await self._forward_stream(body, verdict, key_id, rid)
            return await self._forward(body, verdict, key_id, rid)
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def models(self) -> Response:
        try:
            resp = await self._http().get("/models")
        except httpx.HTTPError as exc:
            err = _upstream_failure(exc)
            return JSONResponse(err.body(), status_code=err.status)
        if resp.status_code >= 400:
            err = _openai_error(resp.status_code, resp.content)
            return JSONResponse(err.body(), status_code=err.status)
        return Response(resp.content, status_code=resp.status_code, media_type="application/json")

    # -- forwarding ----------------------------------------------------------------------------------
    async def _forward(self, body: dict[str, Any], verdict: Verdict, key_id: str | None, rid: str) -> Response:
        try:
            resp = await self._http().post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise _upstream_failure(exc) from None
        if resp.status_code >= 400:
            raise _openai_error(resp.status_code, resp.content)
        try:
            data = resp.json()
        except ValueError:
            raise _openai_error(502, resp.content) from None
        checks: dict[str, Any] = {}
        for choice in data.get("choices") or []:
            message = choice.get("message") or {}
            content = message.get("content")
            if not isinstance(content, str):
                continue
            out = await self._run(partial(self.guard.check_output, content, key_id=key_id, request_id=rid))
            self._observe([out])
            if out.blocked:
                message["content"] = self.gateway.refusal
                message["refusal"] = self.gateway.refusal
                choice["finish_reason"] = CONTENT_FILTER
                log.info("request %s: output blocked (%s)", rid, ",".join(out.labels) or out.reason)
            elif out.action == "redact" and out.redacted is not None:
                message["content"] = out.redacted
            if out.intervened:
                checks[str(choice.get("index", 0))] = out.to_dict()
        annotation = _annotation(verdict, checks)
        if annotation:
            data["harmscan"] = annotation
        return JSONResponse(data)

    async def _forward_stream(self, body: dict[str, Any], verdict: Verdict, key_id: str | None,
                              rid: str) -> Response:
        client = self._http()
        req = client.build_request("POST", "/chat/completions", json=body)
        try:
            resp = await client.send(req, stream=True)
        except httpx.HTTPError as exc:
            raise _upstream_failure(exc) from None
        if resp.status_code >= 400:
            content = await resp.aread()
            await resp.aclose()
            raise _openai_error(resp.status_code, content)
        return StreamingResponse(self._relay(resp, verdict, key_id, rid), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def _relay(self, resp: httpx.Response, verdict: Verdict, key_id: str | None,
                     rid: str) -> AsyncIterator[bytes]:
        """Upstream SSE in, checked SSE out. A client disconnect cancels this generator: `finally` closes
        the upstream response, which drops the upstream connection."""
        streams: dict[int, OutputStream] = {}
        template: dict[str, Any] = {}
        first = True
        try:
            async for data in _sse_events(resp):
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    continue  # not a chunk (a keep-alive or a vendor extension): nothing to forward
                if not isinstance(chunk, dict):
                    continue
                template = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
                out_choices: list[dict[str, Any]] = []
                blocked: tuple[int, Verdict] | None = None
                for choice in chunk.get("choices") or []:
                    index = int(choice.get("index", 0))
                    stream = streams.get(index)
                    if stream is None:
                        stream = streams[index] = self.guard.open_stream(key_id=key_id, request_id=rid)
                    delta = dict(choice.get("delta") or {})
                    events: list[StreamEvent] = []
                    if isinstance(delta.get("content"), str) and delta["content"]:
                        events = await self._run(partial(stream.feed, delta["content"]))
                    if choice.get("finish_reason") is not None:
                        events += await self._run(stream.close)
                    text, notes, stop = _collect(events)
                    if stop is not None:
                        blocked = (index, stop)
                        if text:
                            out_choices.append({"index": index, "delta": {"content": text},
                                                "finish_reason": None})
                        break
                    if "content" in delta or text:
                        delta["content"] = text
                    if not text and not (set(delta) - {"content"}) and choice.get("finish_reason") is None:
                        continue  # held back for checking: nothing to send for this choice yet
                    out = {**choice, "delta": delta}
                    if notes:
                        out["harmscan"] = {"output": [v.to_dict() for v in notes]}
                    out_choices.append(out)
                if first and verdict.intervened and out_choices:
                    out_choices[0] = {**out_choices[0], "harmscan": {
                        **out_choices[0].get("harmscan", {}), "input": verdict.to_dict()}}
                if out_choices or not chunk.get("choices"):
                    first = first and not out_choices
                    yield _sse({**chunk, "choices": out_choices})
                if blocked is not None:
                    index, stop = blocked
                    self._observe([stop])
                    log.info("request %s: streamed output cut (%s)", rid, ",".join(stop.labels) or stop.reason)
                    yield _sse({**template, "choices": [{"index": index, "delta": {},
                                                        "finish_reason": CONTENT_FILTER,
                                                        "harmscan": {"output": [stop.to_dict()]}}]})
                    yield _sse("[DONE]")
                    return
            # The upstream ended without a finish chunk for some choice: release what is still held.
            for index, stream in streams.items():
                text, notes, stop = _collect(await self._run(stream.close))
                if stop is not None:
                    yield _sse({**template, "choices": [{"index": index, "delta": {},
                                                        "finish_reason": CONTENT_FILTER}]})
                elif text:
                    yield _sse({**template, "choices": [{"index": index, "delta": {"content": text},
                                                        "finish_reason": None}]})
            yield _sse("[DONE]")
        except httpx.HTTPError as exc:
            # Headers are sent: report it as an SSE error event, which OpenAI's clients raise as APIError.
            yield _sse(_upstream_failure(exc).body())
        finally:
            await resp.aclose()

    # -- helpers -------------------------------------------------------------------------------------
    def _refuse(self, body: dict[str, Any], verdict: Verdict, stream: bool) -> Response:
        if self.gateway.on_input_block == "error":
            err = RequestError("the prompt was refused by the content policy", status=400,
                               param="messages", code=CONTENT_FILTER)
            payload = err.body()
            payload["error"]["harmscan"] = verdict.to_dict()
            return JSONResponse(payload, status_code=400)
        created, cid = int(time.time()), f"chatcmpl-harmscan-{uuid.uuid4().hex[:20]}"
        model = body.get("model") if isinstance(body.get("model"), str) else "harmscan-gateway"
        annotation = {"input": verdict.to_dict()}
        if not stream:
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": CONTENT_FILTER, "logprobs": None,
                             "message": {"role": "assistant", "content": self.gateway.refusal,
                                         "refusal": self.gateway.refusal}}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "harmscan": annotation,
            })
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        events = [
            _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": self.gateway.refusal},
                                       "finish_reason": None}]}),
            _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": CONTENT_FILTER}],
                  "harmscan": annotation}),
            _sse("[DONE]"),
        ]
        return Response(b"".join(events), media_type="text/event-stream")

    async def _read_json(self, request: Request) -> dict[str, Any]:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError(f"the request body is larger than {limit} bytes", status=413,
                               code="body_too_large")
        raw = await request.body()
        if len(raw) > limit:
            raise RequestError(f"the request body is larger than {limit} bytes", status=413,
                               code="body_too_large")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RequestError("the request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object", code="invalid_body")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise RequestError("'messages' must be a non-empty list", param="messages", code="missing_field")
        return body

    def _check_limits(self, texts: list[str]) -> None:
        for i, text in enumerate(texts):
            if len(text) > self.config.max_chars:
                raise RequestError(f"message text #{i} has {len(text)} characters, more than the limit of "
                                   f"{self.config.max_chars} (HARMSCAN_MAX_CHARS)", param="messages",
                                   code="text_too_long")
        total = sum(len(t) for t in texts)
        if total > self.config.max_request_chars:
            raise RequestError(f"the messages hold {total} characters, more than the limit of "
                               f"{self.config.max_request_chars} (HARMSCAN_MAX_REQUEST_CHARS)", param="messages",
                               code="request_too_long")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.gateway.upstream_api_key}"} \
                if self.gateway.upstream_api_key else {}
            self._client = httpx.AsyncClient(base_url=self.gateway.upstream, headers=headers,
                                             timeout=self.gateway.upstream_timeout)
        return self._client

    async def _run(self, fn: Callable[[], T]) -> T:
        import anyio
        import anyio.to_thread

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)

    def _audit(self, record: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.write([{**record, "endpoint": ENDPOINT}])

    def _observe(self, verdicts: list[Verdict]) -> None:
        thresholds = self.guard.policy.thresholds
        self.metrics.observe_results(ENDPOINT, [
            {"flagged": [k for k, s in v.scores.items() if s >= thresholds.get(k, 1.0)]} for v in verdicts
            if v.scores])


async def _sse_events(resp: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event (several data lines joined by newlines)."""
    lines: list[str] = []
    async for line in resp.aiter_lines():
        if line == "":
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].lstrip(" "))
    if lines:
        yield "\n".join(lines)


def _collect(events: list[StreamEvent]) -> tuple[str, list[Verdict], Verdict | None]:
    """The text to send, the interventions to annotate, and the blocking verdict if any."""
    text, notes = "", cast(list[Verdict], [])
    for event in events:
        if event.kind == "blocked":
            return text, notes, event.verdict
        text += event.text
        if event.verdict is not None and event.verdict.intervened:
            notes.append(event.verdict)
    return text, notes, None


def _annotation(verdict: Verdict, outputs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if verdict.intervened:
        out["input"] = verdict.to_dict()
    if outputs:
        out["output"] = copy.deepcopy(outputs)
    return out


def _key_id(authorization: str | None) -> str | None:
    """Who sent it, for the audit: a short hash of the API key, never the key."""
    if not authorization:
        return None
    token = authorization.partition(" ")[2].strip()
    return "key-" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12] if token else None


# The decorator returns a bentoml Service; type checkers still see the plain class.
cast(Any, HarmscanGateway).add_asgi_middleware(HarmscanMiddleware)
