"""Reading the behavioural suite's YAML definitions and generating its cases (templates x slot fillers).

This package's folder (`eval/suite/`, installed as `harmscan/eval/suite/`) holds `slots.yaml` (fillers shared by every functionality) and one YAML file per group
of functionalities. A functionality:

    - name: threat_direct                 unique, snake_case
      family: direct_threat               the failure family it probes (figurative, negation, ...)
      head: violence                      the head(s) it is about (a name or a list)
      description: ...
      labels: {toxicity: null, violence: 1, illegal_advice: null}   gold per head: 1 / 0 / null = unknown
      slots: {kill: [kill, murder], when: {both: [...], train: [...], test: [...]}}
      obfuscate: [leet, spacing]          optional: each case is an obfuscated copy of its plain form...
      obfuscate_slots: [kill]             ...with the words that filled these slots disguised
      per_template: {train: 8, test: 10}  optional: cases drawn per template
      train: ["I'm going to {kill} you {when}", ...]
      test:  ["{When} I will {kill} you", {text: "...", labels: {...}}, ...]

`{slot}` is replaced by a filler, `{Slot}` by the filler with its first letter capitalised. A slot given as a
mapping has fillers for `both` splits plus split-only ones, so the test split meets fillers that training
never saw. Train and test templates are different sentence frames; only train templates may feed training.
Generation is deterministic: every random choice is seeded from (seed, functionality, split, template).

Heads are the taxonomy's (harmscan/labels.yaml): the packaged suite labels the built-in ones, and a custom
taxonomy ($HARMSCAN_LABELS) adds its own, so that a suite folder of its own may label them.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harmscan.errors import DataError
from harmscan.eval.obfuscate import METHODS, obfuscate, target_words
from harmscan.labels import default_taxonomy, load_taxonomy
from harmscan.text import dedup_key

if TYPE_CHECKING:  # pragma: no cover
    from importlib.resources.abc import Traversable

SPLITS = ("train", "test")
SLOTS_FILE = "slots.yaml"
DEFAULT_PER_TEMPLATE = {"train": 8, "test": 10}
_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Real posts are often typed in lower case and without a final full stop; the suite should be too.
LOWERCASE_RATE = 0.2
DROP_FULL_STOP_RATE = 0.3


@dataclass(frozen=True)
class Template:
    id: str
    text: str
    labels: dict[str, int | None]


@dataclass
class Functionality:
    name: str
    family: str
    heads: list[str]
    description: str
    labels: dict[str, int | None]
    templates: dict[str, list[Template]]
    slots: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    obfuscate: list[str] = field(default_factory=list)
    obfuscate_slots: list[str] = field(default_factory=list)
    per_template: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PER_TEMPLATE))
    origin: str = ""

    @property
    def polarity(self) -> str:
        return "harmful" if any(v == 1 for v in self.labels.values()) else "benign"


@dataclass(frozen=True)
class SuiteCase:
    """One suite sentence with its gold label per head (1 / 0 / None = unknown)."""

    functionality: str
    text: str
    labels: dict[str, int | None]
    split: str  # "train" | "test"
    template_id: str
    obfuscation: str | None  # "leet", "spacing", "zero_width", "homoglyph", "misspelling"; None when plain
    plain_text: str | None  # the un-obfuscated form of an obfuscated case


# -- reading ---------------------------------------------------------------------------------------------
def suite_heads() -> tuple[str, ...]:
    """The heads a suite file may label: the built-in taxonomy's, then those a custom taxonomy adds."""
    return tuple(dict.fromkeys([*default_taxonomy().names, *load_taxonomy().names]))


def suite_folder(suite_dir: str | Path | None = None) -> Traversable:
    if suite_dir is not None:
        path = Path(suite_dir)
        if not path.is_dir():
            raise DataError(f"suite folder {path} does not exist: pass a folder holding slots.yaml and *.yaml")
        return path
    return resources.files("harmscan.eval.suite")


