"""`harmscan data fetch`: download missing or corrupt source files from their pinned URLs.

A file is downloaded only when it is missing or fails its size/sha256 check (or with force=True), to a
temporary file beside its target, checked against the pinned sha256 and only then renamed into place, so
an interrupted or corrupted download never leaves a half file where a good one is expected. A data dir
that already holds every file is not written to at all. Derived files are rebuilt from their upstream
(one file, or an archive's members) by a builder named in the registry (training/derive.py) and checked
against the same pinned sha256. A mirror of the origins ($HARMSCAN_DATA_MIRROR) serves `https://HOST/PATH`
as `<mirror>/HOST/PATH`.
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tqdm import tqdm

from harmscan.errors import DataError
from harmscan.training.derive import BUILDERS
from harmscan.training.sources import Source, SourceFile, all_sources, file_problem, file_sha256, get_source

TIMEOUT_S = 60
CHUNK = 1 << 16


MIRROR_ENV = "HARMSCAN_DATA_MIRROR"
_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


def mirrored(url: str, mirror: str | None) -> str:
    """`https://host/path` served from a mirror laid out as `<mirror>/host/path` (file:// URLs stay as-is).

    A mirror holds byte copies of the origins, so every sha256 check still applies to what it serves.
    """
    if not mirror or not url.startswith(("https://", "http://")):
        return url
    return mirror.rstrip("/") + "/" + url.split("://", 1)[1]


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
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"{url} is not a readable archive: {exc}") from None


def _archive_members(archive: Path, prefix: str, url: str) -> dict[str, bytes]:
    """Every file of a downloaded archive under `prefix` (all when empty), keyed by its repository path.

    A GitHub archive wraps the repository in one `<repo>-<commit>/` folder: it is dropped from the keys.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                raw = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        else:
            with tarfile.open(archive) as tf:
                raw = {}
                for m in tf.getmembers():
                    if m.isfile() and (fh := tf.extractfile(m)) is not None:
                        raw[m.name] = fh.read()
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"{url} is not a readable archive: {exc}") from None
    tops = {name.split("/", 1)[0] for name in raw}
    if len(tops) == 1 and all("/" in name for name in raw):
        raw = {name.split("/", 1)[1]: data for name, data in raw.items()}
    members = {name: data for name, data in raw.items() if name.startswith(prefix)}
    if not members:
        raise DataError(f"{url} has no files under {prefix!r}")
    return members


def _build(f: SourceFile, raw: Path, url: str, member: str) -> bytes:
    """Run the builder `f.build` on the downloaded upstream (one file, or an archive's files)."""
    if url.endswith(_ARCHIVE_SUFFIXES):
        inputs = _archive_members(raw, member, url)
    else:
        inputs = {url.rsplit("/", 1)[-1]: raw.read_bytes()}
    return BUILDERS[f.build](inputs)


def _fetch_bytes(f: SourceFile, out: IO[bytes], mirror: str | None = None) -> None:
    """Write the pinned content of `f` to `out`: a plain download, an archive member or a rebuilt file."""
    url, _, member = f.url.partition("#")
    if f.derived and f.build not in BUILDERS:
        raise DataError(
            f"{f.path} is derived, not downloadable as-is ({f.note or 'see the source notes'}); it is built "
            f"from {url}: rebuild it that way or copy it from another data dir"
        )
    source_url = mirrored(url, mirror)
    if not member and not f.derived:
        _download(source_url, out, f.path)
        return
    with tempfile.TemporaryDirectory(prefix="harmscan-fetch-") as tmp:
        raw = Path(tmp) / "download"
        with raw.open("wb") as fh:
            _download(source_url, fh, f.path)
        out.write(_build(f, raw, url, member) if f.derived else _archive_member(raw, member, url))


def fetch_file(
    source: Source, f: SourceFile, data_dir: str | os.PathLike[str], mirror: str | None = None
) -> Path:
    """Download one file to a temporary name, check it, then rename it into place. DataError on failure."""
    if not f.url:
        raise DataError(f"{f.path} has no download URL: put it in {Path(data_dir) / source.name} by hand")
    target = Path(data_dir) / source.name / f.path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch_bytes(f, out, mirror)
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


def fetch_source(
    source: Source, data_dir: str | os.PathLike[str], force: bool = False, mirror: str | None = None
) -> str:
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
            fetch_file(source, f, data_dir, mirror)
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
    mirror: str | None = None,
) -> dict[str, str]:
    """Fetch the named sources (default: all), print one summary line per source, return the statuses.

    `mirror` (default: $HARMSCAN_DATA_MIRROR) serves every origin URL from `<mirror>/<host>/<path>`.

    Raises DataError after the summary when any source failed, so the CLI exits non-zero.
    """
    out = out or sys.stdout
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    sources = (
        [get_source(n, user_file) for n in names] if names else list(all_sources(user_file).values())
    )
    width = max(len(s.name) for s in sources) if sources else 0
    results: dict[str, str] = {}
    for src in sources:
        results[src.name] = status = fetch_source(src, data_dir, force=force, mirror=mirror)
        print(f"{src.name:<{width}}  {status}", file=out, flush=True)
    failed = [n for n, s in results.items() if s.startswith("failed")]
    if failed:
        raise DataError(f"{len(failed)} source(s) not fetched: {', '.join(failed)} (reasons above)")
    return results
