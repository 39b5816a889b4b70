"""Training recipes: YAML files naming the sources, their weights and caps, augmentation and training knobs.

A recipe is data, not code: `harmscan data build --recipe NAME` and `harmscan train --recipe NAME` read the
packaged `training/recipes/NAME.yaml`, or a path to any YAML file in the same format.

`external:` names whole sources that are never trained on: no row of theirs (nor any training row with the
same dedup key) reaches train, validation or test, and `harmscan eval` scores them after every run. It is a
list of names, or a mapping name -> {cap: N} to score a deterministic subsample of a large source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harmscan.errors import DataError
from harmscan.training.modeling import check_pooling


@dataclass(frozen=True)
class SourceSpec:
    name: str
    weight: float = 1.0
    cap: int | None = None
    # Heads whose labels from this source are ignored (set to unknown), e.g. a weak violence signal.
    drop_heads: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExternalSpec:
    """A source held out whole for external validation; `cap` subsamples it deterministically."""

    name: str
    cap: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cap": self.cap}


# A misspelt key (say `externals:`) would silently train on what was meant to be held out: refuse it.
RECIPE_KEYS = frozenset(
    ("name", "description", "commercial", "sources", "external", "split", "augment", "train", "base_model",
     "max_length", "thresholds")
)


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    commercial: bool
    sources: tuple[SourceSpec, ...]
    split: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    base_model: str | None = None
    max_length: int = 128
    path: str = ""
    external: tuple[ExternalSpec, ...] = ()
    # How the shipped operating points are chosen: {objective, prevalence} as `harmscan thresholds` takes
    # them, stated for the traffic the model is deployed on rather than for the validation mix.
    thresholds: dict[str, Any] = field(default_factory=dict)

    def source(self, name: str) -> SourceSpec:
        for spec in self.sources:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "commercial": self.commercial,
            "base_model": self.base_model,
            "max_length": self.max_length,
            "sources": [
                {"name": s.name, "weight": s.weight, "cap": s.cap, "drop_heads": list(s.drop_heads)}
                for s in self.sources
            ],
            "split": self.split,
            "augment": self.augment,
            "train": self.train,
        }
        if self.external:  # absent when empty, so a recipe without it builds the same summary as before
            out["external"] = [e.to_dict() for e in self.external]
        if self.thresholds:
            out["thresholds"] = dict(self.thresholds)
        return out

    def check_sources(self, registry: Mapping[str, Any]) -> None:
        """Every name is a known source; an `eval_only` source appears under `external:` only."""
        for name in [s.name for s in self.sources] + [e.name for e in self.external]:
            if name not in registry:
                raise DataError(
                    f"recipe {self.path}: unknown source {name!r}; known sources: {', '.join(sorted(registry))}"
                )
        for spec in self.sources:
            if getattr(registry[spec.name], "eval_only", False):
                raise DataError(
                    f"recipe {self.path}: source {spec.name!r} is eval_only (never trained on): "
                    "list it under `external:`, not `sources:`"
                )


def available_recipes() -> list[str]:
    folder = resources.files("harmscan.training").joinpath("recipes")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A packaged recipe by name (default, quick, research, full) or a YAML file by path."""
    text: str
    origin = str(name_or_path)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read recipe {path}: {exc.strerror}") from None
    else:
        res = resources.files("harmscan.training").joinpath("recipes", f"{name_or_path}.yaml")
        if not res.is_file():
            raise DataError(
                f"unknown recipe {name_or_path!r}: choose one of {', '.join(available_recipes())} "
                "or pass a path to a recipe YAML"
            )
        text = res.read_text(encoding="utf-8")
        origin = f"recipes/{name_or_path}.yaml"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"recipe {origin} is not valid YAML: {exc}") from None
    return parse_recipe(data, origin)


