"""The data registry: one declarative entry per labelled source in the data directory.

Each source is one YAML file, `training/registry/<name>.yaml`: its origin (repository + commit), licence,
the files it needs (sha256 and size, so a truncated or edited copy is caught before training), the heads it
labels and how rows become `Example`s: a reader named by `reader:` (code in `harmscan.training.readers`) or
the generic table reader (`format`, `text_field`, `labels`). Labels are per head: 1, 0 or None (unknown).
Unknown is masked in the loss and in every metric, so a reader writes None whenever the source says nothing
about a head: never a guessed 0.

Texts stay raw (normalisation happens later, with the same function inference uses). Readers only undo
the file format's own escaping (HTML entities in tweets, literal "\\u2019" escapes in MLMA, WikiText's
tokenisation), because the model never sees that escaping at inference.

This module holds the data model, the one entry parser (`parse_source_entry`, for packaged and user
sources alike), verification and `iter_examples`. User sources are added the same way, without touching the
package: see `load_user_sources` (a YAML list, or a folder of `<name>.yaml` files) and `all_sources`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harmscan.errors import DataError
from harmscan.labels import DEFAULT_LABELS
from harmscan.training.readers.base import (
    Example,
    FileError,
    Label,
    Reader,
    check,
    json_lines,
    lines,
    read_json,
    table,
)
from harmscan.training.readers.benign import lexicon_terms as lexicon_terms  # re-exported for callers

# The heads the packaged readers label: the built-in taxonomy's (harmscan/labels.yaml).
HEADS: tuple[str, ...] = DEFAULT_LABELS
USER_SOURCES_ENV = "HARMSCAN_SOURCES"
KINDS = ("comments", "requests", "benign", "lexicon")


# --------------------------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class SourceFile:
    """One file of a source. `path` is relative to the source folder (or absolute, for user sources).

    `url` is the raw file at the pinned commit; a `#member` suffix names a file inside a .zip/.tgz archive.
    Derived files (built from upstream files, not downloadable as-is) have `derived=True`, the upstream
    in `url`, the recipe in `note` and, when `harmscan data fetch` can rebuild them, a builder in `build`.
    `sha256=""` / `size=-1` mean "not pinned" (user sources only): the file must exist, nothing more.
    """

    path: str
    sha256: str
    size: int
    url: str
    derived: bool = False
    note: str = ""
    build: str = ""


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    origin: str  # repository URL
    commit: str
    licence: str
    commercial_use: bool
    files: tuple[SourceFile, ...]
    heads: tuple[str, ...]  # heads this source labels at all
    mapping: str  # one paragraph, shown in docs and stats
    reader: Reader
    kind: str  # comments | requests | benign | lexicon (a lexicon yields no training examples)
    notes: str = ""
    rows: int | None = None  # examples the reader yields from the pinned files; checked after reading
    eval_only: bool = False  # never trained on (upstream terms, or kept for evaluation): `external:` only


# ============================================================================ verification and reading
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so repeated verification in one process is free."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def source_folder(source: Source, data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / source.name


def file_problem(
    source: Source, f: SourceFile, data_dir: str | os.PathLike[str], check_hash: bool = True
) -> str | None:
    """Why one file of `source` is not usable as pinned (missing, size or sha256 mismatch), else None."""
    path = source_folder(source, data_dir) / f.path
    if not path.is_file():
        return f"{path} is missing"
    size = path.stat().st_size
    if f.size >= 0 and size != f.size:
        return f"{path} has {size} bytes, expected {f.size} (truncated or modified)"
    if check_hash and f.sha256 and file_sha256(path) != f.sha256:
        return f"{path} does not match its sha256 (corrupt or modified)"
    return None


def verify_source(source: Source, data_dir: str | os.PathLike[str], check_hash: bool = True) -> Path:
    """Check that every pinned file is present and intact; return the source folder. One-line DataError."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"data directory {data_dir} does not exist: run `harmscan data fetch` or pass --data-dir"
        )
    folder = source_folder(source, data_dir)
    if not folder.is_dir() and not all(Path(f.path).is_absolute() for f in source.files):
        raise DataError(
            f"source {source.name}: folder {folder} is missing: run `harmscan data fetch {source.name}`"
        )
    problems = [p for f in source.files if (p := file_problem(source, f, data_dir, check_hash))]
    if problems:
        more = f" ({len(problems) - 1} more file(s) affected)" if len(problems) > 1 else ""
        missing = problems[0].endswith("is missing")
        fix = f"harmscan data fetch {source.name}" + ("" if missing else " --force")
        raise DataError(f"source {source.name}: {problems[0]}{more}: run `{fix}`")
    return folder


