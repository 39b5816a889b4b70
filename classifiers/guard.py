"""Guard: a policy with actions applied to the prompts and completions of an LLM, in-process.

    guard = Guard(HarmClassifier.load("artifacts/bundle"), Policy.from_file("policy.yaml", labels))
    guard.check_input(messages).action            # "allow" | "annotate" | "review" | "block"
    guard.check_output(text)                      # .action, .labels, .scores, .redacted (for "redact")
    for event in guard.stream(chunks): ...        # text events to send on, then possibly one "blocked"

The gateway (serving/gateway.py) calls the same object, so a proxy and an app that imports harmscan decide
alike. Runtime only: numpy and the classifier (ONNX Runtime), no torch, no bentoml.

Streams: received text is held until a sentence ends (or `chunk_chars` characters pile up without one), then
scored alone and together with the last `context_chars` characters already sent (the higher score per label
counts), and released only if no `block` fires. So nothing of a harmful sentence, and nothing after it, is ever sent, and text is held for at most
one guard chunk (one sentence, at most `chunk_chars` characters). `redact` sends the redaction marker in
place of the sentence.

Audit: every intervention (any action but "allow") makes a record (time, direction, action, labels,
scores, policy sha256, bundle fingerprint, sha256 of the text, key id) and never the text itself; it is
passed to `audit` and kept on the verdict.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from harmscan.classifiers.policy import ALLOW, FLAG, STRENGTH, Decision, Policy
from harmscan.errors import InputError

DEFAULT_CHUNK_CHARS = 200  # NeMo Guardrails' default output-rail chunk size is 200 (tokens there)
DEFAULT_CONTEXT_CHARS = 200
REDACTION = "[redacted]"
# Roles whose text comes from the user side of a chat; system prompts and earlier assistant turns are the
# application's own (and the assistant's were checked as outputs).
INPUT_ROLES = ("user", "tool", "function")
# A sentence ends at terminal punctuation (plus closing quotes or brackets) followed by white space, or at a
# line break. The white space must have arrived: "3." may still become "3.14".
_BOUNDARY = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*\s+|\n+")

AuditSink = Callable[[dict[str, Any]], None]


class Scorer(Protocol):
    """What Guard needs from a classifier (HarmClassifier is one)."""

    labels: list[str]

    def predict_proba(self, texts: Iterable[str] | str) -> np.ndarray: ...


def text_sha256(text: str) -> str:
    # surrogatepass: a str can hold lone surrogates; hashing must not fail on them.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """What the policy did to one text (or, for an input, the whole conversation's user side)."""

    direction: str
    action: str  # allow | annotate | review | redact | block
    labels: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = "scores"  # scores | too_long | language
    audit: dict[str, Any] | None = None  # the audit record, for an intervention
    redacted: str | None = field(default=None, repr=False)  # the output with its harmful spans replaced

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def intervened(self) -> bool:
        return self.action != ALLOW

    def to_dict(self) -> dict[str, Any]:
        """For responses: no text, no audit record."""
        return {"direction": self.direction, "action": self.action, "labels": list(self.labels),
                "scores": dict(self.scores), "reason": self.reason}


@dataclass(frozen=True)
class StreamEvent:
    """`kind` "text": send `text` on (its `verdict` says whether it was annotated, reviewed or redacted).
    `kind` "blocked": stop the stream here; nothing more may be sent."""

    kind: str
    text: str = ""
    verdict: Verdict | None = None


class Guard:
    def __init__(
        self,
        classifier: Scorer,
        policy: Policy | None = None,
        *,
        audit: AuditSink | None = None,
        key_id: str | None = None,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        context_chars: int = DEFAULT_CONTEXT_CHARS,
        redaction: str = REDACTION,
        input_roles: Sequence[str] = INPUT_ROLES,
    ) -> None:
        if chunk_chars < 1 or context_chars < 0:
            raise InputError(f"chunk_chars must be >= 1 and context_chars >= 0, got {chunk_chars}, {context_chars}")
        self.classifier = classifier
        self.labels: list[str] = list(classifier.labels)
        pol = policy if policy is not None else getattr(classifier, "policy", None)
        self.policy: Policy = pol if pol is not None else Policy.neutral(self.labels)
        self.audit = audit
        self.key_id = key_id
        self.chunk_chars = chunk_chars
        self.context_chars = context_chars
        self.redaction = redaction
        self.input_roles = tuple(input_roles)
        bundle = getattr(classifier, "bundle", None)
        self.bundle_fingerprint: str | None = getattr(bundle, "fingerprint", None)

    # -- checks --------------------------------------------------------------------------------------
    def check_input(self, messages: str | Sequence[Mapping[str, Any]], *, key_id: str | None = None,
                    language: str | None = None, request_id: str | None = None) -> Verdict:
        """A prompt (a string) or OpenAI-style chat messages: the strongest action over the user-side
        messages' texts (`language`: the prompt's language when the caller knows it)."""
        texts = [messages] if isinstance(messages, str) else input_texts(messages, self.input_roles)
        texts = [t for t in texts if t.strip()]
        if not texts:
            return Verdict("input", ALLOW, scores=dict.fromkeys(self.labels, 0.0))
        scores = self._score(texts)
        decisions = [self._decide(s, "input", len(t), language) for t, s in zip(texts, scores, strict=True)]
        top = max(range(len(texts)), key=lambda i: STRENGTH[decisions[i].action])
        labels = sorted({lb for d in decisions if d.action == decisions[top].action for lb in d.labels},
                        key=self.labels.index)
        worst = {name: max(s[name] for s in scores) for name in self.labels}
        decision = Decision(decisions[top].action, tuple(labels), decisions[top].reason)
        return self._verdict("input", decision, worst, texts[top], key_id, request_id)

    def check_output(self, text: str, *, key_id: str | None = None, language: str | None = None,
                     request_id: str | None = None) -> Verdict:
        """A whole completion. For `redact`, `.redacted` holds it with its harmful sentences replaced."""
        if not text.strip():
            return Verdict("output", ALLOW, scores=dict.fromkeys(self.labels, 0.0))
        scores = self._score([text])[0]
        verdict = self._verdict("output", self._decide(scores, "output", len(text), language), scores, text,
                                key_id, request_id)
        if verdict.action != "redact":
            return verdict
        # Redact sentence by sentence, as a stream would; a harm no single sentence carries redacts it all.
        stream = OutputStream(self, key_id=key_id, request_id=request_id, record=False)
        events = stream.feed(text) + stream.close()
        redacted = "".join(e.text for e in events if e.kind == "text")
        if any(e.kind == "blocked" for e in events) or redacted == text:
            redacted = self.redaction
        return Verdict(verdict.direction, verdict.action, verdict.labels, verdict.scores, verdict.reason,
                       verdict.audit, redacted)

    def open_stream(self, *, key_id: str | None = None, request_id: str | None = None) -> OutputStream:
        """A streamed completion, fed chunk by chunk (what `stream` and the gateway use)."""
        return OutputStream(self, key_id=key_id, request_id=request_id)

    def stream(self, chunks: Iterable[str], *, key_id: str | None = None,
               request_id: str | None = None) -> Iterator[StreamEvent]:
        """Text chunks in, events out: "text" events to send on, and a final "blocked" event on block."""
        checker = self.open_stream(key_id=key_id, request_id=request_id)
        for chunk in chunks:
            for event in checker.feed(chunk):
                yield event
                if event.kind == "blocked":
                    return
        yield from checker.close()

    # -- internals -----------------------------------------------------------------------------------
    def _score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        probs = np.asarray(self.classifier.predict_proba(list(texts)))
        return [{name: float(p) for name, p in zip(self.labels, row, strict=True)} for row in probs]

    def _decide(self, scores: Mapping[str, float], direction: str, chars: int,
                language: str | None) -> Decision:
        decision = self.policy.decide(scores, direction, chars=chars, language=language)
        if decision.action == FLAG:  # a threshold-only policy: what it flags, the guard blocks
            return Decision("block", decision.labels, decision.reason)
        return decision

    def _verdict(self, direction: str, decision: Decision, scores: dict[str, float], text: str,
                 key_id: str | None, request_id: str | None, record: bool = True) -> Verdict:
        audit = None
        if decision.action != ALLOW and record:
            audit = {
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "request_id": request_id, "direction": direction, "action": decision.action,
                "labels": list(decision.labels), "reason": decision.reason,
                "scores": {k: round(v, 6) for k, v in scores.items()},
                "policy_sha256": self.policy.sha256, "bundle": self.bundle_fingerprint,
                "sha256": text_sha256(text), "chars": len(text), "key_id": key_id or self.key_id,
            }
            if self.audit is not None:
                self.audit(audit)
        return Verdict(direction, decision.action, decision.labels, scores, decision.reason, audit)


class OutputStream:
    """One streamed completion under a Guard: `feed(chunk)` and, at the end, `close()` return the events
    to act on. Scoring happens inside them (call them from a worker thread in an event loop)."""

    def __init__(self, guard: Guard, *, key_id: str | None = None, request_id: str | None = None,
                 record: bool = True) -> None:
        self.guard = guard
        self.key_id = key_id
        self.request_id = request_id
        self.record = record
        self.pending = ""  # received, not yet scored and released
        self.context = ""  # the tail of what was released (after redaction), scored with the next sentence
        self.chars = 0  # characters received
        self.stopped = False
        self.verdicts: list[Verdict] = []  # interventions so far

    def feed(self, chunk: str) -> list[StreamEvent]:
        if self.stopped:
            return []
        self.pending += chunk
        self.chars += len(chunk)
        return self._release(self._ready_segments())

    def close(self) -> list[StreamEvent]:
        """The stream ended: score and release what is still held."""
        if self.stopped:
            return []
        rest, self.pending = self.pending, ""
        events = self._release([rest] if rest else [])
        self.stopped = True
        return events

    def _ready_segments(self) -> list[str]:
        segments = []
        while self.pending:
            match = _BOUNDARY.search(self.pending)
            limit = self.guard.chunk_chars
            if match is not None and match.end() <= limit:
                cut = match.end()
            elif len(self.pending) >= limit:
                # No sentence end within one guard chunk: cut at the last space inside it (else at the limit)
                space = self.pending.rfind(" ", 0, limit)
                cut = space + 1 if space > 0 else limit
            else:
                break
            segments.append(self.pending[:cut])
            self.pending = self.pending[cut:]
        return segments

    def _release(self, segments: list[str]) -> list[StreamEvent]:
        segments = [s for s in segments if s]
        if not segments:
            return []
        guard = self.guard
        # One model call for the sentences that completed together, each scored alone and after its context,
        # and the higher score per label kept: the context catches harm split across sentences, and scoring
        # alone keeps benign text before a harmful sentence from diluting it (with context only, 26 of 150
        # harmful sentences in benchmarks/gateway.py slipped through).
        texts, has_context, context = [], [], self.context
        for seg in segments:
            texts.append(seg)
            has_context.append(bool(context))
            if context:
                texts.append(context + seg)
            context = (context + seg)[-guard.context_chars:] if guard.context_chars else ""
        scored = iter(guard._score(texts))
        per_segment = []
        for with_ctx in has_context:
            alone = next(scored)
            both = next(scored) if with_ctx else alone
            per_segment.append({k: max(alone[k], both[k]) for k in alone})
        events = []
        for seg, scores in zip(segments, per_segment, strict=True):
            decision = guard._decide(scores, "output", self.chars, None)
            verdict = guard._verdict("output", decision, scores, seg, self.key_id, self.request_id,
                                     record=self.record)
            if verdict.intervened:
                self.verdicts.append(verdict)
            if verdict.blocked:
                self.stopped = True
                self.pending = ""
                events.append(StreamEvent("blocked", "", verdict))
                return events
            sent = guard.redaction + _trailing_space(seg) if verdict.action == "redact" else seg
            # Text that was acted on leaves the context, or it would fire again on every sentence after it.
            keep = self.context + sent if not verdict.intervened else ""
            self.context = keep[-guard.context_chars:] if guard.context_chars else ""
            events.append(StreamEvent("text", sent, verdict))
        return events


def _trailing_space(segment: str) -> str:
    return segment[len(segment.rstrip()):]


def input_texts(messages: Sequence[Mapping[str, Any]], roles: Sequence[str] = INPUT_ROLES) -> list[str]:
    """The texts of OpenAI-style chat messages from `roles` (string content or text parts)."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise InputError("messages must be a list of {role, content} objects")
    texts = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InputError(f"messages[{i}] must be an object with 'role' and 'content'")
        if message.get("role") not in roles:
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text", "")) for part in content
                         if isinstance(part, Mapping) and part.get("type") == "text")
        elif content is not None:
            raise InputError(f"messages[{i}].content must be a string or a list of content parts")
    return texts
