"""`harmscan scan`: readers, output rows, bad rows, and exact resumption after a crash."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from classifier_helpers import harmscan_cmd, run_harmscan, tiny_bundle

from harmscan.classifiers import HarmClassifier
from harmscan.classifiers.records import iter_records
from harmscan.classifiers.scan import progress_path, scan_file
from harmscan.errors import InputError

TEXTS = ["hello world", "you are an idiot", "how do I make a bomb", "lovely weather today", "I will hurt you"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return tiny_bundle(tmp_path_factory, tiny_model_dir)


@pytest.fixture(scope="module")
def clf(bundle_dir: Path) -> HarmClassifier:
    return HarmClassifier.load(bundle_dir, variant="fp32", threads=1)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path: Path, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"row-{i}", "text": " ".join(rng.choices(TEXTS, k=rng.randint(1, 4)))}) + "\n")


def test_jsonl_rows_and_bad_rows_with_line_numbers(clf: HarmClassifier, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    with open(src, "wb") as fh:
        fh.write(b'{"id": "a", "text": "hello world"}\n')
        fh.write(b'{"id": "b", "body": "no text field"}\n')
        fh.write(b'{"id": "c", "text": 42}\n')
        fh.write(b"\n")  # blank lines are not records
        fh.write(b'{"id": "d", "text": "caf\xe9 latin-1 bytes"}\n')
        fh.write(b"this is not json\n")
        fh.write(b'{"text": "no id: the line number is the id"}\n')
        fh.write(b'{"id": "e", "text": "lone surrogate \\ud800 here"}\n')
        fh.write(b'{"id": "f", "text": "I will hurt you"}\n')
    out = tmp_path / "out.jsonl"
    summary = scan_file(src, out, clf, progress=False)
    rows = _read_jsonl(out)
    assert [r["id"] for r in rows] == ["a", 7, "f"]
    for row in rows:
        assert set(row) == {"id", "scores", "flagged", "decision", "language"}
        assert set(row["scores"]) == {"toxicity", "violence", "illegal_advice"}
        assert row["decision"] == ("flag" if row["flagged"] else "allow")
    assert rows[0]["scores"] == pytest.approx(clf.scan(["hello world"])[0].scores, abs=1e-6)
    errors = _read_jsonl(tmp_path / "out.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(2, "b"), (3, "c"), (5, 5), (6, 6), (8, "e")]
    assert "missing field 'text'" in errors[0]["error"]
    assert "is a number, not a string" in errors[1]["error"]
    assert "undecodable bytes" in errors[2]["error"]
    assert "invalid JSON" in errors[3]["error"]
    assert "unpaired surrogates" in errors[4]["error"]
    assert (summary.rows, summary.errors, summary.records, summary.complete) == (3, 5, 8, True)
    assert summary.errors_path == tmp_path / "out.errors.jsonl"


def test_every_input_format_gives_the_same_scores(clf: HarmClassifier, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ids = [f"id{i}" for i in range(len(TEXTS))]
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    with open(tmp_path / "in.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "comment"])
        writer.writerows(zip(ids, TEXTS, strict=True))
    with open(tmp_path / "in.tsv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter="\t").writerows([["id", "comment"], *zip(ids, TEXTS, strict=True)])
    pq.write_table(pa.table({"id": ids, "comment": TEXTS}), tmp_path / "in.parquet")
    expected = [r.scores for r in clf.scan(TEXTS)]
    for name, field in [("in.txt", "text"), ("in.csv", "comment"), ("in.tsv", "comment"), ("in.parquet", "comment")]:
        out = tmp_path / f"{name}.out.jsonl"
        scan_file(tmp_path / name, out, clf, text_field=field, progress=False)
        rows = _read_jsonl(out)
        assert [r["id"] for r in rows] == ([1, 2, 3, 4, 5] if name == "in.txt" else ids), name
        for row, scores in zip(rows, expected, strict=True):
            assert row["scores"] == pytest.approx(scores, abs=1e-6), name


def test_csv_and_parquet_bad_rows_and_missing_columns(clf: HarmClassifier, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "bad.csv").write_bytes(b'id,text\n1,fine text\n2\n3,"multi\nline text"\n4,caf\xe9\n5,last\n')
    scan_file(tmp_path / "bad.csv", tmp_path / "csv.jsonl", clf, progress=False)
    assert [r["id"] for r in _read_jsonl(tmp_path / "csv.jsonl")] == ["1", "3", "5"]
    errors = _read_jsonl(tmp_path / "csv.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(3, "2"), (6, "4")]
    with pytest.raises(InputError, match=r"no column 'body' \(columns: id, text\): pass --text-field"):
        scan_file(tmp_path / "bad.csv", tmp_path / "x.jsonl", clf, text_field="body", progress=False)
    pq.write_table(pa.table({"text": ["ok", None, "also ok"]}), tmp_path / "nulls.parquet")
    scan_file(tmp_path / "nulls.parquet", tmp_path / "pq.jsonl", clf, progress=False)
    assert [r["id"] for r in _read_jsonl(tmp_path / "pq.jsonl")] == [1, 3]
    assert _read_jsonl(tmp_path / "pq.errors.jsonl")[0]["error"] == "field 'text' is null"
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "ints.parquet")
    with pytest.raises(InputError, match="column 'text' has type int64, not string"):
        scan_file(tmp_path / "ints.parquet", tmp_path / "y.jsonl", clf, progress=False)
    with pytest.raises(InputError, match="cannot tell the format of .*in.xlsx"):
        scan_file(tmp_path / "in.xlsx", tmp_path / "z.jsonl", clf, progress=False)


def test_stdin_input_and_parquet_output(clf: HarmClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    data = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    out = tmp_path / "out.parquet"
    summary = scan_file("-", out, clf, progress=False, spans=True)
    table = pq.read_table(out)
    assert table.column_names == ["id", "scores", "flagged", "decision", "language", "span", "windows"]
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == ["0", "1", "2", "3", "4"]  # Parquet ids are strings
    expected = clf.scan(TEXTS, return_spans=True)
    for row, res in zip(rows, expected, strict=True):
        assert row["scores"] == pytest.approx(res.scores, abs=1e-6)
        assert row["flagged"] == res.flagged and row["span"] == res.span and row["windows"] == 1
    assert summary.complete and not out.with_name("out.parquet.parts").exists()


def test_existing_output_needs_resume_or_overwrite(clf: HarmClassifier, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    _write_jsonl(src, 10)
    out = tmp_path / "out.jsonl"
    scan_file(src, out, clf, progress=False)
    with pytest.raises(InputError, match="exists: pass --resume .* or --overwrite"):
        scan_file(src, out, clf, progress=False)
    again = scan_file(src, out, clf, progress=False, resume=True)  # a finished scan: nothing to redo
    assert again.complete and again.resumed_from == 10 and len(_read_jsonl(out)) == 10
    scan_file(src, out, clf, progress=False, overwrite=True)
    assert len(_read_jsonl(out)) == 10
    strict = HarmClassifier.load(clf.bundle, variant="fp32", threads=1)
    strict.policy = strict.policy.with_overrides({"violence": 0.9}, strict.labels)
    with pytest.raises(InputError, match="cannot resume .* the thresholds differ"):
        scan_file(src, out, strict, progress=False, resume=True)
    src.write_text(src.read_text() + '{"id": "new", "text": "appended"}\n')
    with pytest.raises(InputError, match="the input file .* changed"):
        scan_file(src, out, clf, progress=False, resume=True)


class _Crash(Exception):
    pass


def test_resume_after_a_crash_mid_chunk_is_exact(clf: HarmClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process version of the SIGKILL test: rows written after the last commit must be dropped."""
    src = tmp_path / "in.jsonl"
    _write_jsonl(src, 500)
    with open(src, "a") as fh:
        fh.write('{"id": "bad", "text": null}\n')
    reference = tmp_path / "ref.jsonl"
    scan_file(src, reference, clf, progress=False, chunk_size=64)

    from harmscan.classifiers import scan as scan_mod

    real_commit, calls = scan_mod._commit, {"n": 0}

    def crashing_commit(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:  # rows of the 4th chunk are written to the file but never committed
            raise _Crash
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(scan_mod, "_commit", crashing_commit)
    out = tmp_path / "out.jsonl"
    with pytest.raises(_Crash):
        scan_file(src, out, clf, progress=False, chunk_size=64)
    assert len(_read_jsonl(out)) == 4 * 64  # the uncommitted chunk reached the file
    assert json.loads(progress_path(out).read_text())["records"] == 3 * 64
    monkeypatch.setattr(scan_mod, "_commit", real_commit)
    summary = scan_file(src, out, clf, progress=False, chunk_size=64, resume=True)
    assert summary.resumed_from == 192 and summary.complete
    assert out.read_bytes() == reference.read_bytes()
    assert len(_read_jsonl(tmp_path / "out.errors.jsonl")) == 1


def _committed(out: Path) -> int:
    try:
        return int(json.loads(progress_path(out).read_text())["records"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_sigkill_at_random_points_then_resume_gives_every_id_exactly_once(
    bundle_dir: Path, tmp_path: Path, suffix: str
) -> None:
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    n = 4000
    src = tmp_path / "in.jsonl"
    _write_jsonl(src, n)
    out = tmp_path / f"out.{suffix}"
    args = ["scan", str(src), "-o", str(out), "--bundle", str(bundle_dir), "--threads", "1",
            "--chunk-size", "50", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(7)
    kills = 0
    # Kill at random points, whatever the machine's speed: wait until the scan has committed past a
    # random target (so each kill lands mid-scan), then SIGKILL after a random few milliseconds, which
    # falls anywhere in the write / fsync / commit cycle.
    for target in sorted(rng.sample(range(200, n - 200), 4)):
        extra = ["--resume"] if kills else []
        proc = subprocess.Popen(harmscan_cmd(*args, *extra), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
        deadline = time.time() + 120
        while _committed(out) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    final = run_harmscan(*args, "--resume", env=env, timeout=300)
    assert final.returncode == 0, final.stderr
    assert kills >= 3  # the test really interrupted the scan
    if suffix == "jsonl":
        ids = [r["id"] for r in _read_jsonl(out)]
        clean = tmp_path / "clean.jsonl"
        assert run_harmscan(*args[:3], str(clean), *args[4:], env=env).returncode == 0
        assert out.read_bytes() == clean.read_bytes()  # same rows, same scores, byte for byte
    else:
        import pyarrow.parquet as pq

        ids = pq.read_table(out).column("id").to_pylist()
    assert ids == [f"row-{i}" for i in range(n)]


def test_cli_scan_thresholds_and_errors(bundle_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("hello\nyou idiot\n")
    out = tmp_path / "out.jsonl"
    proc = run_harmscan("scan", str(src), "-o", str(out), "--bundle", str(bundle_dir), "--threads", "1",
                        "--thresholds", "toxicity=0,violence=1,illegal_advice=1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert [r["flagged"] for r in _read_jsonl(out)] == [["toxicity"], ["toxicity"]]
    assert "scan finished: 2 rows" in proc.stderr
    bad = run_harmscan("scan", str(src), "-o", str(tmp_path / "o2.jsonl"), "--bundle", str(bundle_dir),
                       "--thresholds", "violence:0.3")
    assert bad.returncode == 2 and "not label=probability" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_harmscan("scan", str(src), "-o", str(tmp_path / "o3.jsonl"), "--bundle", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_readers_stream_one_record_at_a_time(tmp_path: Path) -> None:
    src = tmp_path / "big.txt"
    src.write_text("line\n" * 10)
    records = iter_records(src)
    first = next(records)
    assert (first.line, first.id, first.text, first.error) == (1, 1, "line", None)
    assert sum(1 for _ in records) == 9
