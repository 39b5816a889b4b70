"""The harmscan BentoML service: a bundle scored by HarmClassifier (ONNX Runtime, no torch) behind

    POST /v1/scan          {texts, thresholds?, return_spans?} -> {id, model, results: [{scores, ...}]}
    POST /v1/moderations   OpenAI's moderation request and response shapes
    GET  /v1/labels        labels, definitions, thresholds, model and data provenance, limits
    GET  /livez /readyz /metrics   BentoML's probes and Prometheus metrics (plus harmscan_* metrics)

Run it with `harmscan serve --bundle B` (which wraps `bentoml serve`), or
`HARMSCAN_BUNDLE=B bentoml serve harmscan.serving.service:HarmscanService --host 127.0.0.1 --port 3000`.
Settings are environment variables (serving/config.py, docs/serving.md).
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harmscan import __version__
from harmscan.errors import InputError
from harmscan.serving.audit import AuditLog, AuditUnavailable
from harmscan.serving.config import (
    ENV_MAX_REQUEST_CHARS,
    ENV_MAX_WINDOWS,
    ServeConfig,
    service_host,
    service_timeout,
)
from harmscan.serving.engine import Engine
from harmscan.serving.errors import SERVER_ERROR, RequestError, error_body
from harmscan.serving.metrics import get_metrics
from harmscan.serving.middleware import REQUEST_ID_STATE, HarmscanMiddleware
from harmscan.serving.openai_compat import CategoryMap
from harmscan.serving.schemas import (
    ModerationRequest,
    ModerationResponse,
    ScanRequest,
    ScanResponse,
    moderation_texts,
    set_served_labels,
)
from harmscan.text import normalize_text

if TYPE_CHECKING:  # pragma: no cover
    from harmscan.classifiers.policy import Policy

log = logging.getLogger("harmscan.serving")

# Requests with more characters than this are measured (normalised, tokenised) in a worker thread, so that
# the event loop keeps answering other requests meanwhile.
_MEASURE_INLINE_CHARS = 4000


def _error_response(exc: RequestError, ctx: bentoml.Context) -> JSONResponse:
    ctx.response.status_code = exc.status  # BentoML applies the context's status over the response's
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _internal_error(exc: Exception, request_id: str, ctx: bentoml.Context) -> JSONResponse:
    # Log where it failed, not the exception message: messages can quote the text being scored.
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{frame.filename}:{frame.lineno} in {frame.name}" if frame else "unknown location"
    log.error("request %s failed: %s at %s", request_id, type(exc).__name__, where)
    body = error_body(f"internal server error (request id {request_id}; see the server log)",
                      type=SERVER_ERROR, code="internal_error")
    ctx.response.status_code = 500
    return JSONResponse(body, status_code=500)


def _enable_logging() -> None:
    # BentoML's worker logging config disables loggers it does not list and sets the root to WARNING; our
    # start-up line and errors go to the same handler (records propagate to the root's).
    for name in ("harmscan", "harmscan.serving"):
        logger = logging.getLogger(name)
        logger.disabled = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


def _request_id(ctx: bentoml.Context) -> str:
    rid = getattr(ctx.request.state, REQUEST_ID_STATE, None)
    return str(rid) if rid else uuid.uuid4().hex


async def _labels_endpoint(request: Request) -> Response:
    service = bentoml.get_current_service()
    return JSONResponse(service.labels_info())


# GET routes live in a small Starlette app: @bentoml.api endpoints are POST-only.
labels_app = Starlette(routes=[Route("/labels", _labels_endpoint, methods=["GET"])])


@bentoml.asgi_app(labels_app, path="/v1", name="harmscan_labels")
@bentoml.service(
    name="harmscan",
    # Loopback unless HARMSCAN_HOST (or `--host`) says otherwise.
    http={"host": service_host()},
    traffic={"timeout": service_timeout()},
    workers=1,
)
class HarmscanService:
    def __init__(self) -> None:
        from harmscan.classifiers import HarmClassifier

        _enable_logging()
        self.config = ServeConfig.from_env()
        self.classifier = HarmClassifier.load(
            self.config.require_bundle(), variant=self.config.variant, threads=self.config.threads,
            policy=self.config.policy,
        )
        bundle = self.classifier.bundle
        self.labels: list[str] = list(self.classifier.labels)
        set_served_labels(self.labels)  # /docs.json documents which labels `thresholds` takes
        self.model_id = f"harmscan-{bundle.fingerprint}"
        self.categories = CategoryMap.from_taxonomy(bundle.taxonomy)
        self.metrics = get_metrics()
        self.engine = Engine(self.classifier, batching=self.config.batching,
                             max_batch_size=self.config.max_batch_size,
                             max_latency_ms=self.config.max_latency_ms, max_queue=self.config.max_queue,
                             metrics=self.metrics)
        self.audit = AuditLog(self.config.audit_log, bundle.fingerprint) if self.config.audit_log else None
        # The first ONNX Runtime call allocates its buffers: pay for it here, not in the first request.
        self.classifier.scan(["warm-up"])
        log.info(
            "harmscan %s serving %s (%s, variant %s on %s); batching %s; API keys %s; audit log %s; "
            "limits %s",
            __version__, bundle.path, self.model_id, self.classifier.variant,
            ",".join(self.classifier.providers),
            "on" if self.config.batching else "off", "required" if self.config.api_keys else "off",
            self.config.audit_log or "off", self.config.limits(),
        )

    def __is_ready__(self) -> bool:
        """BentoML's /readyz: false while the audit log cannot be written (fail closed, serving/audit.py)."""
        return self.audit is None or self.audit.ready()

    # -- endpoints -----------------------------------------------------------------------------------
    @bentoml.api(route="/v1/scan", input_spec=ScanRequest, output_spec=ScanResponse)
    async def scan(self, texts: list[str], thresholds: dict[str, float] | None = None,
                   return_spans: bool = False, *, ctx: bentoml.Context) -> Response:
        """Score texts per label; flag them under the bundle's thresholds or the `thresholds` given."""
        rid = _request_id(ctx)
        try:
            return JSONResponse(await self.scan_texts(texts, thresholds, return_spans, rid))
        except RequestError as exc:
            return _error_response(exc, ctx)
        except Exception as exc:  # noqa: BLE001 - never a traceback with user text in the log
            return _internal_error(exc, rid, ctx)

    @bentoml.api(route="/v1/moderations", input_spec=ModerationRequest, output_spec=ModerationResponse)
    async def moderations(self, input: str | list[Any], model: str | None = None, *,
                          ctx: bentoml.Context) -> Response:
        """OpenAI-compatible moderation: `input` is a string or a list of strings."""
        rid = _request_id(ctx)
        try:
            texts = moderation_texts(input)  # validated once already (the middleware, then BentoML's input_spec)
            return JSONResponse(await self.moderate(texts, rid))
        except RequestError as exc:
            return _error_response(exc, ctx)
        except Exception as exc:  # noqa: BLE001
            return _internal_error(exc, rid, ctx)

    # -- the logic behind them (called directly by tests and benchmarks) -------------------------------
    async def scan_texts(self, texts: Sequence[str], thresholds: Mapping[str, float] | None = None,
                         return_spans: bool = False, request_id: str | None = None) -> dict[str, Any]:
        rid = request_id or uuid.uuid4().hex
        policy = None
        if thresholds:
            try:  # unknown labels are a client error; checked once, before the texts join a shared batch
                policy = self.classifier.policy.with_overrides(thresholds, self.labels)
            except InputError as exc:
                raise RequestError(str(exc), param="thresholds", code="invalid_thresholds") from None
        windows = await self.measure(texts, "texts", indexed=True)
        scored = await self._scan(texts, policy, return_spans, windows)
        results = [r.to_dict() for r in scored]
        self._record("scan", rid, texts, results)
        return {"id": f"scan-{rid}", "model": self.model_id, "results": results}

    async def moderate(self, texts: Sequence[str], request_id: str | None = None) -> dict[str, Any]:
        rid = request_id or uuid.uuid4().hex
        windows = await self.measure(texts, "input", indexed=len(texts) != 1)
        results = [r.to_dict() for r in await self._scan(texts, None, False, windows)]
        self._record("moderations", rid, texts, results)
        return {
            "id": f"modr-{rid}",
            "model": self.model_id,
            "results": [self.categories.result(r["scores"], r["flagged"]) for r in results],
        }

    async def measure(self, texts: Sequence[str], field: str, indexed: bool) -> list[int]:
        """Token windows per text, after normalisation; a request over the limits is refused here, before
        the model sees it. The character limits count what clients send; normalisation can expand it
        (NFKC turns U+FDFA into 18 characters), so the normalised request must fit them too, and the
        windows, what the model computes, must fit HARMSCAN_MAX_WINDOWS."""
        if self.audit is not None and not self.audit.ready():
            raise AuditUnavailable()  # fail closed: no decision can be recorded, so none is made
        if not texts:
            return []
        if sum(len(t) for t in texts) <= _MEASURE_INLINE_CHARS:
            return self._measure(texts, field, indexed)
        return await self.engine.measure(texts, lambda: self._measure(texts, field, indexed))

    def _measure(self, texts: Sequence[str], field: str, indexed: bool) -> list[int]:
        normalised = [normalize_text(t) for t in texts]
        total = sum(len(t) for t in normalised)
        if total > self.config.max_request_chars:
            raise RequestError(
                f"'{field}' holds {total} characters in all after Unicode normalisation (NFKC expands some "
                f"characters), more than the limit of {self.config.max_request_chars} per request "
                f"({ENV_MAX_REQUEST_CHARS}): send shorter texts", param=field, code="request_too_long")
        windows = self.classifier.count_windows(normalised)
        limit = self.config.max_windows
        if sum(windows) > limit:
            worst = max(range(len(windows)), key=windows.__getitem__)
            if indexed and windows[worst] > limit:  # name the text when it alone is over
                param, count = f"{field}[{worst}]", windows[worst]
            else:
                param, count = field, sum(windows)
            raise RequestError(
                f"'{param}' becomes {count} token windows after normalisation, more than the limit of {limit} "
                f"per request ({ENV_MAX_WINDOWS}): send shorter texts or split them over several requests",
                param=param, code="too_many_windows")
        return windows

    async def _scan(self, texts: Sequence[str], policy: Policy | None, return_spans: bool,
                    windows: Sequence[int]) -> list[Any]:
        from harmscan.classifiers.encoding import TooManyWindowsError

        try:
            return await self.engine.scan(texts, None, return_spans, windows=windows, policy=policy)
        except TooManyWindowsError as exc:  # the library's per-text bound, when set below the server's
            raise RequestError(str(exc), code="too_many_windows") from None

    def labels_info(self) -> dict[str, Any]:
        bundle = self.classifier.bundle
        manifest = bundle.info
        policy = self.classifier.policy
        training = manifest.training
        return {
            "labels": [
                {**label.to_dict(), "threshold": policy.thresholds[label.name]} for label in bundle.taxonomy
            ],
            "thresholds": dict(policy.thresholds),
            "policy": {k: v for k, v in policy.to_dict().items() if k != "thresholds"},
            "model": {
                "id": self.model_id,
                "bundle_fingerprint": bundle.fingerprint,
                "base_model": manifest.base_model,
                "harmscan_version": manifest.harmscan_version,
                "format_version": manifest.format_version,
                "variant": self.classifier.variant,
                "providers": list(self.classifier.providers),
                "max_length": manifest.max_length,
                "window_stride": manifest.window_stride,
                "calibration": manifest.calibration_method,
                "metrics": dict(manifest.metrics),
            },
            "data": {
                "commercial_use": training.get("commercial_use"),
                "recipe": training.get("recipe"),
                "sources": dict(training.get("sources") or {}),
            },
            "openai_mapping": self.categories.describe(),
            "limits": self.config.limits(),
            "server": {"harmscan_version": __version__, "batching": self.config.batching},
        }

    def _record(self, endpoint: str, rid: str, texts: Sequence[str],
                results: Sequence[dict[str, Any]]) -> None:
        if self.audit is not None:
            self.audit.record(rid, endpoint, texts, results)  # raises AuditUnavailable: nothing is answered
        self.metrics.observe_results(endpoint, results)


# The decorator returns a bentoml Service; type checkers still see the plain class.
cast(Any, HarmscanService).add_asgi_middleware(HarmscanMiddleware)
