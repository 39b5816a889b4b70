"""A real server: `harmscan serve` (which runs `bentoml serve`) on 127.0.0.1, with API keys and an audit log,
called with httpx, bentoml.SyncHTTPClient and the official openai client. One server for the module; its
stdout/stderr go to a file that the last test searches for submitted text."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from classifier_helpers import free_port, wait_until_ready  # noqa: E402

pytest.importorskip("bentoml")
httpx = pytest.importorskip("httpx")

KEY = "test-key-4b1d"
CANARY = "quokka-canary-91e2"  # sent in every kind of request; must never reach the server's output
TEXTS = [
    "you are a wonderful person",
    "I will hurt you tomorrow",
    "",
    "ｆｕｌｌ ｗｉｄｔｈ and ünïcödé text ✓",
    "a long post " + "that goes on and on " * 80 + "and ends here",  # several token windows
]


@dataclass
class Server:
    url: str
    log: Path
    audit: Path
    proc: subprocess.Popen[bytes]

    def client(self, key: str | None = KEY) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harmscan.training.export import export_bundle

    return Path(export_bundle(tiny_model_dir, tmp_path_factory.mktemp("serving_http") / "bundle"))


@pytest.fixture(scope="module")
def classifier(bundle: Path) -> Any:
    from harmscan.classifiers import HarmClassifier

    return HarmClassifier.load(bundle, threads=1)  # the server's settings: auto variant, one thread


@pytest.fixture(scope="module")
def server(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    log, audit = tmp / "server.log", tmp / "audit.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENTOML_HOME": str(tmp / "bentoml_home"),
           "BENTOML_DO_NOT_TRACK": "true", "HARMSCAN_TEST_KEYS": f"other-key,{KEY}"}
    cmd = [sys.executable, "-m", "harmscan.cli", "serve", "--bundle", str(bundle), "--port", str(port),
           "--api-keys-env", "HARMSCAN_TEST_KEYS", "--audit-log", str(audit)]
    with open(log, "wb") as out:
        # Own process group: BentoML starts worker processes that must go down with it.
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(proc, url, log)
    yield Server(url, log, audit, proc)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _assert_same(http_result: dict[str, Any], expected: Any) -> None:
    assert http_result["scores"] == pytest.approx(expected.scores, abs=1e-6)
    assert http_result["flagged"] == expected.flagged
    assert http_result["decision"] == expected.decision
    assert http_result["span"] == expected.span
    assert http_result["windows"] == expected.windows


# -- results equal HarmClassifier's --------------------------------------------------------------------------
def test_server_binds_loopback_only(server: Server) -> None:
    host = re.search(r"listening on http://([^:]+):", server.log.read_text())
    assert host is not None and host.group(1) == "127.0.0.1"


def test_scan_over_httpx_equals_in_process(server: Server, classifier: Any) -> None:
    with server.client() as client:
        resp = client.post("/v1/scan", json={"texts": TEXTS, "return_spans": True})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["id"].startswith("scan-") and body["model"].startswith("harmscan-")
        assert len(body["results"]) == len(TEXTS)
        for got, want in zip(body["results"], classifier.scan(TEXTS, return_spans=True), strict=True):
            _assert_same(got, want)
        assert body["results"][-1]["windows"] > 1

        # Per-request thresholds: everything above 0 is flagged, only for this request.
        low = {name: 0.0 for name in classifier.labels}
        resp = client.post("/v1/scan", json={"texts": TEXTS[:2], "thresholds": low})
        assert [r["flagged"] for r in resp.json()["results"]] == [classifier.labels] * 2
        for got, want in zip(resp.json()["results"], classifier.scan(TEXTS[:2], thresholds=low), strict=True):
            _assert_same(got, want)
        resp = client.post("/v1/scan", json={"texts": TEXTS[:2]})
        for got, want in zip(resp.json()["results"], classifier.scan(TEXTS[:2]), strict=True):
            _assert_same(got, want)


def test_bentoml_sync_client(server: Server, classifier: Any) -> None:
    import bentoml

    with bentoml.SyncHTTPClient(server.url, token=KEY, server_ready_timeout=30) as client:
        out = client.scan(texts=TEXTS[:3])
        for got, want in zip(out["results"], classifier.scan(TEXTS[:3]), strict=True):
            _assert_same(got, want)
        mod = client.moderations(input=TEXTS[1])
        assert len(mod["results"]) == 1


def test_openai_client_moderations(server: Server, classifier: Any) -> None:
    openai = pytest.importorskip("openai")

    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    resp = client.moderations.create(input=TEXTS[:4], model="omni-moderation-latest")
    assert resp.id.startswith("modr-") and resp.model.startswith("harmscan-")
    assert len(resp.results) == 4
    for res, want in zip(resp.results, classifier.scan(TEXTS[:4]), strict=True):
        s = want.scores
        assert res.flagged == (want.decision == "flag")
        assert res.category_scores.harassment == pytest.approx(s["toxicity"], abs=1e-6)
        assert res.category_scores.hate == pytest.approx(s["toxicity"], abs=1e-6)
        assert res.category_scores.violence == pytest.approx(s["violence"], abs=1e-6)
        assert res.category_scores.illicit == pytest.approx(s["illegal_advice"], abs=1e-6)
        assert res.category_scores.illicit_violent == pytest.approx(min(s["violence"], s["illegal_advice"]),
                                                                    abs=1e-6)
        assert res.categories.violence == ("violence" in want.flagged)
        assert res.categories.self_harm is False and res.category_scores.self_harm == 0.0
        assert res.category_applied_input_types.self_harm == []
        assert res.category_applied_input_types.violence == ["text"]
        extra = res.category_scores.model_extra or {}  # our own names ride along
        assert extra["toxicity"] == pytest.approx(s["toxicity"], abs=1e-6)
    single = client.moderations.create(input=TEXTS[1])
    assert len(single.results) == 1


def test_labels_endpoint_reports_provenance(server: Server, classifier: Any) -> None:
    with server.client() as client:
        info = client.get("/v1/labels").json()
    assert [label["name"] for label in info["labels"]] == classifier.labels
    assert all(label["definition"] for label in info["labels"])
    assert info["thresholds"] == classifier.policy.thresholds
    assert info["model"]["bundle_fingerprint"] == classifier.bundle.fingerprint
    assert info["model"]["variant"] == classifier.variant
    assert info["data"]["commercial_use"] is True
    assert info["limits"] == {"max_texts_per_request": 256, "max_chars_per_text": 100_000,
                              "max_chars_per_request": 200_000, "max_body_bytes": 2 * 1024 * 1024,
                              "max_windows_per_request": 256}
    assert info["openai_mapping"]["illicit"]["from_labels"] == ["illegal_advice"]


def test_empty_lists_return_empty_results(server: Server) -> None:
    with server.client() as client:
        assert client.post("/v1/scan", json={"texts": []}).json()["results"] == []
        resp = client.post("/v1/moderations", json={"input": []})
        assert resp.status_code == 200 and resp.json()["results"] == []


# -- bad requests: 4xx with an OpenAI-shaped error, never a 500 ----------------------------------------------
def _chunked(total: int) -> Iterator[bytes]:
    yield b'{"texts": ["'
    for _ in range(total // 65536):
        yield b"a" * 65536
    yield b'"]}'


BAD_REQUESTS: list[tuple[str, str, str, Any, int, str | None]] = [
    # id, method, path, body (bytes, or a callable making an iterator for a chunked body), status, param
    ("empty body", "POST", "/v1/scan", b"", 400, None),
    ("invalid json", "POST", "/v1/scan", b'{"texts": [', 400, None),
    ("json null", "POST", "/v1/scan", b"null", 400, None),
    ("texts null", "POST", "/v1/scan", b'{"texts": null}', 400, "texts"),
    ("texts a string", "POST", "/v1/scan", b'{"texts": "abc"}', 400, "texts"),
    ("texts a number", "POST", "/v1/scan", b'{"texts": [1, 2]}', 400, "texts[0]"),
    ("nested lists", "POST", "/v1/scan", b'{"texts": [["a"], "b"]}', 400, "texts[0]"),
    ("missing field", "POST", "/v1/scan", b'{"return_spans": true}', 400, "texts"),
    ("unknown field", "POST", "/v1/scan", b'{"texts": ["a"], "text": "a"}', 400, "text"),
    ("threshold out of range", "POST", "/v1/scan", b'{"texts": ["a"], "thresholds": {"violence": 3}}', 400,
     "thresholds.violence"),
    ("unknown label", "POST", "/v1/scan", b'{"texts": ["a"], "thresholds": {"nonsense": 0.5}}', 400,
     "thresholds"),
    ("invalid utf-8", "POST", "/v1/scan", b'{"texts": ["caf\xe9"]}', 400, None),
    ("lone surrogate", "POST", "/v1/scan", b'{"texts": ["\\udc80"]}', 400, None),
    ("deep nesting", "POST", "/v1/scan", b"[" * 50_000, 400, None),
    ("10 MB body", "POST", "/v1/scan", json.dumps({"texts": ["a" * 10_000_000]}).encode(), 413, None),
    ("10 MB chunked body", "POST", "/v1/scan", lambda: _chunked(10_000_000), 413, None),
    ("100k texts", "POST", "/v1/scan", json.dumps({"texts": ["a"] * 100_000}).encode(), 400, "texts"),
    ("one 1 MB text", "POST", "/v1/scan", json.dumps({"texts": ["ok", "a" * 1_000_000]}).encode(), 400,
     "texts[1]"),
    ("300k characters in all", "POST", "/v1/scan", json.dumps({"texts": ["a" * 100_000] * 3}).encode(), 400,
     "texts"),
    ("moderation input null", "POST", "/v1/moderations", b'{"input": null}', 400, "input"),
    ("moderation nested", "POST", "/v1/moderations", b'{"input": [["a"]]}', 400, "input"),
    ("moderation missing input", "POST", "/v1/moderations", b'{"model": "x"}', 400, "input"),
    ("moderation 1 MB text", "POST", "/v1/moderations", json.dumps({"input": "a" * 1_000_000}).encode(), 400,
     "input"),
    ("gzip body", "POST", "/v1/scan", b"\x1f\x8b\x08\x00", 415, None),
    ("GET on a POST endpoint", "GET", "/v1/scan", None, 405, None),
    ("unknown endpoint", "POST", "/v1/nothing", b"{}", 404, None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "param"),
                         [case[1:] for case in BAD_REQUESTS], ids=[case[0] for case in BAD_REQUESTS])
def test_bad_request_gets_a_clear_4xx(server: Server, method: str, path: str, body: Any, status: int,
                                      param: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if path == "/v1/scan" and isinstance(body, bytes) and body.startswith(b"\x1f\x8b"):
        headers["Content-Encoding"] = "gzip"
    with server.client() as client:
        content = body() if callable(body) else body
        resp = client.request(method, path, content=content, headers=headers)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) >= {"message", "type", "param"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert len(error["message"]) > 20 and "\n" not in error["message"]


def test_server_still_answers_correctly_after_bad_requests(server: Server, classifier: Any) -> None:
    with server.client() as client:
        resp = client.post("/v1/scan", json={"texts": TEXTS})
    assert resp.status_code == 200
    for got, want in zip(resp.json()["results"], classifier.scan(TEXTS), strict=True):
        _assert_same(got, want)
    assert server.proc.poll() is None


# -- auth, probes, metrics, batching, audit -----------------------------------------------------------------
def test_api_keys(server: Server) -> None:
    for key, status in ((None, 401), ("wrong-key", 401), (KEY, 200), ("other-key", 200)):
        with server.client(key) as client:
            resp = client.post("/v1/scan", json={"texts": ["hello"]})
            assert resp.status_code == status
            if status == 401:
                assert resp.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
                assert client.get("/v1/labels").status_code == 401
    with server.client(None) as client:  # probes and metrics stay open for orchestrators and scrapers
        for path in ("/livez", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200


def test_concurrent_requests_are_batched(server: Server, classifier: Any) -> None:
    texts = [f"concurrent message {i}" for i in range(24)]

    async def burst() -> list[Any]:
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                                     timeout=60) as client:
            return await asyncio.gather(*[client.post("/v1/scan", json={"texts": [t]}) for t in texts])

    def batch_counts() -> tuple[float, float]:
        metrics = httpx.get(server.url + "/metrics").text
        le1 = re.search(r'^harmscan_batch_texts_bucket\{le="1.0"\} (\S+)', metrics, re.M)
        total = re.search(r"^harmscan_batch_texts_count (\S+)", metrics, re.M)
        assert le1 and total
        return float(le1.group(1)), float(total.group(1))

    single_before, total_before = batch_counts()
    for _ in range(3):  # bounded: merging depends on timing, three bursts make it near-certain
        responses = asyncio.run(burst())
        assert all(r.status_code == 200 for r in responses)
        single, total = batch_counts()
        if total - total_before > single - single_before:
            break
    else:
        pytest.fail("no two concurrent requests shared a model call in three bursts of 24")
    for resp, text in zip(responses, texts, strict=True):
        want = classifier.scan([text])[0]
        assert resp.json()["results"][0]["flagged"] == want.flagged
        # int8 quantises activations per batch, so batch-mates move scores slightly (docs/serving.md).
        assert resp.json()["results"][0]["scores"] == pytest.approx(want.scores, abs=1e-3)


def test_metrics_count_flags_per_label_and_latency_per_endpoint(server: Server) -> None:
    with server.client() as client:
        client.post("/v1/scan", json={"texts": ["x"], "thresholds": {"violence": 0.0}})
        metrics = client.get("/metrics").text
    assert re.search(r'^harmscan_flagged_total\{endpoint="scan",label="violence"\} [1-9]', metrics, re.M)
    histogram = "harmscan_request_duration_seconds"
    assert re.search(rf'^{histogram}_bucket\{{endpoint="moderations",le="0.05",status="200"\}}', metrics,
                     re.M)
    assert re.search(rf'^{histogram}_count\{{endpoint="scan",status="400"\}} [1-9]', metrics, re.M)
    assert "bentoml_service_request_total" in metrics  # BentoML's own metrics are still there


def test_audit_log_records_hashes(server: Server) -> None:
    with server.client() as client:
        resp = client.post("/v1/scan", json={"texts": [CANARY, "second"]},
                           headers={"X-Request-ID": "audit-req-1"})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "audit-req-1"
    rows = [json.loads(line) for line in server.audit.read_text().splitlines()]
    mine = [r for r in rows if r["request_id"] == "audit-req-1"]
    assert [r["index"] for r in mine] == [0, 1]
    assert mine[0]["sha256"] == hashlib.sha256(CANARY.encode()).hexdigest()
    assert mine[0]["scores"] == resp.json()["results"][0]["scores"]
    assert mine[0]["decision"] == resp.json()["results"][0]["decision"]
    assert CANARY not in server.audit.read_text()


def test_submitted_text_never_reaches_the_server_log(server: Server) -> None:
    bodies: list[bytes] = [
        json.dumps({"texts": [CANARY]}).encode(),
        json.dumps({"texts": [CANARY, 7]}).encode(),  # validation error
        json.dumps({"texts": [CANARY], CANARY: 1}).encode(),  # unknown field named by the client
        json.dumps({"texts": [CANARY], "thresholds": {CANARY: 0.5}}).encode(),  # unknown label
        json.dumps({"texts": [CANARY * 10_000]}).encode(),  # too long
        json.dumps({"input": [CANARY]}).encode(),
        json.dumps({"input": {"text": CANARY}}).encode(),
        b'{"texts": ["' + CANARY.encode() + b'\xff"]}',  # invalid UTF-8
        b'{"texts": ["' + CANARY.encode(),  # invalid JSON
    ]
    with server.client() as client:
        for body in bodies:
            for path in ("/v1/scan", "/v1/moderations"):
                assert client.post(path, content=body).status_code < 500
        with server.client(CANARY) as bad_key:
            assert bad_key.post("/v1/scan", json={"texts": [CANARY]}).status_code == 401
    time.sleep(0.5)  # let the access log flush
    output = server.log.read_text(errors="replace")
    assert "path=/v1/scan" in output  # the capture works: the access log is there
    assert CANARY not in output
