"""Issue 17: push a bundle to a Hub, load it back by `hf://owner/name[@revision]` (through the Hub cache,
also offline), and refuse a download that was altered after it landed in the cache.

The Hub is a loopback HTTP server implementing the few endpoints huggingface_hub's `create_repo`,
`upload_folder` and `snapshot_download` call (HF_ENDPOINT points at it): the client code under test is the
real one, and what it writes into HF_HUB_CACHE is what it reads back offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("huggingface_hub")

from classifier_helpers import BENIGN, VIOLENT, run_harmscan, violence_bundle  # noqa: E402

from harmscan.classifiers.hub import is_hub_ref, parse_hub_ref  # noqa: E402
from harmscan.errors import BundleError, InputError  # noqa: E402


class LoopbackHub:
    """Repositories in memory: {repo_id: {"commits": [sha], "files": {path: bytes}}} (one branch, main)."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()


def _handler(hub: LoopbackHub) -> type[BaseHTTPRequestHandler]:
    from huggingface_hub import constants

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

        def _json(self, obj: Any, status: int = 200) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _not_found(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            parts = self.path.split("?")[0].strip("/").split("/")
            data = self._body()
            if parts[:3] == ["api", "repos", "create"]:
                req = json.loads(data)
                repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                with hub.lock:
                    hub.repos.setdefault(repo_id, {"commits": [], "files": {}, "private": req.get("private")})
                # The URL the real Hub answers: huggingface_hub parses it against the endpoint it imported with.
                return self._json({"url": f"{constants.ENDPOINT}/{repo_id}", "name": repo_id})
            if parts[:2] == ["api", "validate-yaml"]:
                return self._json({})
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("preupload", "commit"):
                repo_id = f"{parts[2]}/{parts[3]}"
                if repo_id not in hub.repos:
                    return self._not_found()
                if parts[4] == "preupload":
                    files = json.loads(data)["files"]
                    return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
                repo = hub.repos[repo_id]
                added = {}
                for line in data.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                with hub.lock:
                    repo["files"].update(added)
                    sha = hashlib.sha1(json.dumps(sorted((p, hashlib.sha1(b).hexdigest())
                                                         for p, b in repo["files"].items())).encode()).hexdigest()
                    repo["commits"].append(sha)
                    repo.setdefault("snapshots", {})[sha] = dict(repo["files"])
                return self._json({"commitUrl": f"{constants.ENDPOINT}/{repo_id}/commit/{sha}", "commitOid": sha})
            self._not_found()

        def _snapshot(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
            repo = hub.repos.get(repo_id)
            if not repo or not repo["commits"]:
                return None
            sha = repo["commits"][-1] if revision == "main" else revision
            files = repo.get("snapshots", {}).get(sha)
            return None if files is None else (sha, files)

        def do_GET(self, head: bool = False) -> None:  # noqa: N802
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
                found = self._snapshot(f"{parts[2]}/{parts[3]}", parts[5])
                if found is None:
                    return self._not_found()
                sha, files = found
                return self._json({"id": f"{parts[2]}/{parts[3]}", "sha": sha, "private": False,
                                   "siblings": [{"rfilename": p} for p in sorted(files)]})
            if len(parts) >= 5 and parts[2] == "resolve":
                found = self._snapshot(f"{parts[0]}/{parts[1]}", parts[3])
                name = "/".join(parts[4:])
                if found is None or name not in found[1]:
                    return self._not_found()
                sha, files = found
                body = files[name]
                self.send_response(200)
                self.send_header("X-Repo-Commit", sha)
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                return None
            self._not_found()

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET(head=True)

    return Handler


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[LoopbackHub, Path]]:
    from huggingface_hub import constants

    state = LoopbackHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cache = tmp_path / "hub-cache"
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_loopback")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the test suite runs with HF_HUB_OFFLINE=1
    reset_sessions()  # the HTTP session mounts an offline adapter when created offline
    try:
        yield state, cache
    finally:
        server.shutdown()
        server.server_close()
        monkeypatch.undo()
        reset_sessions()


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    reset_sessions()


def reset_sessions() -> None:
    from huggingface_hub.utils import reset_sessions as reset

    reset()


def test_hub_ids_are_parsed_and_bad_ones_refused_in_one_line() -> None:
    assert parse_hub_ref("hf://acme/harm-v1@v2") == ("acme/harm-v1", "v2")
    assert parse_hub_ref(Path("hf://acme/harm")) == ("acme/harm", None)  # Path folds // (argparse type=Path)
    assert is_hub_ref("hf://a/b") and not is_hub_ref("artifacts/bundle")
    with pytest.raises(InputError, match="hf://owner/name"):
        parse_hub_ref("hf://just-a-name")


def test_push_then_load_by_id_round_trips_and_works_offline(
    hub: tuple[LoopbackHub, Path], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harmscan.classifiers import HarmClassifier
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.hub import push

    state, cache = hub
    local = violence_bundle(tmp_path_factory)
    commit = push(local, "acme/violence-tiny", private=True)
    assert state.repos["acme/violence-tiny"]["private"] is True
    shared = state.repos["acme/violence-tiny"]["files"]
    assert {"harmscan.json", "model.onnx", "tokenizer.json", "config.json", "README.md"} <= set(shared)
    assert not any(name.startswith(".harmscan.") for name in shared)

    texts = BENIGN[:3] + VIOLENT[:3]
    expected = HarmClassifier.load(local, threads=1).predict_proba(texts)
    remote = HarmClassifier.load(f"hf://acme/violence-tiny@{commit}", threads=1)
    assert remote.bundle.path == cache / "models--acme--violence-tiny" / "snapshots" / commit
    np.testing.assert_array_equal(remote.predict_proba(texts), expected)
    assert remote.bundle.fingerprint == Bundle.load(local).fingerprint

    # The default branch is the same commit; loading it records refs/main in the cache, through which
    # it resolves offline (HF_HUB_OFFLINE=1). A repository never downloaded is refused in one line.
    assert Bundle.load("hf://acme/violence-tiny").path == remote.bundle.path
    assert (cache / "models--acme--violence-tiny" / "refs" / "main").read_text() == commit
    go_offline(monkeypatch)
    assert Bundle.load("hf://acme/violence-tiny").path == remote.bundle.path
    assert Bundle.load(f"hf://acme/violence-tiny@{commit}").path == remote.bundle.path
    with pytest.raises(BundleError, match="not in the Hub cache") as err:
        Bundle.load("hf://acme/never-pushed")
    assert "\n" not in str(err.value)


def test_a_download_altered_in_the_cache_is_refused(
    hub: tuple[LoopbackHub, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.hub import push

    _, cache = hub
    push(violence_bundle(tmp_path_factory), "acme/violence-tiny")
    snapshot = Bundle.load("hf://acme/violence-tiny").path
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    import os

    env = {**os.environ, **env}
    ok = run_harmscan("scan", "-", "-o", "-", "--bundle", "hf://acme/violence-tiny", "--threads", "1",
                      input=VIOLENT[0] + "\n", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["decision"] in ("flag", "allow")

    blob = (snapshot / "model.onnx").resolve()  # the cache's blob behind the snapshot's symlink
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte changed after download
    blob.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its recorded sha256") as err:
        Bundle.load("hf://acme/violence-tiny")
    assert "\n" not in str(err.value)
    refused = run_harmscan("scan", "-", "-o", "-", "--bundle", "hf://acme/violence-tiny",
                           input=VIOLENT[0] + "\n", env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "sha256" in lines[0] and "Traceback" not in refused.stderr


def test_push_command_prints_a_loadable_id(
    hub: tuple[LoopbackHub, Path], tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`harmscan push BUNDLE OWNER/NAME` uploads and prints the hf:// id a user then scans with."""
    from harmscan.classifiers import HarmClassifier
    from harmscan.cli import main

    state, _ = hub
    local = violence_bundle(tmp_path_factory)
    assert main(["push", str(local), "acme/violence-cli", "--private"]) == 0
    ref = capsys.readouterr().out.strip()
    assert ref.startswith("hf://acme/violence-cli@") and state.repos["acme/violence-cli"]["private"] is True
    texts = BENIGN[:2] + VIOLENT[:2]
    np.testing.assert_array_equal(HarmClassifier.load(ref, threads=1).predict_proba(texts),
                                  HarmClassifier.load(local, threads=1).predict_proba(texts))
    # A bad id is a one-line usage error (exit 2), nothing uploaded.
    assert main(["push", str(local), "no-owner"]) == 2
    assert "hf://owner/name" in capsys.readouterr().err and "no-owner" not in state.repos
