"""`harmscan data stats`: per source x head, how many positives, negatives and unknowns, with the licence.

Also renders the registry as the markdown table of docs/data.md (`registry_markdown`).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from harmscan.errors import InputError
from harmscan.labels import load_taxonomy
from harmscan.training.sources import Source, all_sources, get_source, iter_examples

FORMATS = ("table", "json", "markdown")


class StatRow(NamedTuple):
    source: str
    head: str
    positives: int
    negatives: int
    unknown: int
    licence: str
    commercial_use: bool

    @property
    def total(self) -> int:
        return self.positives + self.negatives + self.unknown


def _heads_for(sources: Iterable[Source]) -> list[str]:
    """The taxonomy's heads, then any extra head a (user) source labels, in first-seen order."""
    heads = list(load_taxonomy().names)
    for src in sources:
        heads += [h for h in src.heads if h not in heads]
    return heads


def compute_stats(
    data_dir: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    *,
    user_file: str | os.PathLike[str] | None = None,
) -> list[StatRow]:
    """One row per (source, head). Files are verified first, so the counts describe the pinned data."""
    sources = [get_source(n, user_file) for n in names] if names else list(all_sources(user_file).values())
    heads = _heads_for(sources)
    rows: list[StatRow] = []
    for src in sources:
        counts: dict[str, Counter[int | None]] = {h: Counter() for h in heads}
        for ex in iter_examples(src, data_dir):
            for h in heads:
                counts[h][ex.labels.get(h)] += 1
        rows += [
            StatRow(src.name, h, counts[h][1], counts[h][0], counts[h][None], src.licence, src.commercial_use)
            for h in heads
        ]
    return rows


def short_licence(licence: str) -> str:
    """The licence name without its qualifications: "CC BY 4.0 (data, README); ..." -> "CC BY 4.0"."""
    return re.split(r" \(|;|,", licence, maxsplit=1)[0].strip()


def _by_source(rows: Iterable[StatRow]) -> dict[str, list[StatRow]]:
    grouped: dict[str, list[StatRow]] = {}
    for r in rows:
        grouped.setdefault(r.source, []).append(r)
    return grouped


def _pnu(row: StatRow) -> str:
    return f"{row.positives}/{row.negatives}/{row.unknown}"


def _cells(rows: Sequence[StatRow]) -> tuple[list[str], list[list[str]]]:
    """Header and body shared by the table and markdown formats: one line per source."""
    grouped = _by_source(rows)
    heads = list(dict.fromkeys(r.head for r in rows))
    header = ["source", "examples", *(f"{h} pos/neg/unk" for h in heads), "licence", "commercial"]
    body = []
    for name, rs in grouped.items():
        per_head = {r.head: r for r in rs}
        first = rs[0]
        body.append([
            name,
            str(first.total),
            *(_pnu(per_head[h]) if h in per_head else "-" for h in heads),
            short_licence(first.licence),
            "yes" if first.commercial_use else "no",
        ])
    return header, body


def _aligned(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    # numbers read best right-aligned; names and licences left-aligned
    right = [1 <= i < len(header) - 2 for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True))
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(b) for b in body)])


def _markdown(header: list[str], body: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def format_stats(rows: Sequence[StatRow], fmt: str = "table") -> str:
    """table: aligned text, one line per source; json: every row with the full licence; markdown: a table."""
    if fmt == "json":
        return json.dumps([{**r._asdict()} for r in rows], indent=2, ensure_ascii=False)
    if fmt not in FORMATS:
        raise InputError(f"unknown stats format {fmt!r}: use one of {', '.join(FORMATS)}")
    header, body = _cells(rows)
    return _aligned(header, body) if fmt == "table" else _markdown(header, body)


def registry_markdown(data_dir: str | os.PathLike[str] | None = None) -> str:
    """The sources table of docs/data.md; with a data dir, per-head pos/neg/unk counts read from the files."""
    sources = list(all_sources().values())
    counts = _by_source(compute_stats(data_dir)) if data_dir is not None else {}
    heads = list(load_taxonomy().names)
    header = ["source", "kind", "rows", "heads", "mapping", "licence", "commercial use"]
    if counts:
        header[4:4] = [f"{h} pos/neg/unk" for h in heads]
    body = []
    for src in sources:
        row = [
            f"`{src.name}`", src.kind, "-" if src.rows is None else f"{src.rows:,}",
            ", ".join(src.heads) or "none", src.mapping, src.licence,
            "yes" if src.commercial_use else "**no**",
        ]
        if counts:
            per_head = {r.head: r for r in counts[src.name]}
            row[4:4] = [_pnu(per_head[h]) for h in heads]
        body.append(row)
    return _markdown(header, body)
