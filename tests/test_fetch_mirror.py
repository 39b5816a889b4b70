"""`harmscan data fetch` into an empty data dir from a loopback HTTP mirror of every origin the `default` recipe
reads, derived files included (rebuilt by the builders in training/derive.py and checked against the pinned
sha256), and a corrupted mirror file refused with one line and nothing half-written left behind.

Two kinds of origin: small fixture files made here (their sha256 passed through a registry override), always;
and the real files, when ../shared/data is present, with the upstream files of each derived file laid out as
upstream publishes them (a GitHub archive, a pickle, a conflicted CSV) so the rebuild must match byte for byte.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harmscan.errors import DataError
from harmscan.training import sources as S
from harmscan.training.fetch import fetch_sources
from harmscan.training.recipe import load_recipe
from harmscan.training.sources import Source, SourceFile

REPO = Path(__file__).resolve().parents[1]
RECIPE = load_recipe("default")
NAMES = [s.name for s in RECIPE.sources] + [e.name for e in RECIPE.external]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(root, base URL) of a loopback HTTP server serving `root` as `<base>/<host>/<path>`."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _mirror_path(root: Path, url: str) -> Path:
    return root / url.partition("#")[0].split("://", 1)[1]


def _put(root: Path, url: str, data: bytes) -> None:
    path = _mirror_path(root, url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _github_tgz(url: str, files: Mapping[str, bytes]) -> bytes:
    """A tarball shaped like GitHub's /archive/<commit>.tar.gz: everything under `<repo>-<commit>/`."""
    repo, commit = url.split("/")[4], url.rsplit("/", 1)[-1].partition(".")[0]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{repo}-{commit}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(member: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, data)
    return buf.getvalue()


def _conflicted(clean: bytes) -> bytes:
    return b"<<<<<<< HEAD\n" + clean + b"=======\n" + clean + b">>>>>>> upstream\n"


def _assert_all_pinned(data_dir: Path, registry: Mapping[str, Source]) -> None:
    for name in NAMES:
        for f in registry[name].files:
            path = data_dir / name / f.path
            assert path.is_file(), f"{name}/{f.path} not fetched"
            assert _sha(path.read_bytes()) == f.sha256, f"{name}/{f.path} does not match its sha256"
    assert not list(data_dir.rglob("*.part")), "a temporary download was left behind"


# ---------------------------------------------------------------------------------- fixture origins (always)
# Small upstream files for each derived file, and the bytes the builder must make of them (written by hand).
TOXIGEN_UPSTREAM = {
    "README.md": b"# not a demonstrations file\n",
    "demonstrations/religion/hate_muslim.txt": b"a b\n\n  c d  \n",
    "demonstrations/religion/hate_muslim_sentences.txt": b"a b\nnew\n",  # "a b" again: dropped
    "demonstrations/race/neutral_asian_sentences.txt": b"x, y\r\n",
}
TOXIGEN_CSV = (
    b"text,label,target_group,category_dir,source_file\r\n"
    b'"x, y",neutral,asian,race,demonstrations/race/neutral_asian_sentences.txt\r\n'
    b"a b,hate,muslim,religion,demonstrations/religion/hate_muslim.txt\r\n"
    b"c d,hate,muslim,religion,demonstrations/religion/hate_muslim.txt\r\n"
    b"new,hate,muslim,religion,demonstrations/religion/hate_muslim_sentences.txt\r\n"
)
STORMFRONT_META = b"file_id,user_id,subforum_id,num_contexts,label\n1_2,7,3,0,hate\n1_1,7,3,1,noHate\n"
STORMFRONT_UPSTREAM = {
    "annotations_metadata.csv": STORMFRONT_META,
    "all_files/1_1.txt": b"Hello , world .\n",
    "all_files/1_2.txt": b' They said "go" . ',
    "sampled_train/1_1.txt": b"Hello , world .\n",
}
STORMFRONT_CSV = (
    b"file_id,user_id,subforum_id,num_contexts,label,text\r\n"
    b'1_2,7,3,0,hate,"They said ""go"" ."\r\n'
    b'1_1,7,3,1,noHate,"Hello , world ."\r\n'
)
STAQC_PICKLE = pickle.dumps({3: " Join two tables ", 1: "SQL query, count and group by"}, protocol=2)
STAQC_CSV = b'question_id,title\r\n1,"SQL query, count and group by"\r\n3,Join two tables\r\n'
MERGE_CLEAN = b"id,question\r\n0,How?\r\n"


def _fixture_origins(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Source]:
    """Put a small origin for every file of the default recipe's sources on the mirror; pin their sha256."""
    expected_derived = {
        "toxigen-demonstrations": (TOXIGEN_CSV, _github_tgz, TOXIGEN_UPSTREAM),
        "stormfront-sentences": (STORMFRONT_CSV, _github_tgz, STORMFRONT_UPSTREAM),
    }
    registry = dict(S.REGISTRY)
    for name in NAMES:
        files = []
        for f in registry[name].files:
            url, _, member = f.url.partition("#")
            content = f"{f.url}: fixture\n".encode()  # per URL: two sources may share one (a LICENSE)
            if f.build in expected_derived:
                content, pack, upstream = expected_derived[f.build]
                _put(root, url, pack(url, upstream))
            elif f.build == "staqc-sql-titles":
                content = STAQC_CSV
                _put(root, url, STAQC_PICKLE)
            elif f.build == "merge-ours":
                content = MERGE_CLEAN
                _put(root, url, _conflicted(MERGE_CLEAN))
            elif f.derived:
                pytest.fail(f"{name}/{f.path} is derived and has no builder: fetch cannot make it")
            elif member:
                _put(root, url, _zip(member, content))
            else:
                _put(root, url, content)
            files.append(dataclasses.replace(f, sha256=_sha(content), size=len(content)))
        registry[name] = dataclasses.replace(registry[name], files=tuple(files))
        monkeypatch.setitem(S.REGISTRY, name, registry[name])
    return registry


