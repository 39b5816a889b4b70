"""`harmscan scan --engine ray`: the same output as the single-process scan, exactly once even when a Ray
worker or the driver is killed mid-run. One local Ray instance (2 CPUs) serves the whole module."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from harmscan.classifiers.ray_engine import ACTOR_NAME, scan_with_ray  # noqa: E402
from harmscan.errors import BundleError, InputError  # noqa: E402

ROWS = 3000
SMALL_CHUNK = 50  # many Ray tasks, so that a kill lands mid-run
WORDS = (
    "the a you we they kill hurt idiot stupid lovely weather today python process bomb recipe cat dog "
    "attack train station meet tomorrow coffee hate love knife garden cake"
).split()


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harmscan.training.export import export_bundle

    return export_bundle(tiny_model_dir, tmp_path_factory.mktemp("ray") / "bundle", progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few thousand JSONL rows: string, numeric and missing ids, texts of one to several windows, and bad
    rows of every kind the reader reports."""
    rng = random.Random(7)
    path = tmp_path_factory.mktemp("corpus") / "posts.jsonl"
    with open(path, "wb") as fh:
        for i in range(ROWS):
            if i % 401 == 13:
                fh.write(b'{"id": "broken", "text": \n')  # invalid JSON
            elif i % 577 == 21:
                fh.write(json.dumps({"id": i, "body": "no text field"}).encode() + b"\n")
            elif i % 631 == 34:
                fh.write(json.dumps({"id": i, "text": 42}).encode() + b"\n")
            elif i % 887 == 55:
                fh.write(b'{"id": "latin1", "text": "caf\xe9"}\n')  # not UTF-8
            else:
                n = rng.randint(300, 420) if i % 97 == 0 else rng.randint(1, 40)  # some texts span windows
                row: dict[str, Any] = {"text": " ".join(rng.choices(WORDS, k=n))}
                if i % 5:  # every fifth row has no id: the reader uses its line number
                    row["id"] = f"post-{i}" if i % 2 else 100_000 + i
                fh.write(json.dumps(row).encode() + b"\n")
    return path


def local_scan(bundle: Path, source: Path, out: Path, chunk_size: int = 1024, **kw: Any) -> Any:
    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.classifiers.scan import scan_file

    clf = HarmClassifier.load(bundle, threads=1)
    return scan_file(source, out, clf, chunk_size=chunk_size, progress=False, **kw)


