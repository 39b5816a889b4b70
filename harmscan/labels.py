"""The label taxonomy: one definition of the heads, read from YAML so users can extend it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harmscan.errors import HarmscanError

DEFAULT_LABELS_FILE = "labels.yaml"
LABELS_ENV = "HARMSCAN_LABELS"


@dataclass(frozen=True)
class Label:
    name: str
    definition: str
    openai_categories: tuple[str, ...] = ()
    # Few positives in the data: when a recipe caps a source, rows positive for a scarce head are kept
    # first. A training choice, not part of the label's meaning, so it is neither stored in a manifest
    # (to_dict) nor compared.
    scarce: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "definition": self.definition,
            "openai_categories": list(self.openai_categories),
        }


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of labels; the order is the order of the model's output columns."""

    labels: tuple[Label, ...]
    notes: str = ""
    _index: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [label.name for label in self.labels]
        if not names:
            raise HarmscanError("the label taxonomy is empty: define at least one label")
        if len(set(names)) != len(names):
            raise HarmscanError(f"duplicate label names in the taxonomy: {names}")
        for name in names:
            if not name.isidentifier():
                raise HarmscanError(f"label name {name!r} must be a lowercase identifier such as 'self_harm'")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise HarmscanError(f"unknown label {name!r}; known labels: {', '.join(self.names)}") from None

    def get(self, name: str) -> Label:
        return self.labels[self.index(name)]

    @property
    def scarce_names(self) -> list[str]:
        """The heads marked `scarce: true` (see Label.scarce)."""
        return [label.name for label in self.labels if label.scarce]

    def to_list(self) -> list[dict[str, Any]]:
        return [label.to_dict() for label in self.labels]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]], notes: str = "") -> Taxonomy:
        labels = []
        for item in items:
            if not isinstance(item, Mapping) or "name" not in item:
                raise HarmscanError(f"each label needs at least a 'name' and a 'definition': got {item!r}")
            labels.append(
                Label(
                    name=str(item["name"]),
                    definition=str(item.get("definition", "")).strip(),
                    openai_categories=tuple(item.get("openai_categories") or ()),
                    scarce=bool(item.get("scarce", False)),
                )
            )
        return cls(tuple(labels), notes=notes)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Taxonomy:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HarmscanError(f"label file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise HarmscanError(f"label file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("labels"), list):
            raise HarmscanError(f"label file {path} must hold a mapping with a 'labels:' list")
        return cls.from_list(data["labels"], notes=str(data.get("notes", "")).strip())


def default_taxonomy() -> Taxonomy:
    """The built-in taxonomy (toxicity, violence, illegal_advice)."""
    text = resources.files("harmscan").joinpath(DEFAULT_LABELS_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return Taxonomy.from_list(data["labels"], notes=str(data.get("notes", "")).strip())


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy from `path`, else $HARMSCAN_LABELS, else the built-in one."""
    path = path or os.environ.get(LABELS_ENV)
    return Taxonomy.from_yaml(path) if path else default_taxonomy()


# The built-in heads, read from labels.yaml (the one definition), for callers that need the names only.
DEFAULT_LABELS: tuple[str, ...] = tuple(default_taxonomy().names)
