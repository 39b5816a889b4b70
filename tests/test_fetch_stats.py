"""`harmscan data fetch` (against file:// upstreams in tmp_path) and `harmscan data stats`."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from harmscan.errors import DataError, InputError
from harmscan.training import sources as S
from harmscan.training.fetch import fetch_sources
from harmscan.training.sources import Example, Source, SourceFile
from harmscan.training.stats import compute_stats, format_stats, registry_markdown, short_licence

REPO = Path(__file__).resolve().parents[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_lines(folder: Path) -> list[Example]:
    return [Example(t, {"toxicity": 0}, "fake_src") for t in (folder / "a.txt").read_text().splitlines()]


RegisterFn = Callable[..., Source]


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> RegisterFn:
    """Register a throwaway source whose files point at file:// URLs."""

    def _register(*files: SourceFile, name: str = "fake_src") -> Source:
        src = Source(
            name=name, title="fake", origin="https://example.org/fake", commit="0" * 40, licence="MIT",
            commercial_use=True, files=tuple(files), heads=("toxicity",), mapping="all 0",
            reader=lambda folder: iter(_read_lines(folder)), kind="benign",
        )
        monkeypatch.setitem(S.REGISTRY, name, src)
        return src

    return _register


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    up = tmp_path / "upstream"
    up.mkdir()
    return up


