"""A policy maps probabilities to flags: one threshold per label, the same set in scan, serve and eval.

It is stored in the bundle manifest ("thresholds") or in a standalone policy file (JSON or YAML):
    {"thresholds": {"toxicity": 0.62, "violence": 0.41, "illegal_advice": 0.55},
     "objective": "precision>=0.9", "chosen_on": "validation", ...}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import BundleError, InputError

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Policy:
    thresholds: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def neutral(cls, labels: Sequence[str]) -> Policy:
        return cls({name: DEFAULT_THRESHOLD for name in labels}, {"objective": "default 0.5"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], labels: Sequence[str], origin: str = "policy") -> Policy:
        raw = data.get("thresholds", data)
        if not isinstance(raw, Mapping):
            raise BundleError(f"{origin}: 'thresholds' must map label -> probability")
        thresholds: dict[str, float] = {}
        for name in labels:
            value = raw.get(name, DEFAULT_THRESHOLD)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise BundleError(f"{origin}: threshold for {name!r} is not a number: {value!r}") from None
            if not 0.0 <= value <= 1.0:
                raise BundleError(f"{origin}: threshold for {name!r} must be within [0, 1], got {value}")
            thresholds[name] = value
        unknown = set(raw) - set(labels) - {"objective", "meta"}
        if unknown:
            raise BundleError(f"{origin}: thresholds for unknown labels {sorted(unknown)}; known: {list(labels)}")
        meta = {k: v for k, v in data.items() if k != "thresholds"} if "thresholds" in data else {}
        return cls(thresholds, meta)

    @classmethod
    def from_file(cls, path: str | Path, labels: Sequence[str]) -> Policy:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read policy file {path}: {exc.strerror}") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
            raise InputError(f"policy file {path} is not valid JSON/YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise InputError(f"policy file {path} must hold a mapping with 'thresholds'")
        return cls.from_dict(data, labels, origin=str(path))

    def with_overrides(self, overrides: Mapping[str, float] | None, labels: Sequence[str]) -> Policy:
        if not overrides:
            return self
        merged = dict(self.thresholds)
        for name, value in overrides.items():
            if name not in merged:
                raise InputError(f"unknown label {name!r} in thresholds; known labels: {', '.join(labels)}")
            v = float(value)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"threshold for {name!r} must be within [0, 1], got {v}")
            merged[name] = v
        return Policy(merged, {**self.meta, "overridden": sorted(overrides)})

    def vector(self, labels: Sequence[str]) -> np.ndarray:
        return np.asarray([self.thresholds[name] for name in labels], dtype=np.float32)

    def flags(self, probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """[n, L] probabilities -> [n, L] booleans (score >= threshold)."""
        return np.asarray(probs) >= self.vector(labels)[None, :]

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": dict(self.thresholds), **self.meta}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
