"""Prometheus metrics of the harmscan endpoints, served on BentoML's /metrics beside BentoML's own.

prometheus_client is imported on first use, not at module import: BentoML workers set
PROMETHEUS_MULTIPROC_DIR after importing the service module, and a client imported earlier would count in a
registry /metrics never reads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

# Latency buckets in seconds: dense around the 2-50 ms of a short text, up to the long-text minutes.
LATENCY_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


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
