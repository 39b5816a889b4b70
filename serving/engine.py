"""The scoring engine behind the endpoints: HarmClassifier in worker threads, one model call at a time per
lane (short texts, long texts), each lane behind a bounded queue, with adaptive batching across concurrent
short requests.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harmscan.serving.config import DEFAULT_MAX_QUEUE
from harmscan.serving.errors import SERVER_ERROR, RequestError

if TYPE_CHECKING:  # pragma: no cover
    from harmscan.classifiers import HarmClassifier, Policy, ScanResult
    from harmscan.serving.metrics import Metrics

# Requests whose texts all fit in about one token window are merged; a longer text is already a batch of
# windows inside HarmClassifier, and merging it would make short requests wait behind it.
BATCHABLE_TEXT_CHARS = 1000
BATCHABLE_WINDOWS = 2


@dataclass(frozen=True)
class RequestPolicy:
    """A request's own policy (its threshold overrides, validated once by `Policy.with_overrides`), equal to
    another by its thresholds: texts of requests that ask for the same ones share one scan call."""

    thresholds: tuple[tuple[str, float], ...]
    policy: Policy = field(compare=False)


# One text of a request, with what the request asked for (None: the served policy); the dispatcher splits and
# merges lists of these.
Item = tuple[str, RequestPolicy | None, bool]


class Overloaded(RequestError):
    def __init__(self) -> None:
        super().__init__("the server is overloaded: the request waited longer than HARMSCAN_MAX_LATENCY_MS "
                         "for the model; retry later or add replicas", status=503, type=SERVER_ERROR,
                         code="overloaded", headers={"Retry-After": "1"})


class QueueFull(RequestError):
    def __init__(self, lane: str, limit: int) -> None:
        super().__init__(f"the server is busy: the queue for {lane} texts is full ({limit} token windows, "
                         "HARMSCAN_MAX_QUEUE); retry after the Retry-After delay or add replicas", status=429,
                         type=SERVER_ERROR, code="queue_full", headers={"Retry-After": "1"})


class Lane:
    """One model call at a time, for one kind of request, behind a bounded queue.

    Short requests (merged into batches) and long ones (already a batch of windows each) have a lane each, so
    a short request never waits behind a long text's windows: the two lanes' model calls run side by side
    (ONNX Runtime sessions are thread-safe). `depth` counts the token windows admitted and not yet scored,
    including the call running now; a request that would take it over `max_queue` is refused at once
    (QueueFull, 429), unless the lane is empty (a request larger than the bound is then not starved).
    """

    def __init__(self, name: str, max_queue: int, max_wait_s: float, metrics: Metrics | None) -> None:
        self.name = name
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.depth = 0
        self.pending = 0  # estimated windows of requests being measured (Engine.measure)
        self.limiter: Any = None  # created on first use, inside the server's event loop

    def reserve(self, windows: int) -> None:
        """Hold room for a request still being measured (an estimate of its windows): a burst of large
        requests is refused at once, not after each was measured."""
        if self.depth + self.pending and self.depth + self.pending + windows > self.max_queue:
            self.reject("queue_full")
            raise QueueFull(self.name, self.max_queue)
        self.pending += windows

    def unreserve(self, windows: int) -> None:
        self.pending -= windows

    def admit(self, windows: int) -> None:
        if self.depth and self.depth + windows > self.max_queue:
            self.reject("queue_full")
            raise QueueFull(self.name, self.max_queue)
        self._move(windows)

    def leave(self, windows: int) -> None:
        self._move(-windows)

    def reject(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(lane=self.name, reason=reason).inc()

    def _move(self, windows: int) -> None:
        self.depth += windows
        if self.metrics is not None:
            self.metrics.queue.labels(lane=self.name).set(self.depth)

    async def run(self, score: Callable[[Sequence[Item]], list[ScanResult]],
                  items: Sequence[Item]) -> list[ScanResult]:
        import anyio
        import anyio.to_thread

        if self.limiter is None:
            # One model call at a time per lane: ONNX Runtime already uses the threads it was given.
            self.limiter = anyio.CapacityLimiter(1)
        try:
            # Bounded wait for the model: an overloaded server answers 503 rather than hitting the
            # request timeout with a 504.
            with anyio.fail_after(self.max_wait_s):
                await self.limiter.acquire()
        except TimeoutError:
            self.reject("deadline")
            raise Overloaded() from None
        try:
            return await anyio.to_thread.run_sync(score, items)
        finally:
            self.limiter.release()


class Engine:
    def __init__(self, classifier: HarmClassifier, *, batching: bool, max_batch_size: int,
                 max_latency_ms: int, max_queue: int = DEFAULT_MAX_QUEUE,
                 metrics: Metrics | None = None) -> None:
        self.classifier = classifier
        self.batching = batching
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.metrics = metrics
        self.short_lane = Lane("short", max_queue, max_latency_ms / 1000, metrics)
        self.long_lane = Lane("long", max_queue, max_latency_ms / 1000, metrics)
        # Created on first use, inside the server's event loop.
        self._dispatch: Callable[[list[Item]], Coroutine[Any, Any, Any]] | None = None
        self._measure_slot: Any = None

    def lane_for(self, texts: Sequence[str], windows: Sequence[int] | None = None) -> Lane:
        long = any(len(t) > BATCHABLE_TEXT_CHARS for t in texts) or max(windows or [1]) > BATCHABLE_WINDOWS
        return self.long_lane if long else self.short_lane

    async def measure(self, texts: Sequence[str], measure: Callable[[], list[int]]) -> list[int]:
        """Run a large request's measurement (normalise, tokenise: `measure`) in a worker thread, one request
        at a time, once its lane has room for it.

        Normalising 100,000 characters holds the GIL for ~0.1 s: a burst of large requests measured side by
        side starved the event loop (short requests took seconds), and the ones refused as queue_full had
        been measured for nothing. Now a request that would not fit is refused before any work.
        """
        import anyio
        import anyio.to_thread

        if self._measure_slot is None:
            self._measure_slot = anyio.CapacityLimiter(1)
        lane = self.lane_for(texts)
        # About one window per BATCHABLE_TEXT_CHARS characters; the real count is admitted after measuring.
        estimate = max(1, sum(len(t) for t in texts) // BATCHABLE_TEXT_CHARS)
        lane.reserve(estimate)
        try:
            async with self._measure_slot:
                return await anyio.to_thread.run_sync(measure)
        finally:
            # The caller admits the request with its real windows (Engine.scan) before it next awaits.
            lane.unreserve(estimate)

    async def scan(self, texts: Sequence[str], thresholds: Mapping[str, float] | None = None,
                   return_spans: bool = False, windows: Sequence[int] | None = None, *,
                   policy: Policy | None = None) -> list[ScanResult]:
        """`windows`: each text's token windows when the caller measured them (HarmClassifier.count_windows):
        a short text that normalisation expands into many windows is then not merged either. `policy`: the
        request's policy when the caller already resolved its overrides (the service does, once), instead
        of `thresholds`."""
        if not texts:  # never send an empty batch to ONNX Runtime
            return []
        key = self.request_policy(thresholds, policy)
        items: list[Item] = [(t, key, return_spans) for t in texts]
        lane = self.lane_for(texts, windows)
        cost = sum(windows) if windows else len(texts)
        lane.admit(cost)
        try:
            if not self.batching or lane is self.long_lane:
                return await lane.run(self.score_items, items)
            return list(await self._dispatcher()(items))
        finally:
            lane.leave(cost)

    def request_policy(self, thresholds: Mapping[str, float] | None, policy: Policy | None) -> RequestPolicy | None:
        """The policy a request's texts travel with; None for the served one. Overrides are validated here
        only when the caller did not resolve them (an unknown label raises InputError)."""
        if policy is None:
            if not thresholds:
                return None
            policy = self.classifier.policy.with_overrides(thresholds, self.classifier.labels)
        elif thresholds:
            raise ValueError("pass thresholds or a resolved policy, not both")
        if policy is self.classifier.policy:
            return None
        return RequestPolicy(tuple(sorted(policy.thresholds.items())), policy)

    def score_items(self, items: Sequence[Item]) -> list[ScanResult]:
        """Score one merged batch. Texts sharing thresholds and span setting go through one scan call."""
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(items))
        groups: dict[tuple[RequestPolicy | None, bool], list[int]] = {}
        for i, (_, key, spans) in enumerate(items):
            groups.setdefault((key, spans), []).append(i)
        out: list[ScanResult | None] = [None] * len(items)
        for (key, spans), idx in groups.items():
            results = self.classifier.scan([items[i][0] for i in idx], return_spans=spans,
                                           policy=key.policy if key else None)
            for i, res in zip(idx, results, strict=True):
                out[i] = res
        return out  # type: ignore[return-value]

    def _dispatcher(self) -> Callable[[list[Item]], Coroutine[Any, Any, Any]]:
        if self._dispatch is None:
            # bentoml==1.4.40 is pinned (the `serve` extra): CorkDispatcher is internal API, used only here.
            from bentoml._internal.marshal.dispatcher import CorkDispatcher

            dispatcher: CorkDispatcher[list[Item], list[ScanResult]] = CorkDispatcher(
                max_latency_in_ms=self.max_latency_ms,
                max_batch_size=self.max_batch_size,
                fallback=self._shed,
                get_batch_size=len,
            )
            self._dispatch = dispatcher(self._run_merged)
        return self._dispatch

    def _shed(self) -> Any:
        # The dispatcher gives up on a request it predicts would wait past HARMSCAN_MAX_LATENCY_MS.
        self.short_lane.reject("deadline")
        raise Overloaded()

    async def _run_merged(self, requests: Sequence[list[Item]]) -> list[list[ScanResult]]:
        flat = [item for req in requests for item in req]
        results = await self.short_lane.run(self.score_items, flat)
        out, pos = [], 0
        for req in requests:
            out.append(results[pos : pos + len(req)])
            pos += len(req)
        return out
