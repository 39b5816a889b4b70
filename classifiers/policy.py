"""A policy maps probabilities to decisions: the same file in scan, serve, eval and the gateway.

Two forms, both JSON or YAML, stored in the bundle manifest ("thresholds") or in a standalone file:

1. Threshold-only (what `harmscan thresholds` writes): one threshold per label; a text is flagged for each
   label whose score reaches it, and its decision is "flag" when any label is flagged, else "allow".
       {"thresholds": {"toxicity": 0.62, "violence": 0.41, "illegal_advice": 0.55},
        "objective": "precision>=0.9", "chosen_on": "validation", ...}

2. With actions (a file with `version`): per direction and label, an ordered list of actions with the
   probability from which each fires; the decision is the strongest action that fires (docs/guardrails.md).
       version: 1
       actions:
         input:  {violence: [{action: block, threshold: 0.8}, {action: review, threshold: 0.5}]}
         output: {violence: [{action: redact, threshold: 0.6}], toxicity: [{action: annotate, threshold: 0.5}]}
       out_of_scope: {max_chars: 20000, languages: [en], action: review}
   `out_of_scope.languages` defaults to the bundle's training languages (manifest training.languages, else
   [en]) when a HarmClassifier applies the policy; `action` defaults to review. Texts whose language is
   undetermined (`und`: too short, or the identifier unsure) stay in scope.
       thresholds: {...}   # optional: the `flagged` lists (default: each label's lowest action threshold)

Files are validated on load; an error is one line naming the key path. `sha256` is the file's bytes (or
the canonical JSON of a policy built in code), for audit records.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import BundleError, InputError

DEFAULT_THRESHOLD = 0.5
POLICY_VERSION = 1
DIRECTIONS = ("input", "output")
# Weakest to strongest: when several actions fire, the strongest is taken. `redact` replaces the span of an
# output (it cannot apply to a prompt, which the gateway either forwards whole or refuses).
ACTIONS = ("allow", "annotate", "review", "redact", "block")
STRENGTH = {name: i for i, name in enumerate(ACTIONS)}
# What a threshold-only policy decides (kept for the results scan and serve have always written).
FLAG, ALLOW = "flag", "allow"
_TOP_KEYS = ("version", "actions", "thresholds", "out_of_scope", "description", "meta")
_OOS_KEYS = ("max_chars", "languages", "action")


@dataclass(frozen=True)
class Rule:
    action: str
    threshold: float


@dataclass(frozen=True)
class OutOfScope:
    """Texts the model was not built for: longer than `max_chars`, or in a language not in `languages`
    (when the language is known: None or "und" is in scope). They get `action[direction]` (or a stronger
    scored one). `languages` None: no language check, until `Policy.with_default_languages` fills it."""

    max_chars: int | None = None
    languages: tuple[str, ...] | None = None
    action: dict[str, str] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, "review"))

    def reason(self, chars: int | None, language: str | None) -> str | None:
        if self.max_chars is not None and chars is not None and chars > self.max_chars:
            return "too_long"
        lang = (language or "").lower()
        if self.languages is not None and lang not in ("", "und") and lang.split("-")[0] not in self.languages:
            return "language"
        return None


@dataclass(frozen=True)
class Decision:
    """The action a policy takes on one text in one direction, and why: `labels` are those whose scores
    made that action fire; `reason` is "scores", or "too_long" / "language" for an out-of-scope text."""

    action: str
    labels: tuple[str, ...] = ()
    reason: str = "scores"


@dataclass(frozen=True)
class Policy:
    thresholds: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    # None: a threshold-only policy. Else {direction: {label: rules, strongest first}}.
    actions: dict[str, dict[str, tuple[Rule, ...]]] | None = None
    out_of_scope: OutOfScope | None = None
    source_sha256: str | None = None

    @classmethod
    def neutral(cls, labels: Sequence[str]) -> Policy:
        return cls({name: DEFAULT_THRESHOLD for name in labels}, {"objective": "default 0.5"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], labels: Sequence[str], origin: str = "policy") -> Policy:
        if "version" in data or "actions" in data:
            return _parse_actions(data, labels, origin)
        raw = data.get("thresholds", data)
        if not isinstance(raw, Mapping):
            raise BundleError(f"{origin}: 'thresholds' must map label -> probability")
        thresholds = _thresholds(raw, labels, origin, extra_keys={"objective", "meta"})
        meta = {k: v for k, v in data.items() if k != "thresholds"} if "thresholds" in data else {}
        return cls(thresholds, meta)

    @classmethod
    def from_file(cls, path: str | Path, labels: Sequence[str]) -> Policy:
        path = Path(path)
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except OSError as exc:
            raise InputError(f"cannot read policy file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(f"policy file {path} is not UTF-8 text") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
            detail = " ".join(str(exc).split())  # YAML errors span several lines
            raise InputError(f"policy file {path} is not valid JSON/YAML: {detail}") from None
        if not isinstance(data, Mapping):
            raise InputError(f"policy file {path} must hold a mapping with 'thresholds' or 'version'")
        policy = cls.from_dict(data, labels, origin=str(path))
        return replace(policy, source_sha256=hashlib.sha256(raw).hexdigest())

    @classmethod
    def resolve(
        cls,
        source: Policy | str | os.PathLike[str] | None,
        labels: Sequence[str],
        overrides: Mapping[str, float] | None = None,
        *,
        default: Policy | None = None,
    ) -> Policy:
        """The policy every front applies: `source` as given (a Policy, or a policy file), else `default`
        (the bundle's; neutral when None), with `overrides` (label -> threshold) on top."""
        if source is None:
            base = default if default is not None else cls.neutral(labels)
        elif isinstance(source, Policy):
            base = source
        else:
            base = cls.from_file(Path(source), labels)
        return base.with_overrides(overrides, labels)

    def with_overrides(self, overrides: Mapping[str, float] | None, labels: Sequence[str]) -> Policy:
        """Other thresholds for `flagged` (and for the decision of a threshold-only policy); the actions of a
        policy with actions are kept."""
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
        return replace(self, thresholds=merged, meta={**self.meta, "overridden": sorted(overrides)},
                       source_sha256=None)

    def with_default_languages(self, languages: Sequence[str]) -> Policy:
        """This policy with `out_of_scope.languages` set to `languages` (a bundle's training languages) when
        its out_of_scope block names none; unchanged otherwise."""
        oos = self.out_of_scope
        if oos is None or oos.languages is not None:
            return self
        return replace(self, out_of_scope=replace(oos, languages=tuple(x.lower() for x in languages)))

    @property
    def has_actions(self) -> bool:
        return self.actions is not None

    @property
    def sha256(self) -> str:
        """The policy file's sha256; for a policy built in code, that of its canonical JSON."""
        if self.source_sha256 is not None:
            return self.source_sha256
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def vector(self, labels: Sequence[str]) -> np.ndarray:
        return np.asarray([self.thresholds[name] for name in labels], dtype=np.float32)

    def flags(self, probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """[n, L] probabilities -> [n, L] booleans (score >= threshold)."""
        return np.asarray(probs) >= self.vector(labels)[None, :]

    # -- decisions -------------------------------------------------------------------------------------
    def decide(self, scores: Mapping[str, float], direction: str = "input", *, chars: int | None = None,
               language: str | None = None) -> Decision:
        """The action taken on one text (its probabilities per label) in `direction`: the strongest action
        that fires, with the labels that fired it. A threshold-only policy answers "flag" or "allow"."""
        if direction not in DIRECTIONS:
            raise InputError(f"unknown direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
        if self.actions is None:
            flagged = tuple(name for name, t in self.thresholds.items() if float(scores[name]) >= t)
            return Decision(FLAG, flagged) if flagged else Decision(ALLOW)
        best, fired = ALLOW, []
        for label, rules in self.actions[direction].items():
            score = float(scores[label])
            # Rules are stored strongest first: the first that fires is this label's action.
            action = next((r.action for r in rules if score >= r.threshold), ALLOW)
            if STRENGTH[action] > STRENGTH[best]:
                best, fired = action, [label]
            elif action == best and action != ALLOW:
                fired.append(label)
        reason = self.out_of_scope.reason(chars, language) if self.out_of_scope else None
        if reason is not None:
            default = self.out_of_scope.action[direction]  # type: ignore[union-attr]
            if STRENGTH[default] > STRENGTH[best]:
                return Decision(default, (), reason)
        return Decision(best, tuple(fired))

    def decisions(self, probs: np.ndarray, labels: Sequence[str], direction: str = "input",
                  lengths: Sequence[int] | None = None,
                  languages: Sequence[str | None] | None = None) -> list[Decision]:
        """`decide` for each row of [n, L] probabilities (`lengths`: each text's characters, `languages`:
        each text's ISO 639-1 code or "und")."""
        if self.actions is None:  # the hot path of batch scans: no per-row dicts
            flags = self.flags(probs, labels)
            return [Decision(FLAG, tuple(np.asarray(labels)[row].tolist())) if row.any() else Decision(ALLOW)
                    for row in flags]
        out = []
        for i, row in enumerate(np.asarray(probs)):
            scores = {name: float(p) for name, p in zip(labels, row, strict=True)}
            out.append(self.decide(scores, direction, chars=None if lengths is None else lengths[i],
                                   language=None if languages is None else languages[i]))
        return out

    def to_dict(self) -> dict[str, Any]:
        if self.actions is None:
            return {"thresholds": dict(self.thresholds), **self.meta}
        out: dict[str, Any] = {
            "version": POLICY_VERSION,
            "actions": {d: {label: [{"action": r.action, "threshold": r.threshold} for r in rules]
                            for label, rules in per.items()} for d, per in self.actions.items()},
            "thresholds": dict(self.thresholds),
        }
        if self.out_of_scope is not None:
            oos = self.out_of_scope
            out["out_of_scope"] = {"action": dict(oos.action)}
            if oos.max_chars is not None:
                out["out_of_scope"]["max_chars"] = oos.max_chars
            if oos.languages is not None:
                out["out_of_scope"]["languages"] = list(oos.languages)
        return {**out, **self.meta}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


# -- parsing -------------------------------------------------------------------------------------------
def parse_overrides(text: str | None) -> dict[str, float]:
    """`--thresholds 'violence=0.3,toxicity=0.7'` -> {'violence': 0.3, 'toxicity': 0.7}; the labels and the
    [0, 1] range are checked when applied (`Policy.with_overrides`)."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, number = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(number)
        except ValueError:
            raise InputError(f"--thresholds: {item!r} is not label=probability (e.g. violence=0.3)") from None
    return out


def _thresholds(raw: Mapping[str, Any], labels: Sequence[str], origin: str, extra_keys: set[str],
                path: str = "") -> dict[str, float]:
    where = f"{path}." if path else ""
    thresholds: dict[str, float] = {}
    for name in labels:
        value = raw.get(name, DEFAULT_THRESHOLD)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise BundleError(f"{origin}: {where}threshold for {name!r} is not a number: {value!r}") from None
        if not 0.0 <= value <= 1.0:
            raise BundleError(f"{origin}: {where}threshold for {name!r} must be within [0, 1], got {value}")
        thresholds[name] = value
    unknown = set(raw) - set(labels) - extra_keys
    if unknown:
        raise BundleError(f"{origin}: {where}thresholds for unknown labels {sorted(unknown)}; known: {list(labels)}")
    return thresholds


def _fail(origin: str, path: str, message: str) -> InputError:
    return InputError(f"{origin}: {path}: {message}")


def _parse_actions(data: Mapping[str, Any], labels: Sequence[str], origin: str) -> Policy:
    unknown = [str(k) for k in data if k not in _TOP_KEYS]
    if unknown:
        raise _fail(origin, unknown[0], f"unknown key; a policy with actions has {', '.join(_TOP_KEYS)}")
    version = data.get("version")
    if version != POLICY_VERSION or isinstance(version, bool):
        raise _fail(origin, "version", f"must be {POLICY_VERSION}, got {version!r}")
    raw_actions = data.get("actions")
    if not isinstance(raw_actions, Mapping) or not raw_actions:
        raise _fail(origin, "actions", "must map a direction (input, output) to {label: [{action, threshold}]}")
    actions: dict[str, dict[str, tuple[Rule, ...]]] = {d: {} for d in DIRECTIONS}
    for direction, per_label in raw_actions.items():
        if direction not in DIRECTIONS:
            raise _fail(origin, f"actions.{direction}", f"unknown direction; use {' or '.join(DIRECTIONS)}")
        if per_label is None:
            continue
        if not isinstance(per_label, Mapping):
            raise _fail(origin, f"actions.{direction}", "must map a label to a list of {action, threshold}")
        for label, rules in per_label.items():
            path = f"actions.{direction}.{label}"
            if label not in labels:
                raise _fail(origin, path, f"unknown label; known: {', '.join(labels)}")
            actions[direction][str(label)] = _parse_rules(rules, direction, origin, path)
    lowest = {name: min((r.threshold for per in actions.values() for r in per.get(name, ())
                         if r.action != ALLOW), default=DEFAULT_THRESHOLD) for name in labels}
    raw_thresholds = data.get("thresholds")
    if raw_thresholds is None:
        thresholds = lowest
    elif isinstance(raw_thresholds, Mapping):
        given = _thresholds(raw_thresholds, labels, origin, set(), "thresholds")
        thresholds = {name: given[name] if name in raw_thresholds else lowest[name] for name in labels}
    else:
        raise _fail(origin, "thresholds", "must map label -> probability")
    meta = data.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise _fail(origin, "meta", "must be a mapping")
    extra = {"description": data["description"]} if "description" in data else {}
    return Policy(thresholds, {**extra, **({"meta": dict(meta)} if meta else {})}, actions,
                  _parse_out_of_scope(data.get("out_of_scope"), origin))


def _parse_rules(rules: Any, direction: str, origin: str, path: str) -> tuple[Rule, ...]:
    if not isinstance(rules, list) or not rules:
        raise _fail(origin, path, "must be a non-empty list of {action, threshold}")
    parsed: list[Rule] = []
    for i, rule in enumerate(rules):
        where = f"{path}[{i}]"
        if not isinstance(rule, Mapping):
            raise _fail(origin, where, "must be a mapping {action: ..., threshold: ...}")
        extra = [str(k) for k in rule if k not in ("action", "threshold")]
        if extra:
            raise _fail(origin, f"{where}.{extra[0]}", "unknown key; a rule has action and threshold")
        action = rule.get("action")
        if action not in ACTIONS:
            raise _fail(origin, f"{where}.action", f"must be one of {', '.join(ACTIONS)}, got {action!r}")
        if action == "redact" and direction != "output":
            raise _fail(origin, f"{where}.action", "redact applies to output text only")
        threshold = rule.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise _fail(origin, f"{where}.threshold", f"must be a number within [0, 1], got {threshold!r}")
        if any(r.action == action for r in parsed):
            raise _fail(origin, f"{where}.action", f"{action!r} is listed twice")
        parsed.append(Rule(str(action), float(threshold)))
    parsed.sort(key=lambda r: -STRENGTH[r.action])
    # A weaker action at or above a stronger one's threshold could never be taken: a mistake in the file.
    for strong, weak in zip(parsed, parsed[1:], strict=False):
        if weak.threshold >= strong.threshold and weak.action != ALLOW:
            raise _fail(origin, path, f"{weak.action!r} at {weak.threshold} can never be taken: "
                                      f"{strong.action!r} fires from {strong.threshold}")
    return tuple(parsed)


def _parse_out_of_scope(raw: Any, origin: str) -> OutOfScope | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _fail(origin, "out_of_scope", "must be a mapping with max_chars, languages and action")
    extra = [str(k) for k in raw if k not in _OOS_KEYS]
    if extra:
        raise _fail(origin, f"out_of_scope.{extra[0]}", f"unknown key; use {', '.join(_OOS_KEYS)}")
    max_chars = raw.get("max_chars")
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
        raise _fail(origin, "out_of_scope.max_chars", f"must be a whole number >= 1, got {max_chars!r}")
    languages = raw.get("languages")
    if languages is not None:
        if not isinstance(languages, list) or not all(isinstance(x, str) and x for x in languages):
            raise _fail(origin, "out_of_scope.languages", "must be a list of language codes such as [en]")
        languages = tuple(x.lower() for x in languages)
    action = raw.get("action", "review")
    per = dict.fromkeys(DIRECTIONS, action) if isinstance(action, str) else action
    if not isinstance(per, Mapping):
        raise _fail(origin, "out_of_scope.action", "must be an action or {input: action, output: action}")
    allowed = tuple(a for a in ACTIONS if a != "redact")  # an out-of-scope text has no span to redact
    resolved = {}
    for direction in DIRECTIONS:
        name = per.get(direction, "review")
        if name not in allowed:
            key = "out_of_scope.action" if isinstance(action, str) else f"out_of_scope.action.{direction}"
            raise _fail(origin, key, f"must be one of {', '.join(allowed)}, got {name!r}")
        resolved[direction] = str(name)
    unknown = [str(k) for k in per if k not in DIRECTIONS]
    if unknown:
        raise _fail(origin, f"out_of_scope.action.{unknown[0]}", "unknown direction; use input or output")
    return OutOfScope(max_chars, languages, resolved)
