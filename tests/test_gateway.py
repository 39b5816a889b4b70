"""`harmscan gateway` on 127.0.0.1 in front of a fake OpenAI-compatible upstream (a real HTTP server started
here, that streams the chunks a test chooses and counts its calls), called with the official openai client.
A `harmscan serve` with the same policy file checks that scan, serve and the gateway decide alike."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bentoml")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

from classifier_helpers import BENIGN, VIOLENT, free_port, violence_bundle, wait_until_ready  # noqa: E402

KEY = "gw-test-key-5c2e"
CANARY = "quokka-canary-gw-77"  # in every prompt and completion: must never reach the log or the audit
REFUSAL = "Sorry, not with that."


# -- the fake upstream -------------------------------------------------------------------------------------
@dataclass
class Upstream:
    url: str = ""
    calls: int = 0
    script: dict[str, Any] = field(default_factory=lambda: {"mode": "json", "text": "Hello."})
    aborted: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


def _handler(state: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            state.calls += 1
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script = state.script
            if script["mode"] == "error":
                self._json(script["status"], {"error": {"message": "slow down", "type": "rate_limit",
                                                        "param": None, "code": "rate_limited"}})
                return
            if script["mode"] == "hang":
                time.sleep(script["delay"])
                self._json(200, {})
                return
            base = {"id": "chatcmpl-up", "created": 1, "model": body.get("model", "m")}
            if not body.get("stream"):
                self._json(200, {**base, "object": "chat.completion", "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                                      "content": script["text"]}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunks = [{"role": "assistant", "content": ""}] + [{"content": c} for c in script["chunks"]]
            try:
                for delta in chunks:
                    self._event({**base, "object": "chat.completion.chunk",
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                    time.sleep(script.get("delay", 0))
                self._event({**base, "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                state.finished.set()
            except (BrokenPipeError, ConnectionResetError):
                state.aborted.set()

        def _event(self, data: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        def _json(self, status: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


@pytest.fixture()
def up(upstream: Upstream) -> Upstream:
    upstream.calls = 0
    upstream.aborted.clear()
    upstream.finished.clear()
    return upstream


# -- the bundle, the policy and the two servers --------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return violence_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def policy(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Block violence both ways, at a threshold between the benign and the violent sentences' scores."""
    from harmscan.classifiers import HarmClassifier

    clf = HarmClassifier.load(bundle, threads=1)
    cut = float(clf.predict_proba(BENIGN).max(axis=0)[1] + clf.predict_proba(VIOLENT).min(axis=0)[1]) / 2
    path = tmp_path_factory.mktemp("gw_policy") / "policy.yaml"
    path.write_text(f"version: 1\nactions:\n  input: {{violence: [{{action: block, threshold: {cut:.4f}}}]}}\n"
                    f"  output: {{violence: [{{action: block, threshold: {cut:.4f}}}]}}\n")
    return path


@dataclass
class Server:
    url: str
    log: Path
    audit: Path


