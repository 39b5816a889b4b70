"""Soak test of `harmscan serve` with faults injected, run by hand; results go to docs/benchmarks.md ("Soak").

Bounded and loopback-only: it starts `harmscan serve` itself on a free 127.0.0.1 port (API keys and audit
log on), drives mixed load for `--minutes` from asyncio + httpx with a fixed number of clients (short texts
on /v1/scan and /v1/moderations, a few long texts, bad requests that must get their 4xx, and slow clients
that send their body in pieces, some hanging up half-way), and on a schedule injects faults into the
BentoML worker process (the child of `bentoml serve` that runs the service): SIGKILL, which BentoML's
process manager (circus) answers by starting a new worker, and SIGTERM, which the worker must drain before
it exits and is restarted. At the end it sends SIGTERM to the `harmscan serve` wrapper itself while
requests are in flight: every request already sent must be answered, and the wrapper must exit with 0.

    python benchmarks/soak.py                          # 30 minutes, a fault every 5, bundle artifacts/bundle
    python benchmarks/soak.py --bundle B --minutes 3 --fault-every-min 1 --window-min 1 --warmup-s 20

Reported per window (`--window-min`, default 5) of request end times: requests, errors, refused, cut, and
p50 / p99 latency of the short and the long texts (200 answers only), with the RSS of the server's process
tree (wrapper + `bentoml serve` + worker) sampled every `--sample-s`:
- errors: transport errors outside fault windows, any 5xx other than a clean 503 (one with Retry-After),
  a bad request not answered with its 4xx, a good one answered with another 4xx;
- refused: 429 and clean 503 (queue full, overloaded, shutting down): back-pressure, not errors;
- cut: transport errors of requests in flight in a fault window (from the signal until the new worker is
  ready, plus 2 s): a SIGKILL loses what the worker was doing; after a SIGTERM this must stay 0.
A fault window's requests count in their window as usual. RSS growth compares the sample taken when
warm-up ends with the last one before the final SIGTERM; after a SIGKILL the worker is a fresh process, so
the table also gives each window's largest sample. Exit code: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # a BentoML dependency
import serve_load  # this folder is on sys.path when the script runs

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "HARMSCAN_SOAK_KEYS"
KEY = "soak-key"
SHORT_TEXTS = (
    "Had a lovely walk by the river this morning; the dogs chased ducks and we stopped for coffee nearby.",
    "Can anyone recommend a good recipe for a vegetarian lasagne that freezes well?",
    "The train was late again, so I missed the first half of the meeting. Not my best Monday.",
    "You are an idiot and everybody in this thread knows it.",
    "Our team shipped the release on time, thanks to everyone who stayed late on Friday.",
    "How do I kill a process that ignores SIGTERM on Linux?",
)
LONG_SENTENCES = (
    "The council met on Tuesday to discuss the new cycle lanes along the harbour road.",
    "Several residents asked whether the bus timetable would change during the roadworks.",
    "A local bakery donated bread for the volunteers who cleaned the beach after the storm.",
    "The library will extend its opening hours in December, including two Sunday afternoons.",
)
# Bad requests and the status each must get: (name, path, body bytes, headers, expected status).
BAD_REQUESTS: tuple[tuple[str, str, bytes, dict[str, str], int], ...] = (
    ("no key", "/v1/scan", b'{"texts": ["hello"]}', {}, 401),
    ("wrong key", "/v1/scan", b'{"texts": ["hello"]}', {"Authorization": "Bearer wrong"}, 401),
    ("wrong field", "/v1/scan", b'{"text": ["hello"]}', {}, 400),
    ("not json", "/v1/scan", b"{texts: hello", {}, 400),
    ("unknown threshold", "/v1/scan", b'{"texts": ["hello"], "thresholds": {"nope": 0.5}}', {}, 400),
    ("text too long", "/v1/scan", json.dumps({"texts": ["a" * 100_001]}).encode(), {}, 400),
    ("too many texts", "/v1/moderations", json.dumps({"input": ["hi"] * 257}).encode(), {}, 400),
)
WORKER_MARK = "_bentoml_impl.worker"


def percentile(values: list[float], q: float) -> float | None:
    return serve_load.percentile(values, q) if values else None


def long_text(chars: int) -> str:
    return serve_load.long_text(chars, LONG_SENTENCES)


@dataclass
class Outcome:
    kind: str  # short, moderation, long, bad, slow
    start: float  # seconds since the end of warm-up
    end: float
    status: int | None  # None: no HTTP answer (connection refused, reset, closed)
    expected: int = 200
    clean: bool = False  # a 429/503 with Retry-After
    code: str | None = None  # the error code of a 4xx/5xx answer
    texts: int = 1


@dataclass
class Fault:
    kind: str  # kill or term
    at: float
    pid: int
    new_pid: int | None = None
    recovered_at: float | None = None
    stuck: str | None = None  # what the old worker still held, when it outlived its drain

    @property
    def window(self) -> tuple[float, float]:
        return self.at, (self.recovered_at + 2.0) if self.recovered_at is not None else float("inf")


@dataclass
class Soak:
    """The running soak: the server, the outcomes, the faults and the RSS samples."""

    args: argparse.Namespace
    port: int
    server: subprocess.Popen[bytes]
    t0: float = 0.0  # perf_counter at the end of warm-up
    outcomes: list[Outcome] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    rss: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    seen: dict[int, psutil.Process] = field(default_factory=dict)  # every server process, for clean-up

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def budget_left(self) -> bool:
        if self.sent >= self.args.max_requests:
            self.stop.set()
        if not self.stop.is_set():
            self.sent += 1
        return not self.stop.is_set()


# -- the server ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "harmscan.cli", "serve", "--bundle", str(args.bundle), "--port", str(port),
           "--threads", str(args.threads), "--api-keys-env", KEY_ENV, "--audit-log", str(workdir / "audit.jsonl"),
           "--drain-timeout", str(args.drain_timeout)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "BENTOML_DO_NOT_TRACK": "true",
           "BENTOML_HOME": str(workdir / "bentoml"), KEY_ENV: KEY}
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - the child holds it; closed with the process
    try:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def find_worker(pid: int) -> psutil.Process | None:
    for proc in tree(pid):
        with suppress(psutil.Error):
            if any(WORKER_MARK in part for part in proc.cmdline()):
                return proc
    return None


def sample_rss(soak: Soak) -> dict[str, Any]:
    sample: dict[str, Any] = {"t": round(soak.now(), 2), "total_mb": 0.0, "wrapper_mb": 0.0, "bentoml_mb": 0.0,
                              "worker_mb": 0.0, "worker_pids": [], "processes": 0}
    for proc in tree(soak.server.pid):
        try:
            rss = proc.memory_info().rss / 2**20
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        soak.seen.setdefault(proc.pid, proc)
        sample["total_mb"] += rss
        sample["processes"] += 1
        if proc.pid == soak.server.pid:
            sample["wrapper_mb"] += rss
        elif WORKER_MARK in cmd:
            sample["worker_mb"] += rss
            sample["worker_pids"].append(proc.pid)
        else:
            sample["bentoml_mb"] += rss
    return sample


def describe(proc: psutil.Process) -> str:
    """A worker's state and TCP connections (local port -> peer port, state), for a worker that hangs."""
    try:
        conns = proc.net_connections(kind="tcp")
        status = proc.status()
    except psutil.Error as exc:
        return f"({type(exc).__name__})"
    held = [f"{c.laddr.port}->{c.raddr.port if c.raddr else '-'} {c.status}" for c in conns]
    return f"status {status}, {len(held)} TCP socket(s): {', '.join(held)}"


