"""Graceful shutdown of `harmscan serve` (issue 22, serving/lifecycle.py): SIGTERM during load answers every
request it accepted (200, or a clean 503 once readiness dropped), never a connection error; the wrapper
exits 0, the port is free and a new server starts on it. A real server on loopback, a bounded load (8 long
and 40 short requests, a few late ones)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bentoml")
httpx = pytest.importorskip("httpx")

from classifier_helpers import free_port, wait_until_ready  # noqa: E402

# About 95,000 characters: many token windows, so that the long lane stays busy for seconds.
LONG = "a long post that goes on and on about many things " * 1900


@pytest.fixture(scope="module")
def bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harmscan.training.export import export_bundle

    return Path(export_bundle(tiny_model_dir, tmp_path_factory.mktemp("shutdown") / "bundle"))


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(bundle: Path, tmp: Path, port: int, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp / f"server-{time.monotonic_ns()}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENTOML_HOME": str(tmp / "bentoml_home"),
           "BENTOML_DO_NOT_TRACK": "true"}
    cmd = [sys.executable, "-m", "harmscan.cli", "serve", "--bundle", str(bundle), "--port", str(port), *extra]
    with open(log, "wb") as out:
        # Own session, so that a failing test can still kill everything it started.
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until_ready(proc, f"http://127.0.0.1:{port}", log)
    return proc, log


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _long_lane_depth(metrics: str) -> float:
    match = re.search(r'^harmscan_queue_windows\{lane="long"\} (\S+)$', metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _load_then_sigterm(url: str, proc: subprocess.Popen[bytes], long_windows: int) -> dict[str, Any]:
    """8 long + 40 short requests; SIGTERM once the long lane holds at least three long requests (so that
    requests are certainly running), then the readiness probe and a few late requests."""
    out: dict[str, Any] = {"answers": [], "late": []}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def call(kind: str, body: dict[str, Any]) -> tuple[str, Any, float]:
            try:
                resp = await client.post("/v1/scan", json=body)
            except httpx.TransportError as exc:  # what the drain must prevent
                return kind, exc, time.monotonic()
            return kind, resp, time.monotonic()

        tasks = [asyncio.create_task(call("long", {"texts": [LONG]})) for _ in range(8)]
        async with httpx.AsyncClient(base_url=url, timeout=10) as probe:
            deadline = time.monotonic() + 60
            while _long_lane_depth((await probe.get("/metrics")).text) < 3 * long_windows:
                assert time.monotonic() < deadline, "the long requests never reached the model"
                await asyncio.sleep(0.02)
            tasks += [asyncio.create_task(call("short", {"texts": [f"short text {i}"]})) for i in range(40)]
            await asyncio.sleep(0)  # let the short requests start
            proc.send_signal(signal.SIGTERM)  # the wrapper forwards it to BentoML's processes
            out["sigterm_at"] = time.monotonic()
            ready = await probe.get("/readyz")
            while ready.status_code == 200:
                ready = await probe.get("/readyz")
            out["ready_after_sigterm"] = ready.status_code
            # Readiness is off: these arrive after it dropped, and are answered 503, not cut off.
            for i in range(5):
                try:
                    out["late"].append(await probe.post("/v1/scan", json={"texts": [f"late {i}"]}))
                except httpx.TransportError as exc:
                    out["late"].append(exc)
        out["answers"] = await asyncio.gather(*tasks)
    return out


def _assert_clean_503(resp: Any) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"]
    error = resp.json()["error"]
    assert error["code"] == "shutting_down" and error["type"] == "server_error" and error["message"]


def test_sigterm_under_load_answers_every_request_and_exits_clean(bundle: Path, tmp_path: Path) -> None:
    from harmscan.classifiers import HarmClassifier

    long_windows = HarmClassifier.load(bundle, variant="fp32", threads=1).count_windows([LONG])[0]
    assert long_windows > 50  # the long lane really has work to drain
    port = free_port()
    # A queue that admits all 8 long requests: this test is about shutdown, not backpressure.
    proc, log = _start(bundle, tmp_path, port, "--drain-timeout", "120", "--max-queue", "100000")
    try:
        out = asyncio.run(_load_then_sigterm(f"http://127.0.0.1:{port}", proc, long_windows))
        rc = proc.wait(timeout=150)
    finally:
        _kill(proc)
    server_log = log.read_text()
    errors = [(kind, repr(r)) for kind, r, _ in out["answers"] if isinstance(r, Exception)]
    assert not errors, f"{len(errors)} requests got a connection error: {errors[:3]}\n{server_log[-2000:]}"
    for _kind, resp, _ in out["answers"]:
        if resp.status_code == 200:
            assert len(resp.json()["results"]) == 1
        else:
            _assert_clean_503(resp)
    # The long requests running at SIGTERM were drained: answered with results after the signal.
    drained = [r for kind, r, at in out["answers"]
               if kind == "long" and r.status_code == 200 and at > out["sigterm_at"]]
    assert drained, "no request that was running at SIGTERM got its answer"
    assert out["ready_after_sigterm"] == 503
    late_errors = [repr(r) for r in out["late"] if isinstance(r, Exception)]
    assert not late_errors, late_errors
    for resp in out["late"]:
        _assert_clean_503(resp)
    assert rc == 0, server_log[-3000:]
    assert "draining" in server_log and "Traceback" not in server_log
    deadline = time.monotonic() + 15
    while _port_taken(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_taken(port), "a process still holds the port after a clean shutdown"

    # Restart on the same port.
    proc, _ = _start(bundle, tmp_path, port)
    try:
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/scan", json={"texts": ["after restart"]}, timeout=60)
        assert resp.status_code == 200 and len(resp.json()["results"]) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        _kill(proc)


# -- the drain timeout, in-process ---------------------------------------------------------------------
def test_drain_timeout_answers_running_requests_503_then_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request still running when the drain timeout is up gets a 503 `shutting_down`, not a cut
    connection, and only then does the server's own handler (uvicorn's) get the signal."""
    import anyio

    from harmscan.serving import lifecycle, middleware
    from harmscan.serving.config import ServeConfig

    drain = lifecycle.Drain()
    monkeypatch.setattr(middleware, "get_drain", lambda: drain)
    monkeypatch.setattr(lifecycle, "QUIET_S", 0.05)
    passed_on: list[int] = []

    async def stuck_app(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep(3600)  # a request that would outlive any drain timeout

    app = middleware.HarmscanMiddleware(stuck_app, ServeConfig())
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def main() -> None:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: passed_on.append(signum))
        try:
            assert drain.install(timeout_s=0.3)
            scope = {"type": "http", "path": "/v1/labels", "method": "GET", "headers": []}
            request = asyncio.ensure_future(app(scope, receive, send))
            await asyncio.sleep(0.05)
            assert drain.in_flight == 1
            drain._on_signal(signal.SIGTERM, None)
            assert drain.draining
            await asyncio.wait_for(request, timeout=10)
            while not passed_on:
                await asyncio.sleep(0.02)
        finally:
            for sig, handler in drain._handlers.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGTERM, previous)

    asyncio.run(main())
    assert passed_on == [signal.SIGTERM]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 503 and (b"connection", b"close") in start["headers"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b'"shutting_down"' in body


# -- the exit after the drain is bounded, and retries do not hold the drain open (the soak, issue 22) -------
async def _hang_up_half_way(port: int) -> None:
    """A POST whose client closes the connection half-way through the body (the soak's slow clients)."""
    body = b'{"texts": ["a text whose client goes away before it is sent"]}'
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/scan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()


def _wait_exit(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def test_sigterm_with_clients_still_sending_exits_within_the_drain_timeout(bundle: Path, tmp_path: Path) -> None:
    """Clients that hung up half-way through a body, then SIGTERM while a keep-alive client keeps sending:
    the server exits within the drain timeout and a few seconds, with 0. (Before: every hung-up request
    kept a task alive for the traffic timeout, 120 s, and uvicorn's shutdown waited for it with no limit.)"""
    drain_timeout = 3
    port = free_port()
    proc, log = _start(bundle, tmp_path, port, "--drain-timeout", str(drain_timeout))
    statuses: list[int] = []

    async def main() -> float:
        await asyncio.gather(*(_hang_up_half_way(port) for _ in range(3)))
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, limits=limits) as client:
            async def keep_sending() -> None:
                while not stop.is_set():
                    try:
                        statuses.append((await client.post("/v1/scan", json={"texts": ["again"]})).status_code)
                    except httpx.TransportError:  # after the listener closed
                        pass
                    await asyncio.sleep(0.05)

            sender = asyncio.create_task(keep_sending())
            while not statuses:
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            sigterm_at = time.monotonic()
            rc = await asyncio.to_thread(_wait_exit, proc, drain_timeout + 60)
            exited_after = time.monotonic() - sigterm_at
            stop.set()
            await sender
        assert rc == 0, f"exit code {rc} after {exited_after:.1f} s:\n{log.read_text()[-3000:]}"
        return exited_after

    try:
        exited_after = asyncio.run(main())
    finally:
        _kill(proc)
    server_log = log.read_text()
    assert exited_after < drain_timeout + 8, f"exited {exited_after:.1f} s after SIGTERM:\n{server_log[-3000:]}"
    assert 200 in statuses and 503 in statuses, statuses  # it kept sending, during the drain too
    assert "Traceback" not in server_log


def test_retrying_clients_do_not_hold_the_drain_open(bundle: Path, tmp_path: Path) -> None:
    """Clients that retry every Retry-After second while a long request accepted before SIGTERM runs: the
    long request gets its 200, and the drain ends soon after it rather than at the drain timeout."""
    from harmscan.classifiers import HarmClassifier

    long_windows = HarmClassifier.load(bundle, variant="fp32", threads=1).count_windows([LONG])[0]
    drain_timeout = 90
    port = free_port()
    proc, log = _start(bundle, tmp_path, port, "--drain-timeout", str(drain_timeout), "--max-queue", "100000")
    url = f"http://127.0.0.1:{port}"
    refused: list[int] = []

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()

        async def retrying_client(offset: float) -> None:
            await asyncio.sleep(offset)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        resp = await client.post("/v1/scan", json={"texts": ["retry me"]})
                    except httpx.TransportError:
                        await asyncio.sleep(0.2)
                        continue
                    if resp.status_code == 503:
                        _assert_clean_503(resp)
                        refused.append(503)
                        await asyncio.sleep(float(resp.headers["retry-after"]))

        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            long_request = asyncio.create_task(client.post("/v1/scan", json={"texts": [LONG]}))
            deadline = time.monotonic() + 60
            while _long_lane_depth((await client.get("/metrics")).text) < long_windows:
                assert time.monotonic() < deadline, "the long request never reached the model"
                await asyncio.sleep(0.02)
            # Four clients a quarter of Retry-After apart: a refusal every 0.25 s, more often than QUIET_S.
            clients = [asyncio.create_task(retrying_client(i * 0.25)) for i in range(4)]
            proc.send_signal(signal.SIGTERM)
            sigterm_at = time.monotonic()
            long_resp = await long_request
            answered_at = time.monotonic()
            rc = await asyncio.to_thread(_wait_exit, proc, drain_timeout + 30)
            exited_at = time.monotonic()
            stop.set()
            await asyncio.gather(*clients)
        return {"long": long_resp, "rc": rc, "sigterm_at": sigterm_at, "answered_at": answered_at,
                "exited_at": exited_at}

    try:
        out = asyncio.run(main())
    finally:
        _kill(proc)
    server_log = log.read_text()
    assert out["long"].status_code == 200, out["long"].text
    assert len(out["long"].json()["results"]) == 1
    assert out["rc"] == 0, server_log[-3000:]
    assert len(refused) >= 4, "the clients were not retrying during the drain"
    after_answer = out["exited_at"] - out["answered_at"]
    assert after_answer < 10, f"the drain ran {after_answer:.1f} s past its last request:\n{server_log[-3000:]}"
    assert out["exited_at"] - out["sigterm_at"] < drain_timeout - 20
    assert "drained in" in server_log and "drain timeout" not in server_log


# -- in-process: the pieces of the above, fast --------------------------------------------------------
def test_a_client_that_hangs_up_mid_body_does_not_leave_its_task_waiting() -> None:
    """BentoML's TimeoutMiddleware (above ours) waits for the first message of a response, or its traffic
    timeout: a request whose client hung up must end that exchange (a 499 that uvicorn drops)."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    from harmscan.serving import middleware
    from harmscan.serving.config import ServeConfig

    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the body was incomplete: the app must not be called")

    app = TimeoutMiddleware(middleware.HarmscanMiddleware(never_called, ServeConfig()), timeout=120)
    messages: Iterator[dict[str, Any]] = iter([
        {"type": "http.request", "body": b'{"texts": ["ha', "more_body": True}, {"type": "http.disconnect"}])
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/v1/scan", "method": "POST",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")]}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=5))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499


def test_refused_requests_do_not_keep_the_drain_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request is running at the signal and refusals keep arriving (every 0.05 s, well under QUIET_S):
    the signal goes on QUIET_S after the request ends, not at the drain timeout."""
    from harmscan.serving import lifecycle

    drain = lifecycle.Drain()
    passed_on: list[float] = []

    async def main() -> float:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: passed_on.append(time.monotonic()))
        try:
            assert drain.install(timeout_s=30)
            with drain.track():
                drain._on_signal(signal.SIGTERM, None)
                await asyncio.sleep(0.3)
                ended = time.monotonic()
            while not passed_on:
                assert time.monotonic() - ended < 10, "the drain did not end"
                drain.refuse()
                with drain.track():  # a probe while draining: it does not count either
                    await asyncio.sleep(0.05)
            return ended
        finally:
            for sig, handler in drain._handlers.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGTERM, previous)

    ended = asyncio.run(main())
    assert lifecycle.QUIET_S <= passed_on[0] - ended < lifecycle.QUIET_S + 1
    assert drain.refused > 0