def get_source(name: str, user_file: str | os.PathLike[str] | None = None) -> Source:
    sources = all_sources(user_file)
    try:
        return sources[name]
    except KeyError:
        raise DataError(f"unknown source {name!r}; known sources: {', '.join(sorted(sources))}") from None


def iter_examples(
    source: Source | str, data_dir: str | os.PathLike[str], verify: bool = True
) -> Iterator[Example]:
    """Verify the source's files (eagerly, so errors surface at the call), then stream its examples.

    With verify=False nothing is hashed, but a truncated or corrupt file still raises a one-line DataError
    naming the file and line (the readers check structure and values), and a file cut at a row boundary is
    caught by the expected row count.
    """
    src = get_source(source) if isinstance(source, str) else source
    if verify:
        folder = verify_source(src, data_dir, check_hash=True)
    else:
        if not Path(data_dir).is_dir():
            raise DataError(
                f"data directory {data_dir} does not exist: run `harmscan data fetch` or pass --data-dir"
            )
        folder = source_folder(src, data_dir)
    return _read_checked(src, folder)


def _read_checked(source: Source, folder: Path) -> Iterator[Example]:
    n = 0
    try:
        for ex in source.reader(folder):
            n += 1
            yield ex
    except FileError as exc:
        raise DataError(exc.message(source.name)) from None
    except (KeyError, ValueError, TypeError, IndexError) as exc:  # unexpected structure in a JSON file
        raise DataError(
            f"source {source.name}: unexpected content in {folder} ({type(exc).__name__}: {exc}); the files "
            f"look corrupt: run `harmscan data fetch {source.name} --force`"
        ) from None
    if source.rows is not None and n != source.rows:
        raise DataError(
            f"source {source.name}: read {n} examples from {folder}, expected {source.rows}: a file is "
            f"truncated or was edited: run `harmscan data fetch {source.name} --force`"
        )


# ======================================================================== source entries (YAML)
_FORMATS = {"csv": ",", "tsv": "\t", "jsonl": "", "json": "", "lines": ""}
_REQUIRED_KEYS = ("name", "licence", "commercial_use", "files")
_GENERIC_KEYS = ("format", "text_field", "labels")
_KNOWN_KEYS = frozenset((
    *_REQUIRED_KEYS, *_GENERIC_KEYS, "title", "origin", "commit", "kind", "mapping", "notes", "rows", "reader",
    "heads", "eval_only",
))
_FILE_KEYS = frozenset(("path", "sha256", "size", "url", "derived", "note", "build"))

@dataclass(frozen=True)
class _HeadRule:
    """How one head is read from a user table: a constant, or a field with positive/negative values."""

    constant: Label = None
    field: str = ""
    positive: frozenset[str] = frozenset()
    negative: frozenset[str] = frozenset()

    def label(self, row: Mapping[str, Any]) -> Label:
        if not self.field:
            return self.constant
        value = _norm_value(row.get(self.field))
        if value in self.positive:
            return 1
        if value in self.negative:
            return 0
        return None  # a value listed as neither is unknown, never a guessed 0


def _norm_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower() if value is not None else ""


def _rule_values(value: Any) -> tuple[str, ...]:
    # YAML 1.1 reads an unquoted yes/no/on/off as a boolean: match every spelling a table might hold
    if value is True:
        return ("true", "yes", "on")
    if value is False:
        return ("false", "no", "off")
    return (_norm_value(value),)


def _user_rows(path: Path, fmt: str, text_field: str) -> Iterator[tuple[int | None, Mapping[str, Any]]]:
    if fmt in ("csv", "tsv"):
        yield from table(path, (text_field,), delimiter=_FORMATS[fmt])
    elif fmt == "lines":
        for i, line in enumerate(lines(path), start=1):
            yield i, {text_field: line}
    elif fmt == "jsonl":
        for i, obj in json_lines(path):
            check(isinstance(obj, dict), path, i, "expected a JSON object per line")
            yield i, obj
    else:
        data = read_json(path)
        check(isinstance(data, list), path, 1, "expected a JSON list of objects")
        for obj in data:
            check(isinstance(obj, dict), path, None, "expected a JSON list of objects")
            yield None, obj


def _user_reader(
    name: str, files: Sequence[str], fmt: str, text_field: str, rules: Mapping[str, _HeadRule]
) -> Reader:
    def read(folder: Path) -> Iterator[Example]:
        for file in files:
            path = folder / file  # an absolute `file` stays absolute
            for line, row in _user_rows(path, fmt, text_field):
                check(text_field in row, path, line, f"no field {text_field!r}")
                text = row[text_field]
                if text is None or not str(text).strip():
                    continue
                labels = {head: rule.label(row) for head, rule in rules.items()}
                yield Example(str(text), labels, name, {"file": Path(file).name})

    read.__name__ = f"read_user_{name}"
    return read


