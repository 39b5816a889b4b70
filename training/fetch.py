"""`harmscan data fetch`: download missing or corrupt source files from their pinned URLs.

A file is downloaded only when it is missing or fails its size/sha256 check (or with force=True), to a
temporary file beside its target, checked against the pinned sha256 and only then renamed into place, so
an interrupted or corrupted download never leaves a half file where a good one is expected. A data dir
that already holds every file is not written to at all.
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from tqdm import tqdm

from harmscan.errors import DataError
from harmscan.training.sources import Source, SourceFile, all_sources, file_problem, file_sha256, get_source

TIMEOUT_S = 60
CHUNK = 1 << 16


def _merge_ours(data: bytes) -> bytes:
    """Resolve git merge-conflict blocks by keeping the first side (the copies here have two equal sides)."""
    out: list[bytes] = []
    side = ""
    for line in data.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if bare.startswith(b"<<<<<<<"):
            side = "ours"
        elif bare == b"=======" and side == "ours":
            side = "theirs"
        elif bare.startswith(b">>>>>>>") and side == "theirs":
            side = ""
        elif side != "theirs":
            out.append(line)
    return b"".join(out)


# Derived files that fetch can rebuild from their upstream (SourceFile.build names one of these).
BUILDERS: dict[str, Callable[[bytes], bytes]] = {"merge-ours": _merge_ours}


def _download(url: str, dest: IO[bytes], label: str) -> None:
    """Stream `url` into `dest` with a progress bar (file:// URLs work too, which tests use)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            total = resp.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True, desc=label, leave=False,
                disable=None,  # no bar when stderr is not a terminal (CI logs)
            ) as bar:
                while block := resp.read(CHUNK):
                    dest.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"cannot download {url}: {reason}") from None


def _archive_member(archive: Path, member: str, url: str) -> bytes:
    """One file out of a downloaded .zip or .tgz (the `#member` part of a pinned URL)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read()
    except KeyError:
        raise DataError(f"{url} has no member {member!r}") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{url} is not a readable archive: {exc}") from None


def _fetch_bytes(f: SourceFile, out: IO[bytes]) -> None:
    """Write the pinned content of `f` to `out`: a plain download, an archive member or a rebuilt file."""
    url, _, member = f.url.partition("#")
    if f.derived and f.build not in BUILDERS:
        raise DataError(
            f"{f.path} is derived, not downloadable as-is ({f.note or 'see the source notes'}); it is built "
            f"from {url}: rebuild it that way or copy it from another data dir"
        )
    if not member and not f.derived:
        _download(url, out, f.path)
        return
    with tempfile.TemporaryDirectory(prefix="harmscan-fetch-") as tmp:
        raw = Path(tmp) / "download"
        with raw.open("wb") as fh:
            _download(url, fh, f.path)
        data = _archive_member(raw, member, url) if member else raw.read_bytes()
    out.write(BUILDERS[f.build](data) if f.derived else data)


def fetch_file(source: Source, f: SourceFile, data_dir: str | os.PathLike[str]) -> Path:
    """Download one file to a temporary name, check it, then rename it into place. DataError on failure."""
    if not f.url:
        raise DataError(f"{f.path} has no download URL: put it in {Path(data_dir) / source.name} by hand")
    target = Path(data_dir) / source.name / f.path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch_bytes(f, out)
        size = tmp.stat().st_size
        if f.size >= 0 and size != f.size:
            raise DataError(f"downloaded {f.path} has {size} bytes, expected {f.size}: not kept")
        if f.sha256 and (got := file_sha256(tmp)) != f.sha256:
            raise DataError(
                f"downloaded {f.path} has sha256 {got[:12]}..., expected {f.sha256[:12]}... (the upstream "
                f"changed or the download was corrupted): not kept"
            )
        os.replace(tmp, target)  # atomic: readers never see a half-written file
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def fetch_source(source: Source, data_dir: str | os.PathLike[str], force: bool = False) -> str:
    """Fetch what `source` lacks; return its summary status ("present", "fetched N files", "failed: ...").

    Every missing file is tried even after one fails, so a source with one derived file still gets the rest.
    """
    todo = [f for f in source.files if force or file_problem(source, f, data_dir) is not None]
    if not todo:
        return f"present ({_files(len(source.files))})"
    folder = Path(data_dir) / source.name
    created = not folder.exists()
    errors: list[str] = []
    for f in todo:
        try:
            fetch_file(source, f, data_dir)
        except DataError as exc:
            errors.append(str(exc))
        except OSError as exc:  # e.g. a read-only data dir
            errors.append(f"cannot write {folder / f.path}: {exc.strerror or exc}")
    if not errors:
        return f"fetched {_files(len(todo))}"
    if created and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()  # leave no empty folder behind a failed first fetch
    done = len(todo) - len(errors)
    prefix = f"fetched {done} of {_files(len(todo))}; " if done else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"failed: {prefix}{errors[0]}{more}"


def fetch_sources(
    names: Sequence[str] | None,
    data_dir: str | os.PathLike[str],
    force: bool = False,
    *,
    user_file: str | os.PathLike[str] | None = None,
    out: IO[str] | None = None,
) -> dict[str, str]:
    """Fetch the named sources (default: all), print one summary line per source, return the statuses.

    Raises DataError after the summary when any source failed, so the CLI exits non-zero.
    """
    out = out or sys.stdout
    sources = (
        [get_source(n, user_file) for n in names] if names else list(all_sources(user_file).values())
    )
    width = max(len(s.name) for s in sources) if sources else 0
    results: dict[str, str] = {}
    for src in sources:
        results[src.name] = status = fetch_source(src, data_dir, force=force)
        print(f"{src.name:<{width}}  {status}", file=out, flush=True)
    failed = [n for n, s in results.items() if s.startswith("failed")]
    if failed:
        raise DataError(f"{len(failed)} source(s) not fetched: {', '.join(failed)} (reasons above)")
    return results