def _load_yaml(item: Traversable, origin: str) -> Any:
    try:
        return yaml.safe_load(item.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # one line: the CLI prints errors on a single line
        raise DataError(f"suite file {origin} is not valid YAML: {detail}") from None


def _split_fillers(raw: Any, where: str) -> dict[str, list[str]]:
    """A slot as {train: [...], test: [...]}: a plain list is shared by both splits."""
    if isinstance(raw, list):
        both, only = raw, {}
    elif isinstance(raw, Mapping):
        unknown = set(raw) - {"both", "train", "test"}
        if unknown:
            raise DataError(f"{where}: slot keys must be both/train/test, got {sorted(unknown)}")
        both, only = raw.get("both") or [], {s: raw.get(s) or [] for s in SPLITS}
    else:
        raise DataError(f"{where}: a slot is a list of fillers or a mapping both/train/test -> list")
    out = {s: [str(x) for x in [*both, *only.get(s, [])]] for s in SPLITS}
    for split, values in out.items():
        if not values:
            raise DataError(f"{where}: no fillers for the {split} split; add some under 'both' or '{split}'")
    return out


def _labels(
    raw: Any, where: str, heads: Sequence[str], base: Mapping[str, int | None] | None = None
) -> dict[str, int | None]:
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: 'labels' must map head -> 1, 0 or null")
    out: dict[str, int | None] = dict(base) if base else {h: None for h in heads}
    for head, value in raw.items():
        if head not in heads:
            raise DataError(f"{where}: unknown head {head!r} in labels; heads: {', '.join(heads)}")
        if value not in (0, 1, None):
            raise DataError(f"{where}: label for {head!r} must be 1, 0 or null, got {value!r}")
        out[head] = value
    return out


def _functionality(raw: Any, origin: str, known: Sequence[str]) -> Functionality:
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise DataError(f"{origin}: each functionality needs a 'name'; got {str(raw)[:80]!r}")
    name = str(raw["name"])
    where = f"{origin}: functionality {name!r}"
    if not _NAME.match(name):
        raise DataError(f"{where}: names are snake_case (a-z, 0-9, _)")
    missing = [k for k in ("family", "head", "description", "labels", "train", "test") if k not in raw]
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}")
    labels = _labels(raw["labels"], where, known)
    heads = [raw["head"]] if isinstance(raw["head"], str) else list(raw["head"])
    for head in heads:
        if head not in known:
            raise DataError(f"{where}: unknown head {head!r}; heads: {', '.join(known)}")
    templates: dict[str, list[Template]] = {}
    for split in SPLITS:
        items = raw[split]
        if not isinstance(items, list) or not items:
            raise DataError(f"{where}: '{split}' must be a non-empty list of templates")
        templates[split] = []
        for i, item in enumerate(items):
            tid = f"{name}/{split}/{i:02d}"
            if isinstance(item, Mapping):
                if "text" not in item:
                    raise DataError(f"{where}: template {tid} is a mapping without 'text'")
                tlabels = _labels(item.get("labels", {}), f"{where} template {tid}", known, labels)
                templates[split].append(Template(tid, str(item["text"]), tlabels))
            else:
                templates[split].append(Template(tid, str(item), labels))
    methods = list(raw.get("obfuscate") or [])
    bad = set(methods) - set(METHODS)
    if bad:
        raise DataError(f"{where}: unknown obfuscation methods {sorted(bad)}; choose from {', '.join(METHODS)}")
    per_template = dict(DEFAULT_PER_TEMPLATE)
    per_template.update({k: int(v) for k, v in (raw.get("per_template") or {}).items() if k in SPLITS})
    slots = {k: _split_fillers(v, f"{where} slot {k!r}") for k, v in (raw.get("slots") or {}).items()}
    return Functionality(
        name=name,
        family=str(raw["family"]),
        heads=heads,
        description=" ".join(str(raw["description"]).split()),
        labels=labels,
        templates=templates,
        slots=slots,
        obfuscate=methods,
        obfuscate_slots=list(raw.get("obfuscate_slots") or []),
        per_template=per_template,
        origin=origin,
    )


def load_definitions(
    suite_dir: str | Path | None = None, heads: Sequence[str] | None = None
) -> tuple[list[Functionality], dict[str, dict[str, list[str]]]]:
    """Every functionality (in file order, files sorted by name) and the shared slots. `heads`: those a
    file may label (default: `suite_heads()`)."""
    folder = suite_folder(suite_dir)
    known = tuple(heads) if heads is not None else suite_heads()
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    shared: dict[str, dict[str, list[str]]] = {}
    funcs: list[Functionality] = []
    for item in files:
        origin = f"suite/{item.name}"
        data = _load_yaml(item, origin) or {}
        if item.name == SLOTS_FILE:
            raw_slots = data.get("slots") if isinstance(data, Mapping) else None
            if not isinstance(raw_slots, Mapping):
                raise DataError(f"{origin} must hold a 'slots:' mapping of slot name -> fillers")
            shared = {k: _split_fillers(v, f"{origin} slot {k!r}") for k, v in raw_slots.items()}
            continue
        items = data.get("functionalities") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise DataError(f"{origin} must hold a 'functionalities:' list")
        funcs.extend(_functionality(raw, origin, known) for raw in items)
    names = [f.name for f in funcs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"suite functionalities defined twice: {', '.join(dupes)}")
    if not funcs:
        raise DataError(f"suite folder {folder} defines no functionalities")
    for func in funcs:
        _check_slots(func, shared)
    return funcs, shared


