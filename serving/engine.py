"""The scoring engine behind the endpoints: HarmClassifier in a worker thread, one model call at a time, with
adaptive batching across concurrent requests.

Batching uses BentoML's own adaptive dispatcher (`CorkDispatcher`, what `@bentoml.api(batchable=True)` runs
on) directly in-process. Calling a batchable API from another endpoint would go through BentoML's self-proxy,
an in-process HTTP round trip that measured ~4.5 ms extra per request on 2 cores and exposes an internal
route that would need its own authentication (see docs/serving.md). The unit of batching is one text:
a request's texts travel with their thresholds, and texts of requests with different thresholds are scored
in separate HarmClassifier.scan calls of the same batch, so flags and spans follow each request's policy
exactly as the library's `scan` does. (With the int8 variant, scores move slightly with batch-mates:
activations are quantised per batch.)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harmscan.serving.errors import SERVER_ERROR, RequestError

if TYPE_CHECKING:  # pragma: no cover
    from harmscan.classifiers import HarmClassifier, ScanResult
    from harmscan.serving.metrics import Metrics

# Requests whose texts all fit in about one token window are merged; a longer text is already a batch of
# windows inside HarmClassifier, and merging it would make short requests wait behind it.
BATCHABLE_TEXT_CHARS = 1000
BATCHABLE_WINDOWS = 2

ThresholdsKey = tuple[tuple[str, float], ...] | None
# One text of a request, with what the request asked for; the dispatcher splits and merges lists of these.
Item = tuple[str, ThresholdsKey, bool]


def thresholds_key(thresholds: Mapping[str, float] | None) -> ThresholdsKey:
    return tuple(sorted((k, float(v)) for k, v in thresholds.items())) if thresholds else None


class Overloaded(RequestError):
    def __init__(self) -> None:
        super().__init__("the server is overloaded: the request waited longer than HARMSCAN_MAX_LATENCY_MS "
                         "for the model; retry later or add replicas", status=503, type=SERVER_ERROR,
                         code="overloaded", headers={"Retry-After": "1"})


def _overloaded() -> Any:
    raise Overloaded()


class Engine:
    def __init__(self, classifier: HarmClassifier, *, batching: bool, max_batch_size: int,
                 max_latency_ms: int, metrics: Metrics | None = None) -> None:
        self.classifier = classifier
        self.batching = batching
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.metrics = metrics
        # Created on first use, inside the server's event loop.
        self._limiter: Any = None
        self._dispatch: Callable[[list[Item]], Coroutine[Any, Any, Any]] | None = None

    async def scan(self, texts: Sequence[str], thresholds: Mapping[str, float] | None = None,
                   return_spans: bool = False, windows: Sequence[int] | None = None) -> list[ScanResult]:
        """`windows`: each text's token windows when the caller measured them (HarmClassifier.count_windows):
        a short text that normalisation expands into many windows is then not merged either."""
        if not texts:  # never send an empty batch to ONNX Runtime
            return []
        key = thresholds_key(thresholds)
        items: list[Item] = [(t, key, return_spans) for t in texts]
        long = any(len(t) > BATCHABLE_TEXT_CHARS for t in texts) or max(windows or [1]) > BATCHABLE_WINDOWS
        if not self.batching or long:
            return await self._in_thread(items)
        return list(await self._dispatcher()(items))

    def score_items(self, items: Sequence[Item]) -> list[ScanResult]:
        """Score one merged batch. Texts sharing thresholds and span setting go through one scan call."""
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(items))
        groups: dict[tuple[ThresholdsKey, bool], list[int]] = {}
        for i, (_, key, spans) in enumerate(items):
            groups.setdefault((key, spans), []).append(i)
        out: list[ScanResult | None] = [None] * len(items)
        for (key, spans), idx in groups.items():
            results = self.classifier.scan([items[i][0] for i in idx], thresholds=dict(key) if key else None,
                                           return_spans=spans)
            for i, res in zip(idx, results, strict=True):
                out[i] = res
        return out  # type: ignore[return-value]

    async def _in_thread(self, items: Sequence[Item]) -> list[ScanResult]:
        import anyio
        import anyio.to_thread

        if self._limiter is None:
            # One model call at a time: ONNX Runtime already uses the cores it was given.
            self._limiter = anyio.CapacityLimiter(1)
        try:
            # Bounded wait for the model: an overloaded server answers 503 rather than hitting the
            # request timeout with a 504.
            with anyio.fail_after(self.max_latency_ms / 1000):
                await self._limiter.acquire()
        except TimeoutError:
            raise Overloaded() from None
        try:
            return await anyio.to_thread.run_sync(self.score_items, items)
        finally:
            self._limiter.release()

    def _dispatcher(self) -> Callable[[list[Item]], Coroutine[Any, Any, Any]]:
        if self._dispatch is None:
            # bentoml==1.4.40 is pinned (the `serve` extra): CorkDispatcher is internal API, used only here.
            from bentoml._internal.marshal.dispatcher import CorkDispatcher

            dispatcher: CorkDispatcher[list[Item], list[ScanResult]] = CorkDispatcher(
                max_latency_in_ms=self.max_latency_ms,
                max_batch_size=self.max_batch_size,
                fallback=_overloaded,
                get_batch_size=len,
            )
            self._dispatch = dispatcher(self._run_merged)
        return self._dispatch

    async def _run_merged(self, requests: Sequence[list[Item]]) -> list[list[ScanResult]]:
        flat = [item for req in requests for item in req]
        results = await self._in_thread(flat)
        out, pos = [], 0
        for req in requests:
            out.append(results[pos : pos + len(req)])
            pos += len(req)
        return out
