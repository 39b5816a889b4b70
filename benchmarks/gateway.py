"""Benchmark of the guardrail gateway (`harmscan gateway`), run by hand; results go to docs/benchmarks.md.

Bounded and loopback-only: it starts a fake OpenAI-compatible upstream (a thread of this process, on
127.0.0.1, that streams whatever completion each request carries in its `bench` field) and a real
`harmscan gateway` in front of it, sends a fixed number of requests, and stops both. It measures

1. added latency per non-streamed request: gateway round trip minus direct round trip, pairs interleaved
   (in random order within each pair) so that the machine's load drift cancels;
2. streams of benign text in small chunks, paced like an LLM: the delay each upstream chunk sees through the
   gateway (buffering to a sentence end included), the delay of each released guard chunk after its last
   upstream chunk arrived (the checking cost alone), and time to first token, in ms, characters and chunks;
3. detection delay on streamed harmful completions built from real data (sentences the bundle flags alone,
   after 1-3 benign sentences and before more): characters between the end of the harmful sentence and the
   gateway's cut (the blocked guard chunk, identified by its audit record's sha256 and length), the share cut
   within that sentence, and whether anything from the harmful sentence on reached the client.

    python benchmarks/gateway.py --bundle /work/runs/A/bundle --variant int8 --out gateway.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from harmscan.classifiers.guard import _BOUNDARY

KEY_ENV = "HARMSCAN_BENCH_KEYS"
KEY = "bench-gateway"
DATA_DIR = Path(os.environ.get("HARMSCAN_DATA_DIR", "/work/shared/data"))
# (source, labels that make a row harmful): the real data the harmful completions are built from.
HARMFUL_SOURCES = (("gab_hate_corpus", ("violence", "toxicity")), ("toxic_spans", ("violence", "toxicity")),
                   ("ailuminate_demo", ("violence", "illegal_advice")),
                   ("catqa", ("violence", "illegal_advice")))
PROMPTS = [
    "What is a good way to start learning to cook?", "Can you summarise how photosynthesis works?",
    "Suggest a name for a bakery by the sea.", "How do I keep my houseplants alive in winter?",
    "Explain what a hash table is in simple terms.", "Plan a relaxed weekend in Lisbon for two people.",
    "What should I pack for a day hike?", "How do bees make honey?",
]
BENIGN = [
    "The weather was mild this morning, so we walked to the market.",
    "A good loaf of bread needs flour, water, salt and a little patience.",
    "Most houseplants prefer bright, indirect light and a regular watering routine.",
    "The library opens at nine and closes early on Saturdays.",
    "Our team finished the quarterly report two days ahead of schedule.",
    "Fresh basil keeps longer if you store it like cut flowers in a glass of water.",
    "The train to the coast takes about two hours and passes several small villages.",
    "She spent the afternoon sorting old photographs into albums by year.",
    "A hash table stores values under keys and finds them again in constant time on average.",
    "Honeybees collect nectar, and the colony slowly turns it into honey inside the hive.",
    "We planted tomatoes along the fence where they get the most sun.",
    "The museum has a new exhibition about the history of maps.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def dist(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "min": min(values), "max": max(values)}


def split_chunks(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


# -- the fake upstream -------------------------------------------------------------------------------------
def _handler() -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server: no connection set-up in the figures
        # TCP_NODELAY, as uvicorn (vLLM) and llama.cpp's server set: http.server writes the headers and the
        # body in two segments, and on a kept-alive connection Nagle's algorithm then waits for the delayed
        # ACK of the first (~40 ms on Linux) before sending the second, a stall no real upstream has.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bench = body.get("bench") or {"chunks": ["Hello."], "delay": 0}
            base = {"id": "chatcmpl-bench", "created": 1, "model": body.get("model", "m")}
            if not body.get("stream"):
                raw = json.dumps({**base, "object": "chat.completion", "choices": [
                    {"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "".join(bench["chunks"])}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")  # the stream ends with the connection
            self.end_headers()
            self.close_connection = True
            deltas = [{"role": "assistant", "content": ""}] + [{"content": c} for c in bench["chunks"]]
            try:
                start = time.perf_counter()
                for k, delta in enumerate(deltas):
                    # Paced on a clock, not by sleeps added up, so direct and gateway see the same schedule.
                    wait = start + k * bench["delay"] - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    self._event({**base, "object": "chat.completion.chunk",
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                self._event({**base, "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the gateway cut the stream

        def _event(self, data: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    return Handler


class Upstream:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class GatewayProcess:
    """`harmscan gateway` on a free loopback port, stopped (with its worker processes) on exit."""

    def __init__(self, upstream: str, bundle: Path, policy: Path, variant: str | None, threads: int,
                 work: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        self.audit = work / "audit.jsonl"
        self.audit.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "harmscan.cli", "gateway", "--upstream", upstream, "--policy", str(policy),
               "--bundle", str(bundle), "--port", str(port), "--threads", str(threads),
               "--api-keys-env", KEY_ENV, "--audit-log", str(self.audit)]
        if variant:
            cmd += ["--variant", variant]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "BENTOML_DO_NOT_TRACK": "true", KEY_ENV: KEY,
               "BENTOML_HOME": str(work / "bentoml_home")}
        log = work / "gateway.log"
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the gateway exited with {self.proc.returncode}; see {log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the gateway was not ready within 120 s; see {log}")
            time.sleep(0.3)

    def audit_records(self) -> list[dict[str, Any]]:
        if not self.audit.is_file():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


# -- the texts ---------------------------------------------------------------------------------------------
def default_policy(bundle: Path, variant: str | None, path: Path) -> Path:
    """Block every label, both ways, at the bundle's own thresholds."""
    from harmscan.classifiers import HarmClassifier

    clf = HarmClassifier.load(bundle, variant=variant, threads=1)
    rules = {name: [{"action": "block", "threshold": round(float(t), 6)}]
             for name, t in clf.policy.thresholds.items()}
    path.write_text(json.dumps({"version": 1, "description": "benchmark: block on the bundle's thresholds",
                                "actions": {"input": rules, "output": rules}}))
    return path