def test_watchdog_exits_a_server_stuck_after_its_drain(tmp_path: Path) -> None:
    """A server whose shutdown never ends (a uvicorn-like handler that ignores the signal): its graceful-
    shutdown limit is set and the process exits, non-zero, the watchdog's time after the drain."""
    from harmscan.serving import lifecycle

    script = tmp_path / "stuck.py"
    script.write_text(
        "import asyncio, signal, sys, time\n"
        "from types import SimpleNamespace\n"
        "from harmscan.serving import lifecycle\n"
        "class Server:\n"
        "    config = SimpleNamespace(timeout_graceful_shutdown=None)\n"
        "    server_state = SimpleNamespace()\n"
        "    def handle_exit(self, signum, frame):\n"
        "        print('grace', self.config.timeout_graceful_shutdown, flush=True)\n"
        "server = Server()\n"
        "signal.signal(signal.SIGTERM, server.handle_exit)\n"
        "async def main():\n"
        "    drain = lifecycle.Drain(exit_after_s=0.5)\n"
        "    drain.install(timeout_s=5)\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    await asyncio.sleep(30)\n"
        "    sys.exit(0)\n"
        "asyncio.run(main())\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"grace {lifecycle.SHUTDOWN_GRACE_S}" in done.stdout, done.stdout
    assert time.monotonic() - started < 20
    assert "exiting now" in done.stderr


def test_a_request_refused_while_draining_is_read_before_its_503(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 503 comes after the whole body was read: closing a connection with unread data resets it, and a
    client still sending its body (the soak's slow clients) lost the 503 to a connection error."""
    from harmscan.serving import lifecycle, middleware
    from harmscan.serving.config import ServeConfig

    drain = lifecycle.Drain()
    drain.draining = True
    monkeypatch.setattr(middleware, "get_drain", lambda: drain)

    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a draining server refuses new requests")

    app = middleware.HarmscanMiddleware(never_called, ServeConfig())
    chunks = [b'{"texts": ', b'["a slow', b' body"]}']
    events: list[str] = []

    async def receive() -> dict[str, Any]:
        events.append("receive")
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])
        if message["type"] == "http.response.start":
            assert message["status"] == 503

    scope = {"type": "http", "path": "/v1/scan", "method": "POST", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert events == ["receive"] * 3 + ["http.response.start", "http.response.body"]
    assert drain.refused == 1