def parse_recipe(data: Any, origin: str = "recipe") -> Recipe:
    if not isinstance(data, Mapping):
        raise DataError(f"recipe {origin} must be a mapping with 'name' and 'sources'")
    raw_sources = data.get("sources")
    if not isinstance(raw_sources, Mapping) or not raw_sources:
        raise DataError(f"recipe {origin} needs a 'sources:' mapping of source name -> options")
    specs = []
    for name, opts in raw_sources.items():
        opts = opts or {}
        if not isinstance(opts, Mapping):
            raise DataError(f"recipe {origin}: options for source {name!r} must be a mapping (weight, cap)")
        unknown = set(opts) - {"weight", "cap", "drop_heads"}
        if unknown:
            raise DataError(f"recipe {origin}: source {name!r} has unknown options {sorted(unknown)}")
        weight = float(opts.get("weight", 1.0))
        if weight <= 0:
            raise DataError(f"recipe {origin}: weight of {name!r} must be > 0 (remove the source instead)")
        cap = opts.get("cap")
        specs.append(SourceSpec(str(name), weight, int(cap) if cap else None, tuple(opts.get("drop_heads", ()))))
    unknown_keys = set(map(str, data)) - RECIPE_KEYS
    if unknown_keys:
        raise DataError(
            f"recipe {origin}: unknown key(s) {', '.join(sorted(unknown_keys))} "
            f"(known: {', '.join(sorted(RECIPE_KEYS))})"
        )
    external = parse_external(data.get("external"), origin)
    both = sorted({s.name for s in specs} & {e.name for e in external})
    if both:
        raise DataError(
            f"recipe {origin}: {', '.join(both)} listed under both `sources:` and `external:`: "
            "an external source is never trained on, so keep it in one of the two"
        )
    train = dict(data.get("train") or {})
    if "pooling" in train:
        check_pooling(train["pooling"], f"recipe {origin}: ")
    return Recipe(
        name=str(data.get("name") or Path(origin).stem),
        description=str(data.get("description", "")).strip(),
        commercial=bool(data.get("commercial", True)),
        sources=tuple(specs),
        split=dict(data.get("split") or {}),
        augment=dict(data.get("augment") or {}),
        train=train,
        base_model=data.get("base_model"),
        max_length=int(data.get("max_length", 128)),
        path=origin,
        external=external,
        thresholds=parse_threshold_spec(data.get("thresholds"), origin),
    )


def parse_threshold_spec(raw: Any, origin: str = "recipe") -> dict[str, Any]:
    """`thresholds: {objective: ..., prevalence: ...}`, checked with the parsers `harmscan thresholds` uses."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or set(raw) - {"objective", "prevalence"}:
        raise DataError(f"recipe {origin}: thresholds must be a mapping with objective and/or prevalence")
    from harmscan.errors import InputError
    from harmscan.eval.thresholds import parse_objectives, parse_prevalence
    from harmscan.labels import load_taxonomy

    labels = load_taxonomy().names
    try:
        if "objective" in raw:
            parse_objectives(raw["objective"], labels)
        if raw.get("prevalence") is not None:
            parse_prevalence(raw["prevalence"], labels)
    except InputError as exc:
        raise DataError(f"recipe {origin}: thresholds: {exc}") from None
    return dict(raw)


def parse_external(raw: Any, origin: str = "recipe") -> tuple[ExternalSpec, ...]:
    """`external:` as a list of names or a mapping name -> {cap: N} (or null options)."""
    if raw is None:
        return ()
    if isinstance(raw, list | tuple):
        items: list[tuple[Any, Any]] = [(name, None) for name in raw]
    elif isinstance(raw, Mapping):
        items = list(raw.items())
    else:
        raise DataError(f"recipe {origin}: `external:` must be a list of source names or a mapping name -> {{cap}}")
    out: list[ExternalSpec] = []
    for name, opts in items:
        if not isinstance(name, str) or not name:
            raise DataError(f"recipe {origin}: `external:` entries must be source names, got {name!r}")
        opts = opts or {}
        if not isinstance(opts, Mapping):
            raise DataError(f"recipe {origin}: options for external source {name!r} must be a mapping (cap)")
        unknown = set(map(str, opts)) - {"cap"}
        if unknown:
            raise DataError(f"recipe {origin}: external source {name!r} has unknown options {sorted(unknown)} "
                            "(only cap)")
        cap = opts.get("cap")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
            raise DataError(f"recipe {origin}: cap of external source {name!r} must be a whole number > 0")
        if any(e.name == name for e in out):
            raise DataError(f"recipe {origin}: external source {name!r} is listed twice")
        out.append(ExternalSpec(name, cap))
    return tuple(out)
