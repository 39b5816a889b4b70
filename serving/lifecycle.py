"""Graceful shutdown of a server worker: on SIGTERM or SIGINT, drain first, then let uvicorn stop.

Why not uvicorn's own shutdown alone: on SIGTERM uvicorn stops accepting at once and closes every connection
whose request it has not started to answer (a request still arriving, or a connection the kernel accepted
that uvicorn had not read yet): those clients get a read error, never an answer. Issue 22 saw all of "8 long
and 40 short in-flight requests" end that way when SIGTERM came while they were being sent.

The drain, per worker process:
1. readiness (/readyz) turns 503 at once, so a load balancer stops sending traffic;
2. the listener stays open: a request that starts after the signal is answered 503 `shutting_down` with
   Retry-After and `Connection: close`, instead of being cut off;
3. requests already started run to completion; their responses carry `Connection: close` too;
4. when none of the requests started before the signal is still running and the last one ended QUIET_S
   ago, or when the drain timeout is up (requests still running are then answered 503 `shutting_down`),
   the signal goes on to uvicorn, which closes the listener and the idle connections and exits as before.
   Requests refused with 503 do not keep the drain open: clients that retry every Retry-After second would
   otherwise hold every drain open until its timeout (issue 22, the soak).

The exit after the drain is bounded. uvicorn waits for every connection and every request task to end,
with no time limit unless `timeout_graceful_shutdown` is set, and BentoML leaves it unset; one stuck task
held a worker for minutes after its drain (BentoML's TimeoutMiddleware kept the task of every request whose
client hung up half-way waiting for its traffic timeout: serving/middleware.py now ends those). So when
the drain passes the signal on it also gives uvicorn SHUTDOWN_GRACE_S for what is left, and as a last
resort a watchdog thread ends the process EXIT_AFTER_S after the drain, whatever still runs.

A second SIGINT (Ctrl-C twice) skips the drain: uvicorn's handler gets it twice, which forces its exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

log = logging.getLogger("harmscan.serving")

# Seconds after the last running request ended before the listener is closed: a client whose connection is
# already open but whose request has not been read yet is answered (503) rather than cut off.
QUIET_S = 0.5
# After the drain: how long uvicorn may still wait for connections and request tasks before it cancels them
# (its timeout_graceful_shutdown), and when the watchdog ends the process if it still has not exited.
SHUTDOWN_GRACE_S = 3.0
EXIT_AFTER_S = 10.0
_POLL_S = 0.05
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """The drain state of one worker process (one per process: `get_drain()`)."""

    def __init__(self, exit_after_s: float = EXIT_AFTER_S) -> None:
        self.draining = False
        self.timeout_s = 0.0
        self.exit_after_s = exit_after_s
        self.refused = 0  # requests answered 503 `shutting_down` while draining
        self._scopes: set[Any] = set()  # anyio CancelScopes of the requests started before the signal
        self._last_change = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[int, Any] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._scopes)

    def install(self, timeout_s: float) -> bool:
        """Put the drain in front of the server's SIGTERM/SIGINT handlers (uvicorn's). Call it from the
        server's event loop, in the main thread, after uvicorn installed its handlers (at lifespan start-up).
        False where signals cannot be handled (not the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self.timeout_s = float(timeout_s)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            for sig in _SIGNALS:
                self._handlers[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)
        return True

    @contextmanager
    def track(self) -> Iterator[Any]:
        """Count a request as running for as long as the block runs; the drain timeout cancels the scope it
        yields (the caller then answers 503 `shutting_down`). A request that starts while draining (a probe,
        a metrics scrape: the rest is refused) does not hold the drain open."""
        import anyio

        scope = anyio.CancelScope()
        if self.draining:
            yield scope
            return
        self._scopes.add(scope)
        try:
            yield scope
        finally:
            self._scopes.discard(scope)
            self._last_change = time.monotonic()

    def refuse(self) -> None:
        """A request arrived while draining and is answered 503: counted, and the drain does not wait for
        it (nor for the client's retry)."""
        self.refused += 1

    # -- the signal path ---------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.draining:
            if signum == signal.SIGINT:  # Ctrl-C again: stop now
                self._pass_on(signum, frame)
                self._pass_on(signum, frame)
            return
        self.draining = True
        self._last_change = time.monotonic()
        assert self._loop is not None
        # A signal handler runs between two bytecodes of the loop's thread: schedule, do not await.
        self._loop.call_soon_threadsafe(self._start, signum)

    def _start(self, signum: int) -> None:
        log.info("%s received: draining (readiness off; %d request(s) running; timeout %.0f s)",
                 signal.Signals(signum).name, self.in_flight, self.timeout_s)
        self._task = asyncio.ensure_future(self._drain(signum))

    async def _drain(self, signum: int) -> None:
        started = time.monotonic()
        deadline = started + self.timeout_s
        while time.monotonic() < deadline:
            if not self._scopes and time.monotonic() - self._last_change >= QUIET_S:
                log.info("drained in %.1f s: every request was answered (%d refused while draining); stopping",
                         time.monotonic() - started, self.refused)
                break
            await asyncio.sleep(_POLL_S)
        else:
            if self._scopes:
                log.warning("drain timeout (%.0f s) with %d request(s) still running: answering them 503",
                            self.timeout_s, self.in_flight)
            else:
                log.info("drain timeout (%.0f s): no request running; stopping", self.timeout_s)
            for scope in list(self._scopes):
                scope.cancel()
            # Let the cancelled requests send their 503 (a model call already running finishes first).
            while self._scopes and time.monotonic() < deadline + 5:
                await asyncio.sleep(_POLL_S)
        self._bound_exit(signum)
        self._pass_on(signum, None)

    def _bound_exit(self, signum: int) -> None:
        """Limit what uvicorn may still wait for once it has the signal, and arm the watchdog. Only for
        uvicorn's own handler (a bound `Server.handle_exit`): another server is left as it is."""
        server = getattr(self._handlers.get(signum), "__self__", None)
        config: Any = getattr(server, "config", None)
        if not hasattr(server, "server_state") or not hasattr(config, "timeout_graceful_shutdown"):
            return
        grace = config.timeout_graceful_shutdown
        if grace is None or grace > SHUTDOWN_GRACE_S:
            config.timeout_graceful_shutdown = SHUTDOWN_GRACE_S
        watchdog = threading.Timer(self.exit_after_s, self._exit_now)
        watchdog.daemon = True  # a process that exits on its own is not held by it
        watchdog.start()

    def _exit_now(self) -> None:
        log.error("still running %.0f s after the drain ended (stuck in shutdown): exiting now",
                  self.exit_after_s)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    def _pass_on(self, signum: int, frame: FrameType | None) -> None:
        handler = self._handlers.get(signum)
        if callable(handler):
            handler(signum, frame)
        else:  # no handler of the server's: the default action (terminate)
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


_drain = Drain()


def get_drain() -> Drain:
    return _drain