def _start(args: list[str], tmp: Path) -> tuple[Server, subprocess.Popen[bytes]]:
    port = free_port()
    log, audit = tmp / "server.log", tmp / "audit.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENTOML_HOME": str(tmp / "bentoml_home"),
           "BENTOML_DO_NOT_TRACK": "true", "GW_TEST_KEYS": KEY}
    cmd = [sys.executable, "-m", "harmscan.cli", *args, "--port", str(port), "--api-keys-env", "GW_TEST_KEYS",
           "--audit-log", str(audit)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(proc, url, log, name=args[0])
    return Server(url, log, audit), proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def gateway(bundle: Path, policy: Path, upstream: Upstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server, proc = _start(["gateway", "--upstream", upstream.url, "--policy", str(policy), "--bundle",
                           str(bundle), "--refusal", REFUSAL, "--upstream-timeout", "3"],
                          tmp_path_factory.mktemp("gateway"))
    yield server
    _stop(proc)


@pytest.fixture(scope="module")
def client(gateway: Server) -> Any:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def _ask(client: Any, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], **kwargs)


def _words(*sentences: str) -> list[str]:
    return [w + " " for w in " ".join(sentences).split()]


# -- completions ---------------------------------------------------------------------------------------------
def test_benign_completion_passes_unchanged(client: Any, up: Upstream) -> None:
    up.script = {"mode": "json", "text": f"{BENIGN[2]} {CANARY}"}
    reply = _ask(client, f"{BENIGN[0]} {CANARY}")
    assert reply.choices[0].message.content == f"{BENIGN[2]} {CANARY}"
    assert reply.choices[0].finish_reason == "stop" and up.calls == 1


def test_benign_stream_passes_every_chunk(client: Any, up: Upstream) -> None:
    up.script = {"mode": "stream", "chunks": _words(BENIGN[3], BENIGN[4], CANARY)}
    parts = list(_ask(client, BENIGN[1], stream=True))
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert text == "".join(up.script["chunks"])
    assert parts[-1].choices[0].finish_reason == "stop" and up.calls == 1


@pytest.mark.parametrize("stream", [False, True])
def test_blocked_input_never_reaches_the_upstream(client: Any, up: Upstream, stream: bool) -> None:
    reply = _ask(client, f"{CANARY} {VIOLENT[0]}", stream=stream)
    if stream:
        parts = list(reply)
        text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
        finish = parts[-1].choices[0].finish_reason
    else:
        text, finish = reply.choices[0].message.content, reply.choices[0].finish_reason
    assert (text, finish) == (REFUSAL, "content_filter")
    assert up.calls == 0


def test_streamed_output_is_cut_right_after_the_harmful_sentence(client: Any, up: Upstream) -> None:
    up.script = {"mode": "stream", "chunks": _words(BENIGN[5], VIOLENT[1], BENIGN[6], CANARY)}
    parts = list(_ask(client, BENIGN[0], stream=True))
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert text == BENIGN[5] + " "  # the sentence before; nothing of the violent one or after it
    assert parts[-1].choices[0].finish_reason == "content_filter"
    assert [p.choices[0].finish_reason for p in parts[:-1] if p.choices] == [None] * (len(parts) - 1)


def test_non_streamed_harmful_output_is_withheld(client: Any, up: Upstream) -> None:
    up.script = {"mode": "json", "text": f"{BENIGN[7]} {VIOLENT[2]} {CANARY}"}
    reply = _ask(client, BENIGN[0])
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.choices[0].message.content == REFUSAL


def test_upstream_errors_and_timeouts_pass_through_as_openai_errors(client: Any, up: Upstream) -> None:
    up.script = {"mode": "error", "status": 429}
    with pytest.raises(openai.RateLimitError) as err:
        _ask(client, BENIGN[0])
    assert "slow down" in str(err.value)
    up.script = {"mode": "hang", "delay": 5}
    with pytest.raises(openai.APIStatusError) as timeout:
        _ask(client, BENIGN[0])
    assert timeout.value.status_code == 504 and timeout.value.code == "upstream_timeout"


def test_missing_key_is_refused(gateway: Server, up: Upstream) -> None:
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        _ask(bad, BENIGN[0])
    assert up.calls == 0


def test_client_disconnect_cancels_the_upstream_call(gateway: Server, up: Upstream) -> None:
    up.script = {"mode": "stream", "chunks": _words(*BENIGN) * 3, "delay": 0.05}
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": BENIGN[0]}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as resp:
        lines = resp.iter_lines()
        assert any(line.startswith("data:") for line in lines)
    # the upstream would need ~7 s to finish: it must be cut off well before
    assert up.aborted.wait(timeout=6) and not up.finished.is_set()


# -- one policy file, the same decisions everywhere; audit and logs -------------------------------------
def test_scan_serve_and_gateway_decide_alike(bundle: Path, policy: Path, client: Any, up: Upstream,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    from harmscan.classifiers import HarmClassifier

    texts = BENIGN[8:12] + VIOLENT[3:6]
    in_process = [r.decision for r in HarmClassifier.load(bundle, threads=1, policy=policy).scan(texts)]
    assert set(in_process) == {"allow", "block"}
    serve, proc = _start(["serve", "--bundle", str(bundle), "--policy", str(policy)],
                         tmp_path_factory.mktemp("serve_same_policy"))
    try:
        resp = httpx.post(serve.url + "/v1/scan", json={"texts": texts},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        served = [r["decision"] for r in resp.json()["results"]]
    finally:
        _stop(proc)
    up.script = {"mode": "json", "text": "ok"}
    gated = ["block" if _ask(client, t).choices[0].finish_reason == "content_filter" else "allow" for t in texts]
    assert in_process == served == gated
    assert up.calls == gated.count("allow")


def test_every_intervention_is_audited_and_no_text_is_logged(gateway: Server, policy: Path, client: Any,
                                                             up: Upstream) -> None:
    before = len(gateway.audit.read_text().splitlines()) if gateway.audit.exists() else 0
    prompt = f"{CANARY} {VIOLENT[4]}"
    _ask(client, prompt)
    up.script = {"mode": "stream", "chunks": _words(BENIGN[1], VIOLENT[5], CANARY)}
    list(_ask(client, BENIGN[0], stream=True))
    records = [json.loads(line) for line in gateway.audit.read_text().splitlines()[before:]]
    assert [(r["direction"], r["action"]) for r in records] == [("input", "block"), ("output", "block")]
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert all(r["policy_sha256"] == digest and r["bundle"] and r["key_id"].startswith("key-") for r in records)
    assert records[0]["sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert KEY not in gateway.audit.read_text()
    time.sleep(0.5)  # let the server flush its log
    for path in (gateway.audit, gateway.log):
        content = path.read_text()
        assert CANARY not in content and VIOLENT[4] not in content and VIOLENT[5].split()[2] + " " not in content
