"""HarmClassifier: a bundle served with ONNX Runtime. Imports onnxruntime, tokenizers and numpy only.

    clf = HarmClassifier.load("artifacts/bundle")
    clf.predict_proba(["you are an idiot"])        # ndarray [n, labels], calibrated probabilities
    clf.scan(["how do I kill a python process"])   # [ScanResult(scores, flagged, decision, span, windows)]

Speed: texts are cut into windows, the windows sorted by length and batched, each batch padded only to its
own longest window (short texts never pay for long ones), and results put back in the caller's order.
Long texts: every window is scored; a text's score per label is the max over its windows, and its result
names the character span (in the caller's original string) of the window that scored highest.
Nothing is ever truncated.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harmscan.classifiers.bundle import Bundle
from harmscan.classifiers.calibration import apply_calibration
from harmscan.classifiers.encoding import (
    CPU_MAX_BATCH_TOKENS,
    TooManyWindowsError,
    WindowTokenizer,
    forward_windows,
)
from harmscan.classifiers.int8_gate import gate_status
from harmscan.classifiers.int8_gate import summary as gate_summary
from harmscan.classifiers.language import bundle_languages, detect_many
from harmscan.classifiers.policy import Policy
from harmscan.classifiers.runtime import CUDA, Runner, create_session, resolve_device
from harmscan.classifiers.textmap import normalize_with_offsets
from harmscan.errors import BundleError, InputError
from harmscan.text import normalize_text

DEFAULT_BATCH_SIZE = 32
# A GPU wants bigger batches: tweets/s of fp16 on an H200 at 32 / 128 / 512 windows per call was
# 13.0k / 15.6k / 17.2k (docs/benchmarks.md). `batch_size=None` picks this on CUDA, DEFAULT_BATCH_SIZE on a CPU.
GPU_BATCH_SIZE = 256
# On CUDA each batch's width is rounded up to a multiple of 8: fewer distinct shapes, so the kernels for
# each are picked and loaded once (fp16 batch-1 p90 latency was 37x the median with exact widths on an
# H200, docs/benchmarks.md), and widths that suit the tensor cores. Padded positions are masked out.
GPU_PAD_MULTIPLE = 8
VARIANTS = ("auto", "fp32", "int8", "fp16")
# Texts tokenised at a time inside one call: bounds memory when a caller passes millions of texts.
_CHUNK = 4096


@dataclass
class ScanResult:
    """One text's verdict. `span` ({"start", "end", "label"}: character offsets into the caller's original
    text) locates the window that scored highest for `label` (the strongest flagged label, else the
    strongest label), merged with the adjacent windows that also cross the threshold. It is set for texts
    longer than one window, and for every text when `scan(..., return_spans=True)`. `language` is the
    text's ISO 639-1 code, or "und" when too short or unsure (`harmscan.classifiers.language`), with the
    identifier's confidence; a policy's out_of_scope block routes languages the bundle was not trained on."""

    scores: dict[str, float]
    flagged: list[str]
    decision: str  # "flag" | "allow"; with a policy with actions, the action taken on an input
    span: dict[str, Any] | None = None
    windows: int = 1
    language: str = "und"
    language_confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_variant(bundle: Bundle, variant: str, device: str) -> str:
    """'auto': fp16 on a GPU, int8 on a CPU, when the bundle has them and their gate verdict is a final
    pass; fp32 otherwise. int8's gate is task-level (`harmscan.classifiers.int8_gate`): an int8 that
    failed it is refused even when asked for by name, one measured at an earlier calibration or threshold
    set (`pending`) loads with a warning. Another variant that failed its PyTorch parity gate (kept by
    `export --allow-parity-failure`) loads with a warning."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    variants = bundle.info.variants
    if variant != "auto":
        bundle.variant_path(variant)  # raises a BundleError naming the variants the bundle has
        parity = variants[variant].get("parity") or {}
        status = gate_status(parity)
        if status == "failed" and parity.get("gate") == "task-level":
            raise BundleError(
                f"bundle {bundle.path}: the {variant} variant failed its task-level parity gate against fp32: "
                f"{gate_summary(parity)}; load variant 'fp32' or 'auto'"
            )
        if status != "passed":
            what = ("has no final verdict at the bundle's current calibration and thresholds (run "
                    "`harmscan thresholds`)" if status == "pending" else "failed the export parity gate")
            warnings.warn(
                f"bundle {bundle.path}: the {variant} variant {what} ({gate_summary(parity)}); its scores "
                "may differ from the reference model's",
                RuntimeWarning,
                stacklevel=3,
            )
        return variant
    preferred = ("fp16", "fp32", "int8") if device == "cuda" else ("int8", "fp32")
    for name in preferred:
        if name in variants and gate_status(variants[name].get("parity")) == "passed":
            return name
    raise BundleError(f"bundle {bundle.path} has no model variant usable on {device}; re-export it")