def _head_rule(spec: Any, err: Callable[[str], DataError], head: str) -> _HeadRule:
    if spec is None or (isinstance(spec, int) and spec in (0, 1)):
        return _HeadRule(constant=spec)
    if isinstance(spec, Mapping) and isinstance(spec.get("field"), str):
        pos = frozenset(x for v in spec.get("positive") or () for x in _rule_values(v))
        neg = frozenset(x for v in spec.get("negative") or () for x in _rule_values(v))
        if not pos and not neg:
            raise err(f"labels.{head} needs 'positive' and/or 'negative' values")
        if pos & neg:
            raise err(f"labels.{head}: values {sorted(pos & neg)} are both positive and negative")
        return _HeadRule(field=spec["field"], positive=pos, negative=neg)
    raise err(f"labels.{head} must be 0, 1, null or {{field, positive, negative}}, got {spec!r}")


def _source_file(f: Any, err: Callable[[str], DataError]) -> SourceFile:
    f = {"path": f} if isinstance(f, str) else f
    if not isinstance(f, Mapping) or not f.get("path"):
        raise err(f"each file needs a 'path', got {f!r}")
    unknown = set(f) - _FILE_KEYS
    if unknown:
        raise err(f"file {f['path']}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        size = int(f.get("size", -1))
    except (TypeError, ValueError):
        raise err(f"file {f['path']}: size must be a whole number of bytes") from None
    return SourceFile(
        path=str(f["path"]), sha256=str(f.get("sha256") or "").lower(), size=size, url=str(f.get("url") or ""),
        derived=bool(f.get("derived", False)), note=str(f.get("note") or ""), build=str(f.get("build") or ""),
    )


def parse_source_entry(entry: Any, err: Callable[[str], DataError], default_notes: str = "") -> Source:
    """One source from its YAML mapping: the same parser for the packaged registry and for user sources.

    Either a named reader (`reader: NAME`, code in harmscan.training.readers, with `heads:`) or the generic
    table reader (`format`, `text_field`, `labels`), which needs no code.
    """
    if not isinstance(entry, Mapping):
        raise err("must be a mapping with name, licence, commercial_use, files and a reader or format")
    name = entry.get("name", "")
    missing = [k for k in _REQUIRED_KEYS if k not in entry]
    named = entry.get("reader")
    if not named:
        missing += [k for k in _GENERIC_KEYS if k not in entry]
    if missing:
        raise err(f"missing key(s) {', '.join(missing)}")
    unknown = set(entry) - _KNOWN_KEYS
    if unknown:
        raise err(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
        raise err("name must be lowercase letters, digits and underscores")
    if not isinstance(entry["commercial_use"], bool):
        raise err("commercial_use must be true or false")
    raw_files = entry["files"]
    if not isinstance(raw_files, list) or not raw_files:
        raise err("files must be a non-empty list of {path, sha256?, size?, url?}")
    files = tuple(_source_file(f, err) for f in raw_files)
    kind = str(entry.get("kind", "comments"))
    if kind not in KINDS:
        raise err(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    rows = entry.get("rows")
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise err("rows must be a whole number")
    if named:
        from harmscan.training.readers import READERS

        if named not in READERS:
            raise err(f"reader {named!r} is not a known reader ({', '.join(sorted(READERS))})")
        heads = entry.get("heads")
        if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
            raise err("a source with a named reader needs 'heads': the list of heads it labels")
        reader = READERS[named]
        mapping = str(entry.get("mapping") or "")
        head_names = tuple(heads)
    else:
        fmt = str(entry["format"]).lower()
        if fmt not in _FORMATS:
            raise err(f"format {fmt!r} is not one of {', '.join(_FORMATS)}")
        labels = entry["labels"]
        if not isinstance(labels, Mapping) or not labels:
            raise err("labels must map head names to a rule")
        rules: dict[str, _HeadRule] = {}
        for head, spec in labels.items():
            if not str(head).isidentifier():
                raise err(f"head name {head!r} must be an identifier such as 'self_harm'")
            rules[str(head)] = _head_rule(spec, err, str(head))
        text_field = str(entry["text_field"])
        reader = _user_reader(name, [f.path for f in files], fmt, text_field, rules)
        mapping = str(entry.get("mapping") or _describe_rules(text_field, rules))
        head_names = tuple(h for h, r in rules.items() if r.field or r.constant is not None)
    return Source(
        name=name, title=str(entry.get("title", name)), origin=str(entry.get("origin", "")),
        commit=str(entry.get("commit", "")), licence=str(entry["licence"]),
        commercial_use=entry["commercial_use"], files=files, heads=head_names, mapping=mapping,
        reader=reader, kind=kind, notes=str(entry.get("notes") or default_notes), rows=rows,
        eval_only=bool(entry.get("eval_only", False)),
    )


def _user_error(path: Path, index: int, name: str, detail: str) -> DataError:
    who = f"entry {index + 1}" + (f" ({name})" if name else "")
    return DataError(f"user sources file {path}: {who}: {detail}")


def _user_source(entry: Any, path: Path, index: int) -> Source:
    name = entry.get("name", "") if isinstance(entry, Mapping) else ""

    def err(detail: str) -> DataError:
        return _user_error(path, index, str(name), detail)

    return parse_source_entry(entry, err, default_notes=f"user source from {path}")


def _describe_rules(text_field: str, rules: Mapping[str, _HeadRule]) -> str:
    parts = []
    for head, r in rules.items():
        if r.field:
            pos, neg = sorted(r.positive), sorted(r.negative)
            parts.append(f"{head} = 1 if {r.field} in {pos}, 0 if in {neg}, else unknown")
        else:
            parts.append(f"{head} = {'unknown' if r.constant is None else r.constant}")
    return f"text from '{text_field}'; " + "; ".join(parts) + "."


def load_source_file(path: str | os.PathLike[str], default_notes: str = "") -> Source:
    """One source from one YAML file (a mapping) named after it: how every packaged source is declared."""
    path = Path(path)

    def err(detail: str) -> DataError:
        return DataError(f"source file {path}: {detail}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise err(f"cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise err(f"is not valid YAML: {' '.join(str(exc).split())}") from None
    src = parse_source_entry(data, err, default_notes)
    if src.name != path.stem:
        raise err(f"declares name {src.name!r} but the file is named {path.name}: they must match")
    return src


def packaged_sources() -> dict[str, Source]:
    """Every source declared in the packaged registry folder (training/registry/*.yaml), by kind, then name."""
    from importlib import resources

    folder = resources.files("harmscan.training").joinpath("registry")
    found: list[Source] = []
    if folder.is_dir():
        found = [load_source_file(Path(str(p))) for p in folder.iterdir() if p.name.endswith(".yaml")]
    # grouped as the docs table and `harmscan data stats` list them: comments, requests, benign, lexicon
    found.sort(key=lambda s: (KINDS.index(s.kind), s.name))
    return {s.name: s for s in found}


REGISTRY: dict[str, Source] = packaged_sources()


def _load_source_folder(folder: Path) -> dict[str, Source]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".yaml" and p.is_file())
    if not files:
        raise DataError(
            f"user sources folder {folder} holds no <name>.yaml file (check ${USER_SOURCES_ENV})"
        )
    out: dict[str, Source] = {}
    for file in files:
        src = load_source_file(file, default_notes=f"user source from {file}")
        if src.name in REGISTRY:
            raise DataError(f"source file {file}: name {src.name!r} is already taken: pick another one")
        out[src.name] = src
    return out


def load_user_sources(path: str | os.PathLike[str]) -> dict[str, Source]:
    """User sources (no code change): a folder of `<name>.yaml` files, one source each, or a YAML list.

    Each source, a file's mapping or an entry of the list: name, licence, commercial_use,
    files: [{path, sha256?, size?, url?}], format: csv|tsv|jsonl|json|lines, text_field,
    labels: {head: 0 | 1 | null | {field, positive: [...], negative: [...]}}; optional title, origin, commit,
    kind, mapping, rows. File paths are relative to DATA_DIR/NAME, or absolute.
    """
    path = Path(path)
    if path.is_dir():
        return _load_source_folder(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"user sources file {path} does not exist (check ${USER_SOURCES_ENV})") from None
    except yaml.YAMLError as exc:
        raise DataError(f"user sources file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if isinstance(data, Mapping) and "sources" in data:
        data = data["sources"]
    if not isinstance(data, list):
        raise DataError(f"user sources file {path} must hold a YAML list of sources (or a 'sources:' list)")
    out: dict[str, Source] = {}
    for i, entry in enumerate(data):
        src = _user_source(entry, path, i)
        if src.name in REGISTRY or src.name in out:
            raise _user_error(path, i, src.name, "the name is already taken: pick another one")
        out[src.name] = src
    return out


def all_sources(user_file: str | os.PathLike[str] | None = None) -> dict[str, Source]:
    """The packaged registry plus user sources from `user_file`, else from $HARMSCAN_SOURCES (a YAML list
    file or a folder of <name>.yaml files)."""
    sources = dict(REGISTRY)
    user_file = user_file or os.environ.get(USER_SOURCES_ENV) or None
    if user_file:
        sources.update(load_user_sources(user_file))
    return sources