def test_fetch_from_a_mirror_makes_every_default_recipe_file(
    tmp_path: Path, mirror: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base = mirror
    registry = _fixture_origins(root, monkeypatch)
    data_dir = tmp_path / "data"
    out = io.StringIO()
    try:
        results = fetch_sources(NAMES, data_dir, out=out, mirror=base)
    except DataError:
        pytest.fail(out.getvalue())
    assert all(status.startswith("fetched") for status in results.values()), out.getvalue()
    _assert_all_pinned(data_dir, registry)
    # a second run finds everything present and downloads nothing
    assert all(s.startswith("present") for s in fetch_sources(NAMES, data_dir, out=io.StringIO()).values())


@pytest.mark.parametrize("source", ["toxic_spans", "stormfront_vicomtech"])
def test_a_corrupted_mirror_file_is_refused_and_nothing_half_written_is_left(
    tmp_path: Path, mirror: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    root, base = mirror
    registry = _fixture_origins(root, monkeypatch)
    # corrupt one byte of a plain download, or of the archive a derived file is rebuilt from
    f = next(f for f in registry[source].files if f.derived or source == "toxic_spans")
    path = _mirror_path(root, f.url)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    data_dir = tmp_path / "data"
    out = io.StringIO()
    with pytest.raises(DataError) as err:
        fetch_sources([source], data_dir, out=out, mirror=base)
    line = out.getvalue()
    assert len(line.splitlines()) == 1 and "\n" not in str(err.value)
    assert line.startswith(f"{source}  failed: ") and f.path in line
    assert "not kept" in line or "not a readable archive" in line
    assert not (data_dir / source / f.path).exists()
    assert not list(data_dir.rglob("*.part"))
    # the other files of the source were still fetched and are intact
    for other in registry[source].files:
        if other is not f:
            assert _sha((data_dir / source / other.path).read_bytes()) == other.sha256


# ------------------------------------------------------------------------------ real origins (shared/data)
def _real_upstream(name: str, f: SourceFile, data: Path) -> bytes:
    """The upstream file that `f` is downloaded or rebuilt from, made from the pinned copy in shared/data."""
    url, _, member = f.url.partition("#")
    pinned = (data / name / f.path).read_bytes()
    if f.build == "toxigen-demonstrations":  # one demonstrations/*.txt per source_file, one line per row
        by_file: dict[str, list[str]] = {}
        for row in list(csv.reader(io.StringIO(pinned.decode("utf-8"))))[1:]:
            by_file.setdefault(row[4], []).append(row[0])
        return _github_tgz(url, {k: ("\n".join(v) + "\n").encode() for k, v in by_file.items()})
    if f.build == "stormfront-sentences":  # the metadata as published, plus all_files/<file_id>.txt
        files = {"annotations_metadata.csv": (data / name / "annotations_metadata.csv").read_bytes()}
        for row in list(csv.reader(io.StringIO(pinned.decode("utf-8"))))[1:]:
            files[f"all_files/{row[0]}.txt"] = row[5].encode()
        return _github_tgz(url, files)
    if f.build == "staqc-sql-titles":  # the upstream pickle itself is in shared/data
        return (data / name / url.rsplit("/", 1)[-1]).read_bytes()
    if f.build == "merge-ours":
        return _conflicted(pinned)
    if f.derived:
        pytest.fail(f"{name}/{f.path} is derived and has no builder: fetch cannot make it")
    return _zip(member, pinned) if member else pinned


def test_fetch_from_a_mirror_of_the_real_origins_matches_every_pinned_sha256(
    tmp_path: Path, mirror: tuple[Path, str], data_dir: Path
) -> None:
    root, base = mirror
    for name in NAMES:
        for f in S.REGISTRY[name].files:
            if not (data_dir / name / f.path).is_file():
                pytest.skip(f"{data_dir / name / f.path} is absent: the real files are needed for this test")
            _put(root, f.url, _real_upstream(name, f, data_dir))
    empty = tmp_path / "data"
    env = {**os.environ, "HARMSCAN_DATA_MIRROR": base}
    proc = subprocess.run(
        [sys.executable, "-m", "harmscan.cli", "data", "fetch", *NAMES, "--data-dir", str(empty)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == len(NAMES)
    _assert_all_pinned(empty, S.REGISTRY)

    # the CLI refuses a corrupted mirror file in one line, exits non-zero and keeps the good copy untouched
    f = S.REGISTRY["toxigen_demonstrations"].files[0]
    path = _mirror_path(root, f.url)
    path.write_bytes(path.read_bytes()[:-100])
    proc = subprocess.run(
        [sys.executable, "-m", "harmscan.cli", "data", "fetch", "toxigen_demonstrations", "--force",
         "--data-dir", str(empty)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("harmscan: error: ")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert _sha((empty / "toxigen_demonstrations" / f.path).read_bytes()) == f.sha256
    assert not list(empty.rglob("*.part"))
