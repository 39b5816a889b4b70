"""What every source reader shares: the `Example` it yields, file reading that names file and line on every
structural problem, label helpers, and the few text-format decoders (HTML entities in tweets, literal
"\\u2019" escapes, WikiText tokenisation) that undo a file format's own escaping.

Readers live in this package's modules and are registered by name (`register`), so a source's YAML file in
`training/registry/` names the code that reads it: `reader: gab_hate_corpus`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harmscan.errors import DataError

Label = int | None

@dataclass(frozen=True)
class Example:
    text: str  # raw text; normalised later by harmscan.text.normalize_text
    labels: dict[str, int | None]  # head -> 1, 0 or None (unknown)
    source: str
    meta: dict[str, str] = field(default_factory=dict)  # e.g. {"category": ...} for audits


Reader = Callable[[Path], Iterator[Example]]

# ------------------------------------------------------------------------------------------ file errors
class FileError(DataError):
    """A problem in one file, located by line; `iter_examples` adds the source name and the fix."""

    def __init__(self, path: Path, line: int | None, detail: str, missing: bool = False) -> None:
        self.path, self.line, self.detail, self.missing = path, line, detail, missing
        super().__init__(f"{self.where}: {detail}")

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def message(self, source: str) -> str:
        if self.missing:
            return f"source {source}: {self.path} is missing: run `harmscan data fetch {source}`"
        return (
            f"source {source}: {self.where}: {self.detail}; the file looks truncated or corrupt: "
            f"run `harmscan data fetch {source} --force`"
        )


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileError(path, None, "missing", missing=True) from None
    try:
        # utf-8-sig: a BOM would otherwise end up in the first header name or the first text
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileError(path, line, f"not valid UTF-8 at byte {exc.start}") from None


def csv_reader(path: Path, delimiter: str = ",") -> Any:
    """A csv reader over the whole file; strict: a quote left open by a truncation raises instead of
    swallowing the rest of the file."""
    return csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter, strict=True)


def csv_rows(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    """The remaining non-empty rows of `csv_reader(path)` as (line, fields); a malformed row names its line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileError(path, reader.line_num, f"malformed row: {exc}") from None
        if row:
            yield reader.line_num, row


def table(path: Path, columns: Sequence[str], delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV/TSV file as (line, {column: value}); every structural problem names file and line."""
    reader = csv_reader(path, delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise FileError(path, 1, "the file is empty") from None
    except csv.Error as exc:
        raise FileError(path, 1, f"malformed header: {exc}") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise FileError(path, 1, f"missing column(s) {', '.join(missing)} (header: {', '.join(header)})")
    for line, row in csv_rows(reader, path):
        if len(row) != len(header):
            raise FileError(path, line, f"{len(row)} fields, expected {len(header)}")
        yield line, dict(zip(header, row, strict=True))


def lines(path: Path) -> list[str]:
    """Lines split on "\\n" only: str.splitlines would also split on U+2028 etc. inside a tweet."""
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """The values of a JSON Lines file as (line, value), blank lines skipped; bad JSON names its line."""
    for i, line in enumerate(lines(path), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileError(path, i, f"invalid JSON: {exc.msg}") from None
        yield i, value


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise FileError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None


def check(ok: bool, path: Path, line: int | None, detail: str) -> None:
    if not ok:
        raise FileError(path, line, detail)


def choice(value: str, allowed: Iterable[str], path: Path, line: int, column: str) -> str:
    value = value.strip()
    allowed = tuple(allowed)
    check(value in allowed, path, line, f"{column}={value!r}, expected one of {', '.join(allowed)}")
    return value


def fraction(value: str, path: Path, line: int, column: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise FileError(path, line, f"{column}={value!r} is not a number") from None
    check(0.0 <= x <= 1.0, path, line, f"{column}={value!r} is outside [0, 1]")
    return x


def label_dict(toxicity: Label, violence: Label, illegal_advice: Label) -> dict[str, int | None]:
    return {"toxicity": toxicity, "violence": violence, "illegal_advice": illegal_advice}


UNKNOWN = label_dict(None, None, None)
BENIGN = label_dict(0, 0, 0)


# ------------------------------------------------------------------------------ text format decoding
def unescape_tweet(text: str) -> str:
    # Twitter's API delivered text HTML-escaped ("&amp;", "&#128514;"); users type the characters.
    return html.unescape(text)


_U_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})(?:\\u([0-9a-fA-F]{4}))?")


def decode_u_escapes(text: str) -> str:
    """MLMA stores non-ASCII as literal "\\u2019" (emoji as surrogate pairs) and newlines as "\\n"."""

    def one(code: int) -> str:
        return "" if 0xD800 <= code < 0xE000 else chr(code)  # a lone surrogate (cut-off tweet) is dropped

    def sub(m: re.Match[str]) -> str:
        hi = int(m.group(1), 16)
        if m.group(2) is None:
            return one(hi)
        lo = int(m.group(2), 16)
        if 0xD800 <= hi < 0xDC00 and 0xDC00 <= lo < 0xE000:
            return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        return one(hi) + one(lo)

    return _U_ESCAPE.sub(sub, text).replace("\\n", "\n")


_WIKI_JOINERS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_SPACE_BEFORE = re.compile(r" ([.,;:!?%)\]}]|'s\b|'re\b|'ve\b|'ll\b|'d\b|'m\b|n't\b)")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detokenize_wiki(text: str) -> str:
    """Undo WikiText's tokenisation ("guest @-@ starring role , he") so it reads like real prose."""
    for token, joined in _WIKI_JOINERS:
        text = text.replace(token, joined)
    text = _SPACE_BEFORE.sub(r"\1", text)
    return _SPACE_AFTER.sub(r"\1", text).strip()


READERS: dict[str, Reader] = {}


def register(name: str) -> Callable[[Reader], Reader]:
    """Register a reader under `name` (the `reader:` value of a source's YAML file)."""

    def deco(fn: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"reader {name!r} is registered twice")
        READERS[name] = fn
        return fn

    return deco

