"""Prometheus metrics of the harmscan endpoints, served on BentoML's /metrics beside BentoML's own.

prometheus_client is imported on first use, not at module import: BentoML workers set
PROMETHEUS_MULTIPROC_DIR after importing the service module, and a client imported earlier would count in a
registry /metrics never reads.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

# Latency buckets in seconds: dense around the 2-50 ms of a short text, up to the long-text minutes.
LATENCY_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# The paths `harmscan serve` and `harmscan gateway` answer. Any other path a client sends is counted under
# one label value, OTHER_PATH: a label value per invented URL would grow the metric series (and the
# scraper's memory) without bound.
KNOWN_PATHS = frozenset({
    "/", "/docs.json", "/schema.json", "/livez", "/healthz", "/readyz", "/metrics",
    "/v1/scan", "/v1/moderations", "/v1/labels", "/v1/chat/completions", "/v1/models",
})
OTHER_PATH = "other"
_ORIGINAL_PATH = "harmscan.original_path"

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def metrics_path(path: str) -> str:
    """The label value a request path is counted under: itself when known, else OTHER_PATH."""
    return path if path in KNOWN_PATHS else OTHER_PATH


def bound_bentoml_path_labels() -> None:
    """Make BentoML's own traffic metrics (bentoml_service_request_*) label requests by `metrics_path`.

    BentoML labels them with the raw path, before any service middleware runs. Its middleware class is
    looked up when the worker builds its app, after the service module is imported: replacing it here puts a
    wrapper around it that shows it the bounded label and gives the rest of the app the real path.
    bentoml==1.4.40 is pinned (the `serve` extra); the class is internal API, used only here.
    """
    from bentoml._internal.server.http import instruments

    original = instruments.RunnerTrafficMetricsMiddleware
    if getattr(original, "harmscan_bounded", False):
        return

    class BoundedPathTrafficMetrics:
        harmscan_bounded = True

        def __init__(self, app: ASGIApp, **options: Any) -> None:
            self.app = app
            self.metrics = original(self._restore_path, **options)

        async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] not in KNOWN_PATHS:
                scope = {**scope, "path": OTHER_PATH, _ORIGINAL_PATH: scope["path"]}
            await self.metrics(scope, receive, send)

        async def _restore_path(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if _ORIGINAL_PATH in scope:
                scope = {**scope, "path": scope[_ORIGINAL_PATH]}
                del scope[_ORIGINAL_PATH]
            await self.app(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedPathTrafficMetrics  # type: ignore[misc,assignment]


class Metrics:
    def __init__(self) -> None:
        import prometheus_client as prom

        self.latency = prom.Histogram(
            "harmscan_request_duration_seconds", "Time to answer a harmscan API request, per endpoint",
            labelnames=["endpoint", "status"], buckets=LATENCY_BUCKETS,
        )
        self.texts = prom.Counter("harmscan_texts", "Texts scored, per endpoint", labelnames=["endpoint"])
        self.flagged = prom.Counter(
            "harmscan_flagged", "Texts flagged, per endpoint and label", labelnames=["endpoint", "label"],
        )
        self.decisions = prom.Counter(
            "harmscan_decisions", "Decisions per endpoint (flag or allow)",
            labelnames=["endpoint", "decision"],
        )
        self.batch_size = prom.Histogram(
            "harmscan_batch_texts", "Texts per model call (adaptive batching merges concurrent requests)",
            buckets=BATCH_BUCKETS,
        )
        # livesum: the server runs one worker; summed over live processes should that change.
        self.queue = prom.Gauge(
            "harmscan_queue_windows", "Token windows admitted to a lane of the engine and not yet scored",
            labelnames=["lane"], multiprocess_mode="livesum",
        )
        self.rejected = prom.Counter(
            "harmscan_rejected", "Requests refused for load: queue_full (429), deadline (503), "
            "shutting_down (503)", labelnames=["lane", "reason"],
        )

    def observe_results(self, endpoint: str, results: Sequence[dict[str, Any]]) -> None:
        if not results:
            return
        self.texts.labels(endpoint=endpoint).inc(len(results))
        counts: dict[str, int] = {}
        flagged_texts = 0
        for res in results:
            if res["flagged"]:
                flagged_texts += 1
            for label in res["flagged"]:
                counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self.flagged.labels(endpoint=endpoint, label=label).inc(n)
        if flagged_texts:
            self.decisions.labels(endpoint=endpoint, decision="flag").inc(flagged_texts)
        if len(results) - flagged_texts:
            self.decisions.labels(endpoint=endpoint, decision="allow").inc(len(results) - flagged_texts)


_lock = threading.Lock()
_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """One set per process (prometheus_client refuses to register a metric name twice)."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = Metrics()
        return _metrics