async def ready(url: str, timeout: float = 2.0) -> bool:
    try:
        # A new connection each time: it reaches the worker that runs now.
        async with httpx.AsyncClient(timeout=timeout) as http:
            return (await http.get(url + "/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


# -- the load -----------------------------------------------------------------------------------------------
def _error_code(resp: httpx.Response) -> str | None:
    with suppress(ValueError, AttributeError, TypeError):
        return str(resp.json()["error"].get("code"))
    return None


async def client_loop(soak: Soak, index: int) -> None:
    """One client with its own connection, sending back-to-back requests of a kind drawn at random."""
    args = soak.args
    rng = random.Random(args.seed * 1000 + index)
    long_body = {"texts": [long_text(args.long_chars)]}
    async with httpx.AsyncClient(base_url=soak.url, timeout=args.timeout,
                                 headers={"Authorization": f"Bearer {KEY}"},
                                 limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as http:
        while soak.budget_left():
            draw = rng.random()
            headers: dict[str, str] = {}
            if draw < args.long_fraction:
                kind, path, content, expected, texts = "long", "/v1/scan", json.dumps(long_body).encode(), 200, 1
            elif draw < args.long_fraction + args.bad_fraction:
                _, path, content, headers, expected = rng.choice(BAD_REQUESTS)
                kind, texts = "bad", 0
                if "Authorization" not in headers and expected == 401:
                    headers = {"Authorization": ""}  # an empty value, which the server reads as no key
            else:
                batch = [rng.choice(SHORT_TEXTS) for _ in range(1 if rng.random() < 0.8 else 4)]
                if rng.random() < args.moderation_fraction:
                    kind, path, content = "moderation", "/v1/moderations", json.dumps({"input": batch}).encode()
                else:
                    kind, path, content = "short", "/v1/scan", json.dumps({"texts": batch}).encode()
                expected, texts = 200, len(batch)
            start = soak.now()
            try:
                resp = await http.post(path, content=content,
                                       headers={"Content-Type": "application/json", **headers})
            except httpx.TransportError:
                soak.record(Outcome(kind, start, soak.now(), None, expected, texts=texts))
                await asyncio.sleep(0.05)  # the server is gone or restarting: do not spin
                continue
            status = resp.status_code
            retry_after = resp.headers.get("retry-after")
            soak.record(Outcome(kind, start, soak.now(), status, expected,
                                clean=status in (429, 503) and retry_after is not None,
                                code=_error_code(resp) if status >= 400 else None, texts=texts))
            if status in (429, 503) and retry_after is not None:
                # A well-behaved client waits as told (a retry at once would keep a draining server busy).
                with suppress(ValueError):
                    await asyncio.sleep(min(float(retry_after), 5.0))


async def slow_request(soak: Soak, body: bytes, abandon: bool) -> tuple[int | None, bool]:
    """A POST /v1/scan whose body arrives in `--slow-chunks` pieces `--slow-delay-s` apart (raw HTTP/1.1,
    so that Content-Length is sent up front); with `abandon` the client hangs up half-way. The status, or
    None when there is no answer, and whether the answer carries Retry-After (a clean 503)."""
    args = soak.args
    reader, writer = await asyncio.open_connection("127.0.0.1", soak.port)
    try:
        head = (f"POST /v1/scan HTTP/1.1\r\nHost: 127.0.0.1:{soak.port}\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        writer.write(head.encode("ascii"))
        step = max(1, -(-len(body) // args.slow_chunks))
        for offset in range(0, len(body), step):
            if abandon and offset >= len(body) // 2:
                return None, False
            writer.write(body[offset : offset + step])
            await writer.drain()
            await asyncio.sleep(args.slow_delay_s)
        line = await asyncio.wait_for(reader.readline(), args.timeout)
        if not line:
            return None, False
        status = int(line.split()[1])
        rest = await asyncio.wait_for(reader.read(), args.timeout)  # Connection: close: the answer ends at EOF
        headers = b"\r\n" + rest.split(b"\r\n\r\n", 1)[0].lower()
        return status, b"\r\nretry-after:" in headers
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def slow_loop(soak: Soak, index: int) -> None:
    rng = random.Random(soak.args.seed * 1000 + 500 + index)
    n = 0
    while soak.budget_left():
        n += 1
        abandon = n % 3 == 0
        body = json.dumps({"texts": [rng.choice(SHORT_TEXTS)]}).encode()
        start = soak.now()
        try:
            status, clean = await slow_request(soak, body, abandon)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
            status, clean = None, False
        if abandon:
            soak.record(Outcome("abandoned", start, soak.now(), status, expected=0, texts=0))
            continue
        soak.record(Outcome("slow", start, soak.now(), status, clean=clean))
        if status is None:
            await asyncio.sleep(0.05)


# -- faults and samples ---------------------------------------------------------------------------------
async def sampler(soak: Soak) -> None:
    while not soak.stop.is_set():
        soak.rss.append(await asyncio.to_thread(sample_rss, soak))
        with suppress(TimeoutError):
            await asyncio.wait_for(soak.stop.wait(), soak.args.sample_s)


async def injector(soak: Soak) -> None:
    args = soak.args
    if args.fault_every_min <= 0:
        return
    kinds = args.faults.split(",")
    n = 0
    while True:
        n += 1
        at = n * args.fault_every_min * 60
        if at > args.minutes * 60 - 30:  # leave time to recover before the final SIGTERM
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(soak.stop.wait(), max(0.0, at - soak.now()))
            return  # the load stopped early
        worker = find_worker(soak.server.pid)
        if worker is None:
            print(f"[{soak.now():7.1f} s] no worker process found: fault {n} skipped", flush=True)
            continue
        kind = kinds[(n - 1) % len(kinds)]
        fault = Fault(kind, soak.now(), worker.pid)
        soak.faults.append(fault)
        with suppress(psutil.Error):
            worker.send_signal(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
        deadline = time.monotonic() + args.recover_timeout_s
        described = False
        while time.monotonic() < deadline and not soak.stop.is_set():
            new = find_worker(soak.server.pid)
            if new is not None and new.pid != worker.pid and await ready(soak.url):
                fault.new_pid, fault.recovered_at = new.pid, soak.now()
                break
            if not described and soak.now() - fault.at > args.drain_timeout + 15:
                described = True  # the old worker outlived its drain: say what it still holds
                fault.stuck = describe(worker)
                print(f"[{soak.now():7.1f} s] worker {worker.pid} still running after SIGTERM: {fault.stuck}",
                      flush=True)
            await asyncio.sleep(0.2)
        if fault.recovered_at is None:
            print(f"[{soak.now():7.1f} s] {kind} of worker {worker.pid}: NOT recovered within "
                  f"{args.recover_timeout_s} s; stopping the load", flush=True)
            soak.stop.set()
            return
        print(f"[{soak.now():7.1f} s] {kind} of worker {worker.pid}: worker {fault.new_pid} ready after "
              f"{fault.recovered_at - fault.at:.1f} s", flush=True)


async def progress(soak: Soak) -> None:
    while not soak.stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(soak.stop.wait(), 60)
        done = [o for o in soak.outcomes if o.start >= 0]
        rss = soak.rss[-1]["total_mb"] if soak.rss else 0.0
        bad = sum(1 for o in done if classify(o, soak.faults) == "error")
        print(f"[{soak.now():7.1f} s] {len(done)} requests, {bad} errors, RSS {rss:.0f} MB", flush=True)


# -- the final SIGTERM ----------------------------------------------------------------------------------
async def final_sigterm(soak: Soak) -> dict[str, Any]:
    """Requests in flight (long and short ones on fresh connections, with the clients still sending), then
    SIGTERM to the wrapper; every request sent before the signal must be answered."""
    args = soak.args
    burst: list[Outcome] = []

    async def one(kind: str, body: dict[str, Any]) -> None:
        start = soak.now()
        async with httpx.AsyncClient(base_url=soak.url, timeout=args.timeout,
                                     headers={"Authorization": f"Bearer {KEY}"}) as http:
            try:
                resp = await http.post("/v1/scan", json=body)
                status: int | None = resp.status_code
                clean = "retry-after" in resp.headers
            except httpx.TransportError:
                status, clean = None, False
        outcome = Outcome(kind, start, soak.now(), status, clean=clean)
        burst.append(outcome)
        soak.record(outcome)

    tasks = [asyncio.create_task(one("long", {"texts": [long_text(args.long_chars)]}))
             for _ in range(args.final_long)]
    tasks += [asyncio.create_task(one("short", {"texts": [SHORT_TEXTS[i % len(SHORT_TEXTS)]]}))
              for i in range(args.final_short)]
    await asyncio.sleep(0.5)  # sent and being scored (a long text takes seconds)
    t_sig = soak.now()
    soak.server.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + args.drain_timeout + 30
    while soak.server.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    exit_code = soak.server.poll()
    exited_after = soak.now() - t_sig
    soak.stop.set()
    await asyncio.gather(*tasks)
    return {"t_sigterm": t_sig, "burst": [asdict(o) for o in burst], "exit_code": exit_code,
            "exited_after_s": round(exited_after, 2)}


def drain_verdict(soak: Soak, final: dict[str, Any]) -> dict[str, Any]:
    t_sig = final["t_sigterm"]
    in_flight = [o for o in soak.outcomes if o.start < t_sig <= o.end and o.kind != "abandoned"]
    after = [o for o in soak.outcomes if o.start >= t_sig]
    statuses: dict[str, int] = {}
    for o in in_flight:
        statuses[str(o.status)] = statuses.get(str(o.status), 0) + 1
    after_statuses: dict[str, int] = {}
    for o in after:
        after_statuses[str(o.status)] = after_statuses.get(str(o.status), 0) + 1
    cut = sum(1 for o in in_flight if o.status is None)
    return {
        "in_flight": len(in_flight), "in_flight_statuses": statuses, "cut": cut,
        "sent_after_sigterm": len(after), "after_statuses": after_statuses,
        "exit_code": final["exit_code"], "exited_after_s": final["exited_after_s"],
        "drained": cut == 0 and final["exit_code"] == 0,
    }


# -- the report -----------------------------------------------------------------------------------------
def in_fault_window(o: Outcome, faults: list[Fault]) -> bool:
    return any(o.start <= hi and o.end >= lo for lo, hi in (f.window for f in faults))


def classify(o: Outcome, faults: list[Fault]) -> str:
    """ok, refused, cut or error (docstring of this module); 'abandoned' for hang-ups."""
    if o.kind == "abandoned":
        return "abandoned"
    if o.status is None:
        return "cut" if in_fault_window(o, faults) else "error"
    if o.status == o.expected:
        return "ok"
    if o.status == 429 or (o.status == 503 and o.clean):
        return "refused"
    return "error"


def windows(soak: Soak, end: float) -> list[dict[str, Any]]:
    width = soak.args.window_min * 60
    rows = []
    count = max(1, int(-(-end // width)))
    for w in range(count):
        # The last window also takes the requests that started before the end and finished after it.
        lo, hi = w * width, (w + 1) * width if w < count - 1 else float("inf")
        mine = [o for o in soak.outcomes if lo <= o.end < hi and 0 <= o.start < end]
        kinds = [classify(o, soak.faults) for o in mine]
        short = [(o.end - o.start) * 1e3 for o, k in zip(mine, kinds, strict=True)
                 if k == "ok" and o.kind in ("short", "moderation")]
        long = [(o.end - o.start) * 1e3 for o, k in zip(mine, kinds, strict=True) if k == "ok" and o.kind == "long"]
        samples = [s for s in soak.rss if lo <= s["t"] < hi]
        rows.append({
            "window": w, "from_min": lo / 60, "to_min": min(hi, end) / 60, "requests": len(mine),
            "ok": kinds.count("ok"), "errors": kinds.count("error"), "refused": kinds.count("refused"),
            "cut": kinds.count("cut"), "abandoned": kinds.count("abandoned"),
            "short_p50_ms": percentile(short, 0.5), "short_p99_ms": percentile(short, 0.99),
            "long_p50_ms": percentile(long, 0.5), "long_p99_ms": percentile(long, 0.99),
            "long_ok": len(long), "rss_max_mb": max((s["total_mb"] for s in samples), default=None),
            "faults": [f.kind for f in soak.faults if lo <= f.at < hi],
        })
    return rows


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(soak: Soak, end: float, final: dict[str, Any], workdir: Path) -> dict[str, Any]:
    args = soak.args
    rows = windows(soak, end)
    measured = [o for o in soak.outcomes if 0 <= o.start < end]
    classes = [classify(o, soak.faults) for o in measured]
    errors = [o for o, k in zip(measured, classes, strict=True) if k == "error"]
    error_kinds: dict[str, int] = {}
    for o in errors:
        key = f"{o.kind} -> {o.status if o.status is not None else 'no answer'}" + (f" {o.code}" if o.code else "")
        error_kinds[key] = error_kinds.get(key, 0) + 1
    refused_codes: dict[str, int] = {}
    for o, k in zip(measured, classes, strict=True):
        if k == "refused":
            refused_codes[str(o.code)] = refused_codes.get(str(o.code), 0) + 1
    start_rss = next((s for s in soak.rss if s["t"] >= 0), None)
    end_rss = [s for s in soak.rss if s["t"] < final["t_sigterm"]]
    rss = {"start_mb": start_rss["total_mb"] if start_rss else None,
           "end_mb": end_rss[-1]["total_mb"] if end_rss else None}
    rss["growth_pct"] = (100 * (rss["end_mb"] / rss["start_mb"] - 1)
                         if rss["start_mb"] and rss["end_mb"] else None)
    for part in ("wrapper_mb", "bentoml_mb", "worker_mb"):
        rss[f"start_{part}"] = start_rss[part] if start_rss else None
        rss[f"end_{part}"] = end_rss[-1][part] if end_rss else None
    audit = workdir / "audit.jsonl"
    with audit.open("rb") as lines:
        audit_lines = sum(1 for _ in lines)
    answered_texts = sum(o.texts for o in soak.outcomes if o.status == 200)
    drain = drain_verdict(soak, final)
    fault_rows = []
    for f in soak.faults:
        lo, hi = f.window
        cut = sum(1 for o, k in zip(measured, classes, strict=True) if k == "cut" and o.start <= hi and o.end >= lo)
        fault_rows.append({**asdict(f), "recovery_s": (f.recovered_at - f.at) if f.recovered_at else None,
                           "cut": cut})
    checks = {
        "no errors": not errors,
        "every fault recovered": all(f.recovered_at is not None for f in soak.faults),
        "no request cut by a worker SIGTERM": all(r["cut"] == 0 for r in fault_rows if r["kind"] == "term"),
        "final SIGTERM drained, exit code 0": drain["drained"],
        f"RSS growth <= {args.max_rss_growth_pct:g}%": rss["growth_pct"] is not None
        and rss["growth_pct"] <= args.max_rss_growth_pct,
        "every answered text audited": audit_lines >= answered_texts,
    }
    result = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor(), "load_avg": os.getloadavg()},
        "duration_s": end, "requests": len(measured), "warmup_requests": sum(o.start < 0 for o in soak.outcomes),
        "errors": len(errors), "error_kinds": error_kinds, "refused": classes.count("refused"),
        "refused_codes": refused_codes, "cut": classes.count("cut"), "windows": rows, "faults": fault_rows,
        "rss": rss, "rss_samples": soak.rss, "drain": drain, "audit_lines": audit_lines,
        "answered_texts": answered_texts, "checks": checks, "server_log": str(workdir / "server.log"),
    }

    print(f"\nsoak: {end / 60:.1f} min, {len(measured)} requests ({result['warmup_requests']} in warm-up, not "
          f"counted), {len(soak.faults)} fault(s), bundle {args.bundle}, {args.concurrency} clients + "
          f"{args.slow_clients} slow, ONNX Runtime {args.threads} thread(s)")
    print("| window (min) | requests | errors | refused | cut | short p50 ms | short p99 ms | long p50 ms | "
          "long p99 ms | RSS max MB | faults |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['from_min']:.0f}-{r['to_min']:.0f} | {r['requests']} | {r['errors']} | {r['refused']} | "
              f"{r['cut']} | {fmt(r['short_p50_ms'], 1)} | {fmt(r['short_p99_ms'], 1)} | "
              f"{fmt(r['long_p50_ms'])} | {fmt(r['long_p99_ms'])} | {fmt(r['rss_max_mb'])} | "
              f"{', '.join(r['faults']) or '-'} |")
    for r in fault_rows:
        print(f"fault {r['kind']} at {r['at']:.0f} s: worker {r['pid']} -> {r['new_pid']}, ready after "
              f"{fmt(r['recovery_s'], 1)} s, {r['cut']} request(s) cut")
    print(f"errors {len(errors)} {error_kinds or ''}; refused {result['refused']} {refused_codes or ''}; "
          f"cut {result['cut']}")
    print(f"RSS (wrapper + bentoml serve + worker): start {fmt(rss['start_mb'])} MB, end {fmt(rss['end_mb'])} MB, "
          f"growth {fmt(rss['growth_pct'], 1)}% (worker {fmt(rss['start_worker_mb'])} -> "
          f"{fmt(rss['end_worker_mb'])} MB)")
    print(f"final SIGTERM: {drain['in_flight']} request(s) in flight, answered {drain['in_flight_statuses']}, "
          f"{drain['cut']} cut; {drain['sent_after_sigterm']} sent after it {drain['after_statuses']}; exit code "
          f"{drain['exit_code']} after {drain['exited_after_s']} s: {'drained' if drain['drained'] else 'NOT drained'}")
    print(f"audit log: {audit_lines} records for {answered_texts} answered texts")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return result


# -- main -----------------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any] | None, Soak]:
    port = free_port()
    server = start_server(args, workdir, port)
    soak = Soak(args, port, server, t0=time.perf_counter() + 10**6)
    try:
        deadline = time.monotonic() + args.start_timeout_s
        while not await ready(soak.url):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}; see {workdir / 'server.log'}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the server was not ready within {args.start_timeout_s} s; see "
                                 f"{workdir / 'server.log'}")
            await asyncio.sleep(0.5)
        print(f"server ready on {soak.url} (pid {server.pid}); warm-up {args.warmup_s} s", flush=True)
        soak.t0 = time.perf_counter() + args.warmup_s
        load = [asyncio.create_task(client_loop(soak, i)) for i in range(args.concurrency)]
        load += [asyncio.create_task(slow_loop(soak, i)) for i in range(args.slow_clients)]
        helpers = [asyncio.create_task(sampler(soak)), asyncio.create_task(injector(soak)),
                   asyncio.create_task(progress(soak))]
        await asyncio.sleep(args.warmup_s)
        soak.rss.append(await asyncio.to_thread(sample_rss, soak))  # the start figure, after warm-up
        with suppress(TimeoutError):
            await asyncio.wait_for(soak.stop.wait(), args.minutes * 60)
        end = soak.now()
        soak.rss.append(await asyncio.to_thread(sample_rss, soak))  # the end figure, before SIGTERM
        # The clients keep sending while the server drains: they must get 503s or a refused connection.
        final = await final_sigterm(soak)
        await asyncio.gather(*load, *helpers)
        return report(soak, end, final, workdir), soak
    finally:
        soak.stop.set()
        stop_everything(soak)


def stop_everything(soak: Soak) -> None:
    """Leave nothing behind, whatever happened: the wrapper, then any server process still alive."""
    if soak.server.poll() is None:
        soak.server.send_signal(signal.SIGTERM)
        try:
            soak.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            soak.server.kill()
            soak.server.wait()
    for proc in [*soak.seen.values(), *tree(soak.server.pid)]:
        with suppress(psutil.Error):
            if proc.is_running():
                proc.kill()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="bundle (default: artifacts/bundle)")
    p.add_argument("--minutes", type=float, default=30, help="load duration after warm-up (default 30)")
    p.add_argument("--warmup-s", type=float, default=60, help="load before measuring, not counted (default 60)")
    p.add_argument("--fault-every-min", type=float, default=5, help="a fault every N minutes; 0: none (default 5)")
    p.add_argument("--faults", default="kill,term",
                   help="worker signals, in turn: kill (SIGKILL), term (SIGTERM) (default kill,term)")
    p.add_argument("--concurrency", type=int, default=8, help="clients sending back-to-back (default 8)")
    p.add_argument("--slow-clients", type=int, default=2, help="clients that send their body slowly (default 2)")
    p.add_argument("--slow-chunks", type=int, default=10, help="pieces of a slow body (default 10)")
    p.add_argument("--slow-delay-s", type=float, default=0.3, help="pause between pieces (default 0.3)")
    p.add_argument("--long-fraction", type=float, default=0.01, help="share of long texts (default 0.01)")
    p.add_argument("--long-chars", type=int, default=50_000, help="characters per long text (default 50000)")
    p.add_argument("--bad-fraction", type=float, default=0.02, help="share of bad requests (default 0.02)")
    p.add_argument("--moderation-fraction", type=float, default=0.2,
                   help="share of short requests sent to /v1/moderations (default 0.2)")
    p.add_argument("--max-requests", type=int, default=1_000_000, help="stop the load after this many")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    p.add_argument("--drain-timeout", type=int, default=25, help="the server's --drain-timeout (default 25)")
    p.add_argument("--timeout", type=float, default=120, help="client timeout per request, seconds")
    p.add_argument("--final-long", type=int, default=2, help="long requests in flight at the final SIGTERM")
    p.add_argument("--final-short", type=int, default=16, help="short requests in flight at the final SIGTERM")
    p.add_argument("--sample-s", type=float, default=5, help="RSS sampling interval (default 5)")
    p.add_argument("--window-min", type=float, default=5, help="report window (default 5)")
    p.add_argument("--max-rss-growth-pct", type=float, default=10, help="the RSS check's bound (default 10)")
    p.add_argument("--recover-timeout-s", type=float, default=180, help="how long a worker may take to return")
    p.add_argument("--start-timeout-s", type=float, default=180, help="how long the server may take to start")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--keep-workdir", action="store_true", help="keep the audit log and BentoML home")
    args = p.parse_args()
    if not 0 < args.minutes <= 240 or not 0 <= args.warmup_s <= 600:
        raise SystemExit("--minutes must be within 0..240 and --warmup-s within 0..600 (a bounded soak)")
    if not 1 <= args.concurrency <= 256 or not 0 <= args.slow_clients <= 64:
        raise SystemExit("--concurrency must be within 1..256, --slow-clients within 0..64")
    if not 1 <= args.max_requests <= 10_000_000:
        raise SystemExit("--max-requests must be within 1..10000000")
    if args.long_fraction + args.bad_fraction > 0.9 or min(args.long_fraction, args.bad_fraction) < 0:
        raise SystemExit("--long-fraction and --bad-fraction must be >= 0 and leave room for short texts")
    if not set(args.faults.split(",")) <= {"kill", "term"}:
        raise SystemExit("--faults takes kill and/or term, comma-separated")
    if args.bundle is None:
        args.bundle = REPO / "artifacts" / "bundle"
    if not (args.bundle / "harmscan.json").is_file():
        raise SystemExit(f"no bundle at {args.bundle}: pass --bundle (a folder written by `harmscan export`)")
    args.bundle = args.bundle.resolve()
    return args


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="harmscan-soak-"))
    try:
        result, _ = asyncio.run(run(args, workdir))
    finally:
        if not args.keep_workdir:
            # The server log is the one thing worth keeping: copy it out of the folder first.
            log = workdir / "server.log"
            if log.is_file():
                shutil.copy(log, Path(tempfile.gettempdir()) / "harmscan-soak-server.log")
            shutil.rmtree(workdir, ignore_errors=True)
    assert result is not None
    if not args.keep_workdir:
        result["server_log"] = str(Path(tempfile.gettempdir()) / "harmscan-soak-server.log")
    print(f"server log: {result['server_log']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
