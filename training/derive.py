"""Builders for derived source files: `build: NAME` in a registry file names one of these.

A derived file is not published upstream as-is; it is made from upstream files at the pinned commit. A
builder turns those upstream files into the derived file's exact bytes, so `harmscan data fetch` can rebuild
it and check it against the pinned sha256 like any download (a builder that drifted is caught there, not in
training). Each builder receives `{path: bytes}`: for a plain URL one entry named after the file, for an
archive (.zip, .tar.gz, .tgz, .tar) every member under the URL's `#folder/` (all members without one), named
by its path in the repository (a GitHub archive's single top-level folder, `repo-<commit>/`, is dropped).

Builders are pure functions of their inputs: no clock, no locale, no hash-ordered sets in the output.
"""

from __future__ import annotations

import csv
import io
import pickle
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePosixPath

from harmscan.errors import DataError

Inputs = Mapping[str, bytes]
Builder = Callable[[Inputs], bytes]


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    # The pinned files were written by Python's csv module with its defaults: minimal quoting, "\r\n" rows.
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _only(inputs: Inputs, name: str) -> bytes:
    if len(inputs) != 1:
        raise DataError(f"build {name} needs exactly one upstream file, got {len(inputs)}")
    return next(iter(inputs.values()))


def _text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"upstream {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


# ------------------------------------------------------------------------------------------------ builders
def merge_ours(inputs: Inputs) -> bytes:
    """Resolve git merge-conflict blocks by keeping the first side (the copies here have two equal sides)."""
    out: list[bytes] = []
    side = ""
    for line in _only(inputs, "merge-ours").splitlines(keepends=True):
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


_TOXIGEN_FILE = re.compile(r"(hate|neutral)_(.+?)(?:_sentences)?\.txt")


def toxigen_demonstrations(inputs: Inputs) -> bytes:
    """demonstrations/<category>/<hate|neutral>_<group>[_sentences].txt -> one CSV row per non-empty line.

    Files in path order, lines stripped; the label and group come from the file name (the labels are by
    construction, not annotation). A (text, label, group) already seen is dropped, so the religion folder's
    two copies of the hateful Muslim sentences count once.
    """
    rows: list[tuple[str, str, str, str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for path in sorted(inputs):
        p = PurePosixPath(path)
        m = _TOXIGEN_FILE.fullmatch(p.name)
        if p.parts[0] != "demonstrations" or len(p.parts) != 3 or m is None:
            continue  # README and the like
        label, group = m.group(1), m.group(2)
        for line in _text(inputs[path], path).splitlines():
            text = line.strip()
            if text and (text, label, group) not in seen:
                seen.add((text, label, group))
                rows.append((text, label, group, p.parts[1], path))
    if not rows:
        raise DataError("build toxigen-demonstrations found no demonstrations/<category>/*.txt sentences")
    return _csv_bytes(("text", "label", "target_group", "category_dir", "source_file"), rows)


def stormfront_sentences(inputs: Inputs) -> bytes:
    """annotations_metadata.csv joined with all_files/<file_id>.txt: one row per annotated sentence.

    Rows in the metadata's order with its five columns as written, plus `text`: the sentence file's content
    stripped of outer whitespace. A metadata row whose sentence file is missing is an error (a partial
    archive), not a silently shorter file.
    """
    if "annotations_metadata.csv" not in inputs:
        raise DataError("build stormfront-sentences needs annotations_metadata.csv from the upstream archive")
    meta = list(csv.reader(io.StringIO(_text(inputs["annotations_metadata.csv"], "annotations_metadata.csv"))))
    if not meta or meta[0][:1] != ["file_id"]:
        raise DataError("upstream annotations_metadata.csv has no file_id header")
    rows: list[list[str]] = []
    for record in meta[1:]:
        path = f"all_files/{record[0]}.txt"
        if path not in inputs:
            raise DataError(f"build stormfront-sentences: the upstream archive has no {path}")
        rows.append([*record, _text(inputs[path], path).strip()])
    return _csv_bytes([*meta[0], "text"], rows)


class _NoGlobals(pickle.Unpickler):
    """Unpickles plain data only: a pickle that names any class or function is refused, never run."""

    def find_class(self, module: str, name: str) -> object:
        raise DataError(f"upstream pickle refers to {module}.{name}: refused (only plain data is read)")


def staqc_sql_titles(inputs: Inputs) -> bytes:
    """The StaQC Python 2 pickle {question_id: title} -> question_id,title; titles stripped, sorted by id."""
    try:
        data = _NoGlobals(io.BytesIO(_only(inputs, "staqc-sql-titles")), encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"upstream StaQC pickle is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"upstream StaQC pickle holds a {type(data).__name__}, expected a dict")
    return _csv_bytes(("question_id", "title"), ((qid, str(data[qid]).strip()) for qid in sorted(data)))


BUILDERS: dict[str, Builder] = {
    "merge-ours": merge_ours,
    "toxigen-demonstrations": toxigen_demonstrations,
    "stormfront-sentences": stormfront_sentences,
    "staqc-sql-titles": staqc_sql_titles,
}