# ------------------------------------------------------------------------------------------------- fetch
def test_everything_present_downloads_nothing(data_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")}
    out = io.StringIO()
    results = fetch_sources(None, data_dir, out=out)
    assert set(results) == set(S.REGISTRY)
    assert all(status.startswith("present") for status in results.values())
    assert len(out.getvalue().splitlines()) == len(S.REGISTRY)
    assert {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")} == before  # nothing written


def test_fetch_downloads_a_missing_file_and_verifies_it(
    tmp_path: Path, upstream: Path, register: RegisterFn
) -> None:
    content = b"hello\nworld\n"
    (upstream / "a.txt").write_bytes(content)
    register(SourceFile("a.txt", _sha(content), len(content), (upstream / "a.txt").as_uri()))
    data_dir = tmp_path / "data"
    out = io.StringIO()
    assert fetch_sources(["fake_src"], data_dir, out=out) == {"fake_src": "fetched 1 file"}
    assert (data_dir / "fake_src" / "a.txt").read_bytes() == content
    assert "fake_src  fetched 1 file" in out.getvalue()
    # now present: nothing downloaded, and the source reads through the verified path
    assert fetch_sources(["fake_src"], data_dir, out=io.StringIO()) == {"fake_src": "present (1 file)"}
    assert [e.text for e in S.iter_examples("fake_src", data_dir)] == ["hello", "world"]


def test_fetch_replaces_a_corrupt_file_and_force_refetches(
    tmp_path: Path, upstream: Path, register: RegisterFn
) -> None:
    content = b"hello\n"
    (upstream / "a.txt").write_bytes(content)
    register(SourceFile("a.txt", _sha(content), len(content), (upstream / "a.txt").as_uri()))
    target = tmp_path / "data" / "fake_src" / "a.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"HELLO\n")  # same size, wrong hash
    assert fetch_sources(["fake_src"], tmp_path / "data", out=io.StringIO()) == {
        "fake_src": "fetched 1 file"
    }
    assert target.read_bytes() == content
    assert fetch_sources(["fake_src"], tmp_path / "data", force=True, out=io.StringIO()) == {
        "fake_src": "fetched 1 file"
    }


def test_fetch_rejects_a_corrupted_download(tmp_path: Path, upstream: Path, register: RegisterFn) -> None:
    good = b"hello\nworld\n"
    (upstream / "a.txt").write_bytes(b"hellO\nworld\n")  # the upstream changed under the pin
    register(SourceFile("a.txt", _sha(good), len(good), (upstream / "a.txt").as_uri()))
    data_dir = tmp_path / "data"
    out = io.StringIO()
    with pytest.raises(DataError) as exc:
        fetch_sources(["fake_src"], data_dir, out=out)
    assert "1 source(s) not fetched: fake_src" in str(exc.value)
    line = out.getvalue().strip()
    assert "failed: downloaded a.txt has sha256" in line and "not kept" in line
    assert not (data_dir / "fake_src").exists()  # no half file, no .part, no empty folder left behind


def test_fetch_reports_an_unreachable_url(tmp_path: Path, upstream: Path, register: RegisterFn) -> None:
    register(SourceFile("a.txt", "0" * 64, 3, (upstream / "gone.txt").as_uri()))
    out = io.StringIO()
    with pytest.raises(DataError):
        fetch_sources(["fake_src"], tmp_path / "data", out=out)
    assert "failed: cannot download file://" in out.getvalue()


def test_fetch_extracts_archive_members(tmp_path: Path, upstream: Path, register: RegisterFn) -> None:
    content = b"from the archive\n"
    with zipfile.ZipFile(upstream / "bundle.zip", "w") as zf:
        zf.writestr("inner/a.txt", content)
    with tarfile.open(upstream / "pkg.tgz", "w:gz") as tf:
        info = tarfile.TarInfo("package/b.txt")
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    register(
        SourceFile("a.txt", _sha(content), len(content), (upstream / "bundle.zip").as_uri() + "#inner/a.txt"),
        SourceFile("b.txt", _sha(content), len(content), (upstream / "pkg.tgz").as_uri() + "#package/b.txt"),
    )
    results = fetch_sources(["fake_src"], tmp_path / "data", out=io.StringIO())
    assert results == {"fake_src": "fetched 2 files"}
    assert (tmp_path / "data" / "fake_src" / "b.txt").read_bytes() == content


def test_fetch_rebuilds_a_merge_conflicted_upstream(
    tmp_path: Path, upstream: Path, register: RegisterFn
) -> None:
    clean = b"id,question\n0,How?\n1,Why?\n"
    (upstream / "q.csv").write_bytes(b"<<<<<<< HEAD\n" + clean + b"=======\n" + clean + b">>>>>>> branch\n")
    url = (upstream / "q.csv").as_uri()
    f = SourceFile("a.txt", _sha(clean), len(clean), url, derived=True, note="merge", build="merge-ours")
    register(f)
    assert fetch_sources(["fake_src"], tmp_path / "data", out=io.StringIO()) == {"fake_src": "fetched 1 file"}
    assert (tmp_path / "data" / "fake_src" / "a.txt").read_bytes() == clean


def test_fetch_explains_derived_files_it_cannot_build(
    tmp_path: Path, upstream: Path, register: RegisterFn
) -> None:
    meta = b"file_id,label\n1_1,hate\n"
    (upstream / "meta.csv").write_bytes(meta)
    register(
        SourceFile("meta.csv", _sha(meta), len(meta), (upstream / "meta.csv").as_uri()),
        SourceFile(
            "sentences.csv", "0" * 64, 10, "https://github.com/x/y/tree/0/all_files", derived=True,
            note="one row per all_files/*.txt sentence",
        ),
    )
    out = io.StringIO()
    with pytest.raises(DataError):
        fetch_sources(["fake_src"], tmp_path / "data", out=out)
    line = out.getvalue()
    assert "failed: fetched 1 of 2 files; sentences.csv is derived, not downloadable as-is" in line
    assert "(one row per all_files/*.txt sentence)" in line
    assert (tmp_path / "data" / "fake_src" / "meta.csv").read_bytes() == meta  # the rest is still fetched
    assert not (tmp_path / "data" / "fake_src" / "sentences.csv").exists()


def test_registry_derived_files_explain_how_they_are_built() -> None:
    for src in S.REGISTRY.values():
        for f in src.files:
            if f.derived:
                assert f.build or len(f.note) > 40, f"{src.name}/{f.path}"


def test_fetch_unknown_source_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown source 'nope'; known sources: advbench"):
        fetch_sources(["nope"], tmp_path)


# ------------------------------------------------------------------------------------------------- stats
@pytest.fixture(scope="module")
def stats(data_dir: Path) -> list:
    return compute_stats(data_dir)


def test_stats_list_every_source_with_a_licence(stats: list) -> None:
    by_source: dict[str, list] = {}
    for row in stats:
        by_source.setdefault(row.source, []).append(row)
    assert list(by_source) == list(S.REGISTRY)
    for name, rows in by_source.items():
        assert [r.head for r in rows] == ["toxicity", "violence", "illegal_advice"]
        assert all(r.licence == S.REGISTRY[name].licence and r.licence for r in rows)
        assert all(r.commercial_use == S.REGISTRY[name].commercial_use for r in rows)
        assert len({r.total for r in rows}) == 1  # every head counts every example
    gab = {r.head: r for r in by_source["gab_hate_corpus"]}
    assert (gab["violence"].positives, gab["violence"].unknown) == (155, 0)
    assert by_source["lexicon_ldnoobw_en"][0].total == 0  # listed, with its licence, but no examples


def test_stats_formats(stats: list) -> None:
    table = format_stats(stats, "table").splitlines()
    assert len(table) == 2 + len(S.REGISTRY)  # header, rule, one line per source
    assert table[0].split()[:2] == ["source", "examples"]
    gab = next(line for line in table if line.startswith("gab_hate_corpus "))
    assert "3377/24169/0" in gab and "155/27391/0" in gab and "CC BY 4.0" in gab and gab.endswith("yes")
    assert next(line for line in table if line.startswith("ethos ")).endswith("no")
    rows = json.loads(format_stats(stats, "json"))
    assert len(rows) == 3 * len(S.REGISTRY) and rows[0].keys() >= {"source", "head", "positives", "licence"}
    md = format_stats(stats, "markdown").splitlines()
    assert md[0].startswith("| source | examples |") and len(md) == 2 + len(S.REGISTRY)
    with pytest.raises(InputError):
        format_stats(stats, "yaml")


def test_stats_for_named_sources_and_user_heads(tmp_path: Path, data_dir: Path) -> None:
    rows = compute_stats(data_dir, ["catqa"])
    assert {r.source for r in rows} == {"catqa"}
    # a user source's extra head gets its own column
    folder = tmp_path / "d" / "mine"
    folder.mkdir(parents=True)
    (folder / "x.csv").write_text("text,y\na,1\nb,0\n", encoding="utf-8")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "- {name: mine, licence: MIT, commercial_use: true, files: [x.csv], format: csv, text_field: text,"
        " labels: {self_harm: {field: y, positive: [1], negative: [0]}}}\n",
        encoding="utf-8",
    )
    rows = compute_stats(tmp_path / "d", ["mine"], user_file=cfg)
    assert {r.head: (r.positives, r.negatives, r.unknown) for r in rows}["self_harm"] == (1, 1, 0)
    assert "self_harm pos/neg/unk" in format_stats(rows, "table")


def test_short_licence() -> None:
    assert short_licence("CC BY 4.0 (data, README); LICENSE.md is Apache-2.0") == "CC BY 4.0"
    assert short_licence("GPL-3.0") == "GPL-3.0"


def test_registry_markdown_names_every_source() -> None:
    md = registry_markdown()
    for name in S.REGISTRY:
        assert f"`{name}`" in md
    assert "**no**" in md  # non-commercial sources stand out
    assert "pos/neg/unk" not in md.splitlines()[0]  # counts only when a data dir is given (see the docs test)


def test_docs_table_is_in_sync_with_the_registry(data_dir: Path) -> None:
    doc = (REPO / "docs" / "data.md").read_text(encoding="utf-8")
    block = doc.split("<!-- registry:start -->\n", 1)[1].split("\n<!-- registry:end -->", 1)[0]
    assert block == registry_markdown(data_dir), "docs/data.md is stale: regenerate it (see the docs)"
