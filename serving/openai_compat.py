"""OpenAI moderation compatibility: our labels mapped onto OpenAI's category names.

The mapping comes from the taxonomy (`openai_categories` of each label in harmscan/labels.yaml), not from
a table here. Three OpenAI categories are the conjunction of two others ("harassment content that also
includes violence"...); when both parts are mapped they are derived: score = min of the two scores,
flagged = both flagged. Categories nothing maps to are returned with score 0.0, flagged false and an empty
`category_applied_input_types` list (the official `openai` client requires every category to be present);
docs/serving.md lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harmscan.labels import Taxonomy

OPENAI_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
# OpenAI's definitions of these three read "X that also includes violence".
DERIVED: dict[str, tuple[str, str]] = {
    "harassment/threatening": ("harassment", "violence"),
    "hate/threatening": ("hate", "violence"),
    "illicit/violent": ("illicit", "violence"),
}


MAX_RULE = "max score; flagged if any is flagged"
MIN_RULE = "min score; flagged if both are flagged"


@dataclass(frozen=True)
class CategoryMap:
    """How each OpenAI category is computed from our labels."""

    labels: tuple[str, ...]
    direct: dict[str, tuple[str, ...]]  # OpenAI category -> our labels (score = max, flagged = any)
    derived: dict[str, tuple[str, str]]  # OpenAI category -> two OpenAI categories (min / all)

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> CategoryMap:
        direct: dict[str, list[str]] = {}
        for label in taxonomy:
            for cat in label.openai_categories:
                direct.setdefault(cat, []).append(label.name)
        derived = {cat: parts for cat, parts in DERIVED.items()
                   if cat not in direct and all(p in direct for p in parts)}
        return cls(tuple(taxonomy.names), {k: tuple(v) for k, v in direct.items()}, derived)

    def unmodelled(self) -> list[str]:
        return [c for c in OPENAI_CATEGORIES if c not in self.direct and c not in self.derived]

    def describe(self) -> dict[str, Any]:
        """The mapping as data (GET /v1/labels)."""
        out: dict[str, Any] = {}
        for cat in OPENAI_CATEGORIES:
            if cat in self.direct:
                out[cat] = {"from_labels": list(self.direct[cat]), "rule": MAX_RULE}
            elif cat in self.derived:
                a, b = self.derived[cat]
                out[cat] = {"from_categories": [a, b], "rule": MIN_RULE}
            else:
                out[cat] = {"rule": "not modelled: score 0.0, never flagged"}
        for cat, labels in self.direct.items():  # categories outside OpenAI's list, from a custom taxonomy
            out.setdefault(cat, {"from_labels": list(labels), "rule": MAX_RULE})
        return out

    def result(self, scores: Mapping[str, float], flagged: Sequence[str]) -> dict[str, Any]:
        """One entry of `results`: our labels plus OpenAI's names (OpenAI's win where a name is shared)."""
        flagged_set = set(flagged)
        cat_scores: dict[str, float] = {name: float(scores[name]) for name in self.labels}
        cat_flags: dict[str, bool] = {name: name in flagged_set for name in self.labels}
        applied: dict[str, list[str]] = {name: ["text"] for name in self.labels}
        for cat, labels in self.direct.items():
            cat_scores[cat] = max(float(scores[n]) for n in labels)
            cat_flags[cat] = any(n in flagged_set for n in labels)
            applied[cat] = ["text"]
        for cat, (a, b) in self.derived.items():
            cat_scores[cat] = min(cat_scores[a], cat_scores[b])
            cat_flags[cat] = cat_flags[a] and cat_flags[b]
            applied[cat] = ["text"]
        for cat in self.unmodelled():
            cat_scores[cat] = 0.0
            cat_flags[cat] = False
            applied[cat] = []
        return {
            "flagged": bool(flagged_set),
            "categories": cat_flags,
            "category_scores": cat_scores,
            "category_applied_input_types": applied,
        }