def _check_slots(func: Functionality, shared: Mapping[str, Any]) -> None:
    for split in SPLITS:
        for tpl in func.templates[split]:
            for slot in _PLACEHOLDER.findall(tpl.text):
                if slot.lower() not in func.slots and slot.lower() not in shared:
                    raise DataError(
                        f"{func.origin}: template {tpl.id} uses slot {{{slot}}}, which neither the functionality "
                        f"nor slots.yaml defines"
                    )
    for slot in func.obfuscate_slots:
        if slot not in func.slots and slot not in shared:
            raise DataError(f"{func.origin}: {func.name} obfuscates slot {slot!r}, which is not defined")


# -- generating ------------------------------------------------------------------------------------------
def _fill(template: str, values: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values[name.lower()]
        return value[:1].upper() + value[1:] if name[0].isupper() else value

    return _PLACEHOLDER.sub(sub, template)


def _surface(text: str, rng: random.Random) -> str:
    if rng.random() < LOWERCASE_RATE:
        text = text.lower()
    if text.endswith(".") and not text.endswith("..") and rng.random() < DROP_FULL_STOP_RATE:
        text = text[:-1]
    return text


def _combos(slot_lists: list[list[str]], k: int, rng: random.Random) -> list[tuple[str, ...]]:
    """Up to k distinct filler combinations, drawn evenly from the whole product."""
    total = 1
    for values in slot_lists:
        total *= len(values)
    if total <= 50 * k:
        combos = list(itertools.product(*slot_lists))
        rng.shuffle(combos)
        return combos
    seen: set[tuple[str, ...]] = set()
    out: list[tuple[str, ...]] = []
    for _ in range(50 * k):
        combo = tuple(rng.choice(values) for values in slot_lists)
        if combo not in seen:
            seen.add(combo)
            out.append(combo)
        if len(out) >= 4 * k:
            break
    return out


def generate(
    funcs: Sequence[Functionality],
    shared: Mapping[str, dict[str, list[str]]],
    split: str,
    seed: int = 0,
    per_template: int | None = None,
) -> list[SuiteCase]:
    """Cases of one split, in functionality then template order; duplicates (by dedup_key) dropped."""
    seen: set[str] = set()
    cases: list[SuiteCase] = []
    for func in funcs:
        k = per_template or func.per_template[split]
        for t_index, tpl in enumerate(func.templates[split]):
            rng = random.Random(f"{seed}\x1f{tpl.id}")
            slots = list(dict.fromkeys(s.lower() for s in _PLACEHOLDER.findall(tpl.text)))
            lists = [(func.slots.get(s) or shared[s])[split] for s in slots]
            made = 0
            for combo in _combos(lists, k, rng):
                if made >= k:
                    break
                values = dict(zip(slots, combo, strict=True))
                case_rng = random.Random(f"{seed}\x1f{tpl.id}\x1f{combo}")
                plain = _surface(_fill(tpl.text, values), case_rng)
                text, method = plain, None
                if func.obfuscate:
                    text, method = _obfuscated(func, values, plain, t_index + made, seed)
                    if method is None:
                        continue
                key = dedup_key(text)
                if not key or key in seen:
                    continue
                seen.add(key)
                cases.append(
                    SuiteCase(func.name, text, dict(tpl.labels), split, tpl.id, method, plain if method else None)
                )
                made += 1
    return cases


def _obfuscated(
    func: Functionality, values: Mapping[str, str], plain: str, index: int, seed: int
) -> tuple[str, str | None]:
    """The plain text with its obfuscated slots' key words disguised; methods rotate evenly over cases."""
    words = [w for slot in func.obfuscate_slots if slot in values for w in target_words(values[slot], 1)]
    for step in range(len(func.obfuscate)):
        method = func.obfuscate[(index + step) % len(func.obfuscate)]
        text = obfuscate(plain, method, seed=seed + index, words=words or None)
        if text != plain:
            return text, method
    return plain, None