class HarmClassifier:
    """Scores texts for every label of a bundle. Build it with `HarmClassifier.load(bundle)`."""

    def __init__(
        self,
        bundle: Bundle,
        runner: Runner,
        *,
        variant: str,
        policy: Policy,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise InputError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        self.bundle = bundle
        self.labels: list[str] = bundle.label_names
        self.languages = bundle_languages(bundle.info.training)  # what an out_of_scope block defaults to
        self.policy = policy.with_default_languages(self.languages)
        self.variant = variant
        self.batch_size = int(batch_size)
        self.max_batch_tokens = max_batch_tokens
        self.providers: list[str] = list(runner.session.get_providers())
        self.pad_multiple = GPU_PAD_MULTIPLE if self.device == "cuda" else 1
        self.calibration = bundle.calibration
        self._runner = runner
        self._tokenizer = WindowTokenizer(bundle.tokenizer_path, bundle.max_length, bundle.info.window_stride)
        width = runner.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(self.labels):
            raise BundleError(
                f"bundle {bundle.path}: the model has {width} outputs but the manifest lists "
                f"{len(self.labels)} labels; re-export the bundle"
            )

    @classmethod
    def load(
        cls,
        bundle: str | os.PathLike[str] | Bundle,
        variant: str = "auto",
        device: str = "auto",
        threads: int | None = None,
        policy: Policy | str | os.PathLike[str] | None = None,
        batch_size: int | None = None,
        io_binding: bool | None = None,
        max_batch_tokens: int | str | None = "auto",
    ) -> HarmClassifier:
        """Load and verify a bundle. `threads`: ONNX Runtime intra-op threads (None: $OMP_NUM_THREADS, else
        one per core). `policy`: thresholds (a Policy or a policy file; default: the bundle's).
        `batch_size`: most windows per model call (None: 32 on a CPU, 256 on a GPU); `max_batch_tokens`: most padded tokens per call
        ("auto": 512 on a CPU, no cap on a GPU; None: no cap). `io_binding`: default on for CUDA."""
        b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        resolved = resolve_device(device)
        chosen = choose_variant(b, variant, resolved)
        session = _session(b, chosen, resolved, threads, device)
        if resolved == "cuda" and session.get_providers()[0] != CUDA:
            # device="auto" found a CUDA provider that does not work (create_session warned): pick the
            # variant for the CPU instead of running an fp16 graph there.
            resolved = "cpu"
            cpu_variant = choose_variant(b, variant, "cpu")
            if cpu_variant != chosen:
                chosen, session = cpu_variant, _session(b, cpu_variant, "cpu", threads, "cpu")
        pol = Policy.resolve(policy, b.label_names, default=b.policy)
        runner = Runner(session, io_binding=resolved == "cuda" if io_binding is None else io_binding)
        if max_batch_tokens == "auto":
            max_batch_tokens = None if resolved == "cuda" else CPU_MAX_BATCH_TOKENS
        if isinstance(max_batch_tokens, str):
            raise InputError(f"max_batch_tokens must be a number, None or 'auto', got {max_batch_tokens!r}")
        if batch_size is None:
            batch_size = GPU_BATCH_SIZE if resolved == "cuda" else DEFAULT_BATCH_SIZE
        return cls(b, runner, variant=chosen, policy=pol, batch_size=batch_size, max_batch_tokens=max_batch_tokens)

    @classmethod
    def unchecked(cls, bundle: Bundle, variant: str, threads: int | None = None) -> HarmClassifier:
        """`variant` on the CPU whatever its gate verdict, at the bundle's policy: what measures the gate."""
        session = _session(bundle, variant, "cpu", threads, "cpu")
        return cls(bundle, Runner(session, io_binding=False), variant=variant, policy=bundle.policy,
                   max_batch_tokens=CPU_MAX_BATCH_TOKENS)

    @property
    def device(self) -> str:
        return "cuda" if self.providers and self.providers[0] == CUDA else "cpu"

    def __repr__(self) -> str:
        return (
            f"HarmClassifier(bundle={str(self.bundle.path)!r}, variant={self.variant!r}, "
            f"providers={self.providers}, labels={self.labels})"
        )

    # -- public API ----------------------------------------------------------------------------------
    def predict_logits(self, texts: Iterable[str] | str) -> np.ndarray:
        """Raw logits [n, labels]; for a text longer than one window, the max over its windows."""
        return self._infer(_as_texts(texts), want_spans=False).logits

    def predict_proba(self, texts: Iterable[str] | str) -> np.ndarray:
        """Calibrated probabilities [n, labels] (the bundle's calibration; sigmoid when it has none)."""
        return apply_calibration(self.predict_logits(texts), self.calibration, self.labels)

    def scan(
        self,
        texts: Iterable[str] | str,
        thresholds: Mapping[str, float] | None = None,
        return_spans: bool = False,
        *,
        policy: Policy | None = None,
    ) -> list[ScanResult]:
        """Scores, flagged labels and a decision per text, under the policy (`thresholds` overrides some).
        `policy`: one the caller already resolved, used as is instead of `thresholds` (the server validates a
        request's overrides once, `self.policy.with_overrides`, before its texts join a shared batch)."""
        if policy is not None and thresholds:
            raise ValueError("pass thresholds or a resolved policy, not both")
        items = _as_texts(texts)
        policy = policy if policy is not None else self.policy.with_overrides(thresholds, self.labels)
        inf = self._infer(items, want_spans=return_spans)
        probs = apply_calibration(inf.logits, self.calibration, self.labels)
        flags = policy.flags(probs, self.labels)
        langs = detect_many(items)  # beside the model, never fed to it: scores do not depend on it
        decisions = policy.decisions(probs, self.labels, "input", lengths=[len(t) for t in items],
                                     languages=[lang.code for lang in langs])
        results = []
        for i, text in enumerate(items):
            flagged = [name for name, f in zip(self.labels, flags[i], strict=True) if f]
            span = None
            if return_spans or inf.counts[i] > 1:
                # The span explains the verdict: the strongest flagged label, else the strongest label.
                candidates = np.flatnonzero(flags[i]) if flagged else np.arange(len(self.labels))
                j = int(candidates[np.argmax(probs[i, candidates])])
                start, end = self._span(inf, i, j, policy.thresholds[self.labels[j]] if flagged else None)
                o_start, o_end = normalize_with_offsets(text).original_span(start, end)
                span = {"start": o_start, "end": o_end, "label": self.labels[j]}
            results.append(
                ScanResult(
                    scores={name: float(p) for name, p in zip(self.labels, probs[i], strict=True)},
                    flagged=flagged,
                    decision=decisions[i].action,
                    span=span,
                    windows=int(inf.counts[i]),
                    language=langs[i].code,
                    language_confidence=langs[i].confidence,
                )
            )
        return results

    def count_windows(self, texts: Iterable[str] | str) -> list[int]:
        """How many token windows each text becomes after normalisation (the cost of scoring it)."""
        return self._tokenizer.count_windows([normalize_text(t) for t in _as_texts(texts)])

    # -- internals -----------------------------------------------------------------------------------
    def _span(self, inf: _Inference, i: int, j: int, threshold: float | None) -> tuple[int, int]:
        """[start, end) in text i's normalised form: its top window for label j, widened over the adjacent
        windows that also cross the threshold. Harmful content cut by a window boundary makes both windows
        fire, and often the one holding only part of it scores a little higher: the merged span still
        covers it whole."""
        first, last = int(inf.first[i]), int(inf.first[i] + inf.counts[i] - 1)
        lo = hi = int(inf.best[i, j])
        if threshold is not None and last > first:
            window_probs = apply_calibration(inf.window_logits[first : last + 1], self.calibration, self.labels)
            above = window_probs[:, j] >= threshold
            while lo > first and above[lo - 1 - first]:
                lo -= 1
            while hi < last and above[hi + 1 - first]:
                hi += 1
        start = (inf.spans[lo] or (0, 0))[0]
        end = (inf.spans[hi] or (0, 0))[1]
        return start, max(start, end)

    def _infer(self, texts: list[str], want_spans: bool) -> _Inference:
        n_labels = len(self.labels)
        inf = _Inference(
            logits=np.zeros((len(texts), n_labels), dtype=np.float32),
            counts=np.ones(len(texts), dtype=np.int64),
            first=np.zeros(len(texts), dtype=np.int64),
            best=np.zeros((len(texts), n_labels), dtype=np.int64),
            window_logits=np.zeros((0, n_labels), dtype=np.float32),
            spans=[],
        )
        per_chunk = []
        for lo in range(0, len(texts), _CHUNK):
            chunk = [normalize_text(t) for t in texts[lo : lo + _CHUNK]]
            try:
                win = self._tokenizer.encode(chunk, with_spans=want_spans)
            except TooManyWindowsError as exc:
                raise exc.shifted(lo) from None
            win_logits = forward_windows(
                win, self._runner, self.batch_size, self._tokenizer.pad_id, n_labels, self.max_batch_tokens,
                pad_multiple=self.pad_multiple,
            )
            hi, offset = lo + len(chunk), len(inf.spans)
            inf.logits[lo:hi] = np.maximum.reduceat(win_logits, win.first, axis=0)
            inf.counts[lo:hi] = win.counts
            inf.first[lo:hi] = win.first + offset
            inf.best[lo:hi] = win.first[:, None] + offset
            for i in np.flatnonzero(win.counts > 1):
                start = int(win.first[i])
                inf.best[lo + i] = offset + start + np.argmax(win_logits[start : start + win.counts[i]], axis=0)
            inf.spans.extend(win.char_spans)
            per_chunk.append(win_logits)
        if per_chunk:
            inf.window_logits = np.concatenate(per_chunk)
        return inf


@dataclass
class _Inference:
    """What one pass over a list of texts produces (windows are numbered across the whole list)."""

    logits: np.ndarray  # [n, L] max over each text's windows
    counts: np.ndarray  # [n] windows per text
    first: np.ndarray  # [n] index of each text's first window
    best: np.ndarray  # [n, L] index of each text's top window per label
    window_logits: np.ndarray  # [n_windows, L]
    spans: list[tuple[int, int] | None]  # per window: [start, end) in its normalised text, when computed


def _session(bundle: Bundle, variant: str, device: str, threads: int | None, requested: str) -> Any:
    try:
        return create_session(bundle.variant_path(variant), device, threads, requested)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise BundleError(
            f"onnxruntime cannot load {bundle.variant_path(variant)}: {exc}; re-export the bundle"
        ) from None


def _as_texts(texts: Iterable[str] | str) -> list[str]:
    # A bare string is one text, not a sequence of one-character texts.
    items = [texts] if isinstance(texts, str) else list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(f"text #{i} is a {type(t).__name__}, not a str: pass a list of strings")
    return items