def one_sentence(text: str) -> str | None:
    """The row as one sentence ending in terminal punctuation, or None when it holds several."""
    text = re.sub(r"\s+", " ", text).strip()
    if not 20 <= len(text) <= 180:
        return None
    if not re.search(r"[.!?]$", text):
        text += "."
    if _BOUNDARY.search(text) is not None:  # a sentence end inside (the last one has no space after it)
        return None
    return text


def harmful_sentences(guard: Any, want: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Single-sentence harmful rows from the data that the bundle blocks when scored alone."""
    from harmscan.training.sources import iter_examples

    rng = random.Random(seed)
    candidates: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for source, labels in HARMFUL_SOURCES:
        rows = []
        for ex in iter_examples(source, DATA_DIR, verify=False):
            hit = [name for name in labels if ex.labels.get(name) == 1]
            sentence = one_sentence(ex.text) if hit else None
            if sentence and sentence not in seen:
                seen.add(sentence)
                rows.append((sentence, source, hit[0]))
        rng.shuffle(rows)
        candidates += rows[:want * 2]  # enough per source that the flagged ones fill `want`
    rng.shuffle(candidates)
    kept: list[dict[str, Any]] = []
    tried = 0
    for sentence, source, label in candidates:
        if len(kept) >= want:
            break
        tried += 1
        verdict = guard.check_output(sentence)
        if verdict.blocked:
            kept.append({"sentence": sentence, "source": source, "label": label, "blocked_on": verdict.labels})
    return kept, {"candidates": len(candidates), "scored": tried, "kept": len(kept)}


# -- measurements ------------------------------------------------------------------------------------------
def _body(prompt: str, chunks: list[str], delay: float, stream: bool) -> dict[str, Any]:
    return {"model": "bench", "stream": stream, "messages": [{"role": "user", "content": prompt}],
            "bench": {"chunks": chunks, "delay": delay}}


def non_stream(direct: httpx.Client, gateway: httpx.Client, n: int, completion: str,
               rng: random.Random) -> dict[str, Any]:
    diffs, d_ms, g_ms, errors = [], [], [], 0
    for i in range(n + 10):
        body = _body(PROMPTS[i % len(PROMPTS)], [completion], 0.0, False)
        times = {}
        for name in rng.sample(["direct", "gateway"], 2):
            client = direct if name == "direct" else gateway
            start = time.perf_counter()
            resp = client.post("/chat/completions", json=body)
            times[name] = (time.perf_counter() - start) * 1e3
            ok = resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == completion
            errors += not ok and i >= 10
        if i >= 10:  # the first ten warm connections and the model
            diffs.append(times["gateway"] - times["direct"])
            d_ms.append(times["direct"])
            g_ms.append(times["gateway"])
    return {"requests": n, "errors": errors, "completion_chars": len(completion), "added_ms": dist(diffs),
            "direct_ms": dist(d_ms), "gateway_ms": dist(g_ms)}


def read_stream(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """Arrival time (ms after the request was sent) of every content piece, and how the stream ended."""
    pieces: list[tuple[float, str]] = []
    finish, after_finish = None, ""
    start = time.perf_counter()
    with client.stream("POST", "/chat/completions", json=body) as resp:
        if resp.status_code != 200:
            return {"status": resp.status_code, "pieces": [], "finish": None, "after_finish": ""}
        for line in resp.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            now = (time.perf_counter() - start) * 1e3
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                if finish is not None:
                    after_finish += text
                elif text:
                    pieces.append((now, text))
                if choice.get("finish_reason") is not None and finish is None:
                    finish = choice["finish_reason"]
    return {"status": 200, "pieces": pieces, "finish": finish, "after_finish": after_finish}


def arrival(pieces: list[tuple[float, str]], offset: int) -> float:
    """When the character at `offset` (0-based) arrived."""
    seen = 0
    for t, text in pieces:
        seen += len(text)
        if seen > offset:
            return t
    raise ValueError(f"character {offset} never arrived")


def streams(direct: httpx.Client, gateway: httpx.Client, n: int, chunk_chars: int, delay: float,
            rng: random.Random) -> dict[str, Any]:
    per_chunk, per_release, ttft_d, ttft_g, ttft_diff = [], [], [], [], []
    first_chars, first_chunks, errors = [], [], 0
    for i in range(n + 2):
        text = " ".join(rng.sample(BENIGN, 5))
        chunks = split_chunks(text, chunk_chars)
        body = _body(PROMPTS[i % len(PROMPTS)], chunks, delay, True)
        runs = {}
        for name in rng.sample(["direct", "gateway"], 2):
            runs[name] = read_stream(direct if name == "direct" else gateway, body)
        d, g = runs["direct"], runs["gateway"]
        if "".join(p for _, p in g["pieces"]) != text or "".join(p for _, p in d["pieces"]) != text:
            errors += i >= 2
            continue
        if i < 2:
            continue
        ends = [min(len(text), (k + 1) * chunk_chars) - 1 for k in range(len(chunks))]
        per_chunk += [arrival(g["pieces"], e) - arrival(d["pieces"], e) for e in ends]
        released = 0
        for t, piece in g["pieces"]:
            released += len(piece)
            per_release.append(t - arrival(d["pieces"], released - 1))
        ttft_d.append(d["pieces"][0][0])
        ttft_g.append(g["pieces"][0][0])
        ttft_diff.append(g["pieces"][0][0] - d["pieces"][0][0])
        first_chars.append(len(g["pieces"][0][1]))
        first_chunks.append(-(-len(g["pieces"][0][1]) // chunk_chars))
    first_sentence = [len(s) for s in BENIGN]
    return {"streams": n, "errors": errors, "chunk_chars": chunk_chars, "chunk_delay_ms": delay * 1e3,
            "per_chunk_added_ms": dist(per_chunk), "per_release_added_ms": dist(per_release),
            "ttft_direct_ms": dist(ttft_d), "ttft_gateway_ms": dist(ttft_g), "ttft_added_ms": dist(ttft_diff),
            "ttft_added_chunks": dist([x / (delay * 1e3) for x in ttft_diff]) if delay else None,
            "first_piece_chars": dist([float(c) for c in first_chars]),
            "first_piece_chunks": dist([float(c) for c in first_chunks]),
            "first_sentence_chars": dist([float(c) for c in first_sentence])}


def detection(gateway: httpx.Client, gw: GatewayProcess, harmful: list[dict[str, Any]], chunk_chars: int,
              rng: random.Random) -> dict[str, Any]:
    cases = []
    for i, item in enumerate(harmful):
        before = " ".join(rng.sample(BENIGN, rng.randint(1, 3))) + " "
        after = " " + " ".join(rng.sample(BENIGN, 2))
        text = before + item["sentence"] + after
        start, end = len(before), len(before) + len(item["sentence"])
        records_before = len(gw.audit_records())
        res = read_stream(gateway, _body(PROMPTS[i % len(PROMPTS)], split_chunks(text, chunk_chars), 0.0, True))
        delivered = "".join(p for _, p in res["pieces"])
        case: dict[str, Any] = {"source": item["source"], "label": item["label"], "finish": res["finish"],
                                "delivered_chars": len(delivered), "harm_start": start, "harm_end": end,
                                "prefix_ok": text.startswith(delivered), "after_finish": len(res["after_finish"])}
        record = None
        for _ in range(50):  # the record is written before the cut is sent; allow for the file system
            new = gw.audit_records()[records_before:]
            record = next((r for r in new if r.get("direction") == "output" and r.get("action") == "block"), None)
            if record is not None or res["finish"] != "content_filter":
                break
            time.sleep(0.02)
        if res["finish"] == "content_filter" and record is not None:
            segment = text[len(delivered):len(delivered) + int(record["chars"])]
            case["segment_matches_audit"] = hashlib.sha256(segment.encode()).hexdigest() == record["sha256"]
            cut = len(delivered) + int(record["chars"])
            case["cut"] = cut
            case["delay_chars"] = cut - end
            # The upstream sends whole chunks: what it had sent when the chunk holding the cut arrived.
            case["received_after_end"] = min(len(text), -(-cut // chunk_chars) * chunk_chars) - end
            case["cut_where"] = ("before" if cut <= start else "same" if cut <= end + 1 and len(delivered) <= start
                                 else "later")
        else:
            case["cut_where"] = "missed" if res["finish"] != "content_filter" else "no_audit_record"
        # Nothing from the harmful sentence on may reach the client.
        case["leaked"] = not case["prefix_ok"] or len(delivered) > start or case["after_finish"] > 0
        cases.append(case)
    n = len(cases)
    same = sum(c["cut_where"] == "same" for c in cases)
    delays = [float(c["delay_chars"]) for c in cases if c["cut_where"] == "same"]
    received = [float(c["received_after_end"]) for c in cases if c["cut_where"] == "same"]
    return {"completions": n, "chunk_chars": chunk_chars,
            "cut_same_sentence": same, "share_same_sentence": same / n if n else 0.0,
            "cut_before": sum(c["cut_where"] == "before" for c in cases),
            "cut_later": sum(c["cut_where"] == "later" for c in cases),
            "missed": sum(c["cut_where"] == "missed" for c in cases),
            "no_audit_record": sum(c["cut_where"] == "no_audit_record" for c in cases),
            "audit_hash_mismatch": sum(c.get("segment_matches_audit") is False for c in cases),
            "leaked": sum(c["leaked"] for c in cases),
            "delay_chars": dist(delays) if delays else None,
            "received_after_end_chars": dist(received) if received else None,
            "by_source": {s: sum(c["source"] == s for c in cases) for s, _ in HARMFUL_SOURCES},
            "cases": cases}


def in_process(guard: Any, completion: str, n: int = 50) -> dict[str, float]:
    """p50 ms of the two checks a non-streamed request costs, in this process: the floor under the overhead."""
    out: dict[str, float] = {}
    for name, check in (("check_input", lambda: guard.check_input([{"role": "user", "content": PROMPTS[0]}])),
                        ("check_output", lambda: guard.check_output(completion))):
        for _ in range(5):
            check()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            check()
            times.append((time.perf_counter() - start) * 1e3)
        out[name] = percentile(times, 0.5)
    return out


# -- main --------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"), help="a bundle folder")
    parser.add_argument("--policy", type=Path, help="policy file (default: block on the bundle's thresholds)")
    parser.add_argument("--variant", choices=["auto", "fp32", "int8", "fp16"], help="model variant")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads in the gateway")
    parser.add_argument("--requests", type=int, default=200, help="non-streamed request pairs")
    parser.add_argument("--streams", type=int, default=30, help="streamed benign completion pairs")
    parser.add_argument("--harmful", type=int, default=120, help="streamed harmful completions (>= 100)")
    parser.add_argument("--chunks", type=int, default=4, help="characters per upstream chunk (default 4)")
    parser.add_argument("--chunk-delay-ms", type=float, default=10.0, help="upstream pace of benign streams")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results (JSON) here")
    args = parser.parse_args()
    if not (1 <= args.requests <= 10_000 and 1 <= args.streams <= 1_000 and 1 <= args.harmful <= 2_000
            and 1 <= args.chunks <= 200 and 0 <= args.chunk_delay_ms <= 1_000):
        raise SystemExit("sizes out of range: --requests 1..10000, --streams 1..1000, --harmful 1..2000, "
                         "--chunks 1..200, --chunk-delay-ms 0..1000 (a bounded benchmark)")
    if not (args.bundle / "harmscan.json").is_file():
        raise SystemExit(f"harmscan: error: {args.bundle} is not a bundle folder (no harmscan.json)")
    return args


def summarise(report: dict[str, Any]) -> None:
    ns, st, det = report["non_stream"], report["stream"], report["detection"]
    print("\n| measure | p50 | p99 |")
    print("|---|---|---|")
    rows = [("non-stream: direct round trip, ms", ns["direct_ms"]),
            ("non-stream: via gateway, ms", ns["gateway_ms"]),
            ("non-stream: added per request, ms", ns["added_ms"]),
            ("stream: added per upstream chunk (buffering included), ms", st["per_chunk_added_ms"]),
            ("stream: added per released guard chunk (checking only), ms", st["per_release_added_ms"]),
            ("stream: TTFT direct, ms", st["ttft_direct_ms"]), ("stream: TTFT via gateway, ms", st["ttft_gateway_ms"]),
            ("stream: TTFT added, ms", st["ttft_added_ms"]),
            ("stream: first piece via gateway, characters", st["first_piece_chars"]),
            ("stream: first piece via gateway, upstream chunks", st["first_piece_chunks"])]
    if st["ttft_added_chunks"]:
        rows.append(("stream: TTFT added, upstream chunk intervals", st["ttft_added_chunks"]))
    if det["delay_chars"]:
        rows.append(("detection: characters from sentence end to cut", det["delay_chars"]))
        rows.append(("detection: upstream characters sent past the sentence end at the cut",
                     det["received_after_end_chars"]))
    for name, d in rows:
        print(f"| {name} | {d['p50']:.2f} | {d['p99']:.2f} |")
    ip = report["in_process_ms"]
    print(f"\nin-process Guard, same model and threads: check_input p50 {ip['check_input']:.2f} ms, "
          f"check_output ({ns['completion_chars']} characters) p50 {ip['check_output']:.2f} ms")
    print(f"detection: {det['completions']} harmful streams, cut in the same sentence {det['cut_same_sentence']} "
          f"({det['share_same_sentence']:.1%}), before {det['cut_before']}, later {det['cut_later']}, missed "
          f"{det['missed']}, no audit record {det['no_audit_record']}, leaked {det['leaked']}; errors: "
          f"non-stream {ns['errors']}, stream {st['errors']}")


def main() -> None:
    args = parse_args()
    from harmscan.classifiers import HarmClassifier, Policy
    from harmscan.classifiers.guard import Guard

    work = Path(tempfile.mkdtemp(prefix="harmscan-gw-bench-"))
    policy = args.policy or default_policy(args.bundle, args.variant, work / "policy.json")
    rng = random.Random(args.seed)
    # Texts are chosen before the gateway starts, so this process's model does not compete with it.
    clf = HarmClassifier.load(args.bundle, variant=args.variant, threads=args.threads)
    guard = Guard(clf, Policy.from_file(policy, clf.labels))
    flagged_benign = [s for s in BENIGN if guard.check_output(s).action != "allow"]
    if flagged_benign:
        raise SystemExit(f"harmscan: error: the policy acts on {len(flagged_benign)} of the benign sentences; "
                         "the benchmark needs benign text it allows")
    harmful, selection = harmful_sentences(guard, args.harmful, args.seed)
    if len(harmful) < args.harmful:
        print(f"warning: only {len(harmful)} harmful sentences found that the bundle blocks alone", flush=True)
    completion = " ".join(BENIGN[:5])
    model_ms = in_process(guard, completion)
    report: dict[str, Any] = {
        "bundle": str(args.bundle), "variant": clf.variant, "threads": args.threads, "policy": str(policy),
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_average_start": os.getloadavg(), "harmful_selection": selection, "in_process_ms": model_ms,
    }
    del clf, guard
    upstream = Upstream()
    gw = GatewayProcess(upstream.url, args.bundle, policy, args.variant, args.threads, work)
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=upstream.url, timeout=60) as direct, \
                httpx.Client(base_url=gw.url + "/v1", timeout=60, headers=headers) as gateway:
            t0 = time.perf_counter()
            report["non_stream"] = non_stream(direct, gateway, args.requests, completion, rng)
            print(f"non-stream done in {time.perf_counter() - t0:.0f} s", flush=True)
            t0 = time.perf_counter()
            report["stream"] = streams(direct, gateway, args.streams, args.chunks, args.chunk_delay_ms / 1e3, rng)
            print(f"streams done in {time.perf_counter() - t0:.0f} s", flush=True)
            t0 = time.perf_counter()
            report["detection"] = detection(gateway, gw, harmful, args.chunks, rng)
            print(f"detection done in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        gw.stop()
        upstream.stop()
    report["load_average_end"] = os.getloadavg()
    summarise(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