@pytest.fixture(scope="module")
def reference(bundle: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Single-process scans of the corpus, by chunk size."""
    out = tmp_path_factory.mktemp("reference")
    for chunk in (1024, SMALL_CHUNK):
        local_scan(bundle, corpus, out / f"local-{chunk}.jsonl", chunk_size=chunk)
    return {chunk: out / f"local-{chunk}.jsonl" for chunk in (1024, SMALL_CHUNK)}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_same_scan(got: Path, want: Path) -> None:
    """Same ids in the same order, each once; scores within 1e-6; same flags and decisions."""
    a, b = read_jsonl(got), read_jsonl(want)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert len({json.dumps(r["id"]) for r in a}) == len(a)
    worst = max(abs(x["scores"][k] - y["scores"][k]) for x, y in zip(a, b, strict=True) for k in y["scores"])
    assert worst <= 1e-6
    assert [(r["flagged"], r["decision"]) for r in a] == [(r["flagged"], r["decision"]) for r in b]


def progress_records(output: Path) -> int:
    try:
        return int(json.loads(output.with_name(output.name + ".progress.json").read_text())["records"])
    except (OSError, ValueError, KeyError):
        return 0


def actor_pids() -> list[int]:
    """PIDs of this machine's scan actors: Ray titles them "ray::MapWorker(MapBatches(_ScanActor))..."."""
    title = f"ray::MapWorker(MapBatches({ACTOR_NAME}))".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes().startswith(title):
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


# -- parity with the single-process scan -------------------------------------------------------------------
def test_ray_scan_equals_single_process_scan(ray_cluster, bundle, corpus, reference, tmp_path):
    out = tmp_path / "ray.jsonl"
    summary = scan_with_ray(corpus, out, bundle, num_actors=2, progress=False)

    assert_same_scan(out, reference[1024])
    # Bad rows: the same errors file, line numbers and messages included.
    local_errors = reference[1024].with_name("local-1024.errors.jsonl")
    assert (tmp_path / "ray.errors.jsonl").read_text() == local_errors.read_text()
    assert summary.complete and summary.records == ROWS
    assert summary.rows + summary.errors == ROWS and summary.errors >= 12


def test_parquet_output_has_the_single_process_schema(ray_cluster, bundle, corpus, tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.chdir(tmp_path)  # relative paths below: Ray's workers do not share the driver's directory
    head = tmp_path / "head.jsonl"
    head.write_bytes(b"".join(corpus.read_bytes().splitlines(keepends=True)[:400]))
    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.classifiers.policy import Policy
    from harmscan.classifiers.scan import scan_file

    # A policy file and a threshold override reach the actors: flags follow the thresholds given here.
    policy_file = tmp_path / "policy.json"
    Policy({"toxicity": 0.2, "violence": 0.5, "illegal_advice": 0.9}).save(policy_file)
    labels = ["toxicity", "violence", "illegal_advice"]
    policy = Policy.from_file(policy_file, labels).with_overrides({"violence": 0.3}, labels)
    clf = HarmClassifier.load(bundle, threads=1, policy=policy)
    scan_file(head, tmp_path / "local.parquet", clf, progress=False, spans=True)
    scan_with_ray("head.jsonl", "ray.parquet", os.path.relpath(bundle), num_actors=2, policy="policy.json",
                  thresholds={"violence": 0.3}, spans=True, progress=False)

    local, remote = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert remote.schema == local.schema
    assert remote.column("id").to_pylist() == local.column("id").to_pylist()
    assert remote.column("flagged").to_pylist() == local.column("flagged").to_pylist()
    assert remote.column("span").to_pylist() == local.column("span").to_pylist()
    progress = json.loads((tmp_path / "ray.parquet.progress.json").read_text())
    assert progress["thresholds"] == {"toxicity": 0.2, "violence": 0.3, "illegal_advice": 0.9}


# -- failures ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds Ray workers through /proc")
def test_worker_killed_mid_run_loses_and_duplicates_nothing(ray_cluster, bundle, corpus, reference, tmp_path):
    out = tmp_path / "ray.jsonl"
    killed: list[tuple[int, int]] = []
    finished = threading.Event()

    def kill_one_actor_mid_run() -> None:
        deadline = time.monotonic() + 120
        while not finished.is_set() and time.monotonic() < deadline:
            committed = progress_records(out)
            pids = actor_pids()
            if committed >= 2 * SMALL_CHUNK and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append((pids[0], committed))
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_actor_mid_run, daemon=True)
    killer.start()
    try:
        summary = scan_with_ray(corpus, out, bundle, num_actors=2, batch_size=SMALL_CHUNK, progress=False)
    finally:
        finished.set()
        killer.join()

    assert killed, "no actor was killed: the scan finished before the killer found one"
    pid, committed_at_kill = killed[0]
    assert committed_at_kill < ROWS, "the kill came after the scan had committed everything"
    assert not Path(f"/proc/{pid}").exists()
    assert summary.complete and summary.records == ROWS
    assert_same_scan(out, reference[SMALL_CHUNK])


def test_driver_killed_then_resumed_by_the_local_engine(ray_cluster, bundle, corpus, reference, tmp_path):
    """The Ray engine commits like the single-process scan: a driver SIGKILLed mid-run is resumed exactly
    (here by the local engine, from the same progress file)."""
    out = tmp_path / "ray.jsonl"
    address = ray_cluster.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "harmscan.cli", "scan", str(corpus), "-o", str(out), "--bundle", str(bundle),
           "--engine", "ray", "--ray-address", address, "--num-actors", "2", "--threads", "1",
           "--chunk-size", str(SMALL_CHUNK), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while progress_records(out) < 4 * SMALL_CHUNK and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    committed = progress_records(out)
    assert 0 < committed < ROWS

    summary = local_scan(bundle, corpus, out, chunk_size=SMALL_CHUNK, resume=True)
    assert summary.resumed_from == committed and summary.records == ROWS
    assert_same_scan(out, reference[SMALL_CHUNK])


# -- user errors ---------------------------------------------------------------------------------------------
def test_user_errors_are_caught_before_any_worker_starts(ray_cluster, bundle, corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError, match="stdin"):
        scan_with_ray("-", out, bundle)
    with pytest.raises(InputError, match="missing.jsonl"):
        scan_with_ray(tmp_path / "missing.jsonl", out, bundle)
    with pytest.raises(BundleError, match="harmscan export"):
        scan_with_ray(corpus, out, tmp_path / "no-bundle")
    with pytest.raises(InputError, match="gpus-per-actor"):
        scan_with_ray(corpus, out, bundle, num_gpus_per_actor=1)  # this cluster has no GPU: Ray would wait
    with pytest.raises(InputError, match="ray job submit"):
        scan_with_ray(corpus, out, bundle, ray_address="ray://head:10001")
    with pytest.raises(InputError, match="num-actors"):
        scan_with_ray(corpus, out, bundle, num_actors=0)
    out.write_text("{}\n")
    with pytest.raises(InputError, match="--overwrite"):
        scan_with_ray(corpus, out, bundle)


def test_an_error_raised_in_a_worker_reaches_the_user_as_one_line(ray_cluster):
    """An actor that cannot load its bundle fails inside Ray, which keeps only the traceback text; the
    driver turns it back into the harmscan error (the CLI prints it as one line)."""
    from harmscan.classifiers.ray_engine import _BundleShipment, _harmscan_cause, _ScanActor

    missing = _BundleShipment("/nonexistent/bundle", b"{}")
    dataset = ray_cluster.data.range(10).map_batches(
        _ScanActor, compute=ray_cluster.data.ActorPoolStrategy(size=1), num_cpus=1,
        fn_constructor_kwargs={"shipment": missing, "variant": "auto", "device": "cpu", "threads": 1,
                               "policy": None, "model_batch_size": 8, "max_batch_tokens": "auto",
                               "spans": False},
    )
    with pytest.raises(Exception) as info:
        dataset.take_all()
    error = _harmscan_cause(info.value)
    assert isinstance(error, BundleError)
    assert str(error).startswith("bundle /nonexistent/bundle is not on node") and "\n" not in str(error)


def test_a_node_without_the_bundle_gets_a_verified_copy(ray_cluster, bundle, tmp_path, monkeypatch):
    """On a multi-node cluster the driver ships the bundle; a node where the folder is absent (or differs)
    materialises it once and loads it with its hashes checked."""
    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.classifiers.ray_engine import _BundleShipment, local_bundle, ship_bundle

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    shipped = ship_bundle(bundle, multi_node=True)
    elsewhere = _BundleShipment(str(tmp_path / "not-on-this-node"), shipped.manifest, shipped.files)
    copy = local_bundle(elsewhere)
    assert copy != bundle and copy.is_relative_to(tmp_path)
    assert local_bundle(elsewhere) == copy  # materialised once per node
    assert HarmClassifier.load(copy, threads=1).predict_proba(["hello"]).shape == (1, 3)
    assert local_bundle(shipped) == bundle  # the driver's own folder is used as is


def test_cli_reports_ray_engine_mistakes_in_one_line(bundle, corpus, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harmscan.cli", "scan", str(corpus), "-o", str(tmp_path / "out.jsonl"),
         "--bundle", str(bundle), "--engine", "ray", "--ray-address", "ray://head:10001"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harmscan: error:")]
    assert len(errors) == 1 and "ray job submit" in errors[0]
    assert not (tmp_path / "out.jsonl").exists()
