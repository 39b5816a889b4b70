"""The int8 variant's task-level parity gate: does int8 rank, calibrate and flag like fp32?

A worst-case |Δp| is the wrong contract for a quantised model: near a steep sigmoid a few texts always
swing (max |Δp| 0.27-0.43 on every trained model), while what a user relies on is ranking and decisions.
So the gate (the owner's decision in issue 21) compares int8 with the fp32 ONNX graph on the same
validation texts, at the bundle's calibration and thresholds:
- per label, AUPRC within 0.005 of fp32's and ECE within 0.01 of fp32's (labels known on validation);
- identical flags on at least 99% of (text, label) pairs;
- on external benign texts, when given: an any-head false-positive rate at most 0.2 points above fp32's.
Max, p99 and mean |Δp| are measured and recorded, not gated. Without labels (the built-in parity texts)
ranking and calibration cannot be measured: the earlier element-wise limit (max |Δp| <= 0.02) stands in,
so an unlabelled check never ships something a labelled one would have refused more easily.

`evaluate_gate` is the pure function; `gate_record` turns its result into the manifest's
`variants.int8.parity`. Flags and ECE depend on the calibration and thresholds, so the record says which
ones it was measured under; `Bundle.update` marks it `pending` when either changes, and
`harmscan.eval.int8_refresh.refresh_int8_gate` (run by `harmscan thresholds`) measures it again on the
dataset's validation split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harmscan.classifiers import binary_metrics as bm

LIMITS: dict[str, float] = {
    "auprc_abs_diff": 0.005,
    "ece_abs_diff": 0.01,
    "min_flag_agreement": 0.99,
    "benign_fpr_rise": 0.002,  # 0.2 points
    "unlabelled_max_abs_diff": 0.02,  # the stand-in when no label can be measured
}
STATUSES = ("passed", "failed", "pending")
N_BINS = 15


@dataclass(frozen=True)
class Criterion:
    """One line of the gate: `passed` is None when it could not be measured (and so does not count)."""

    value: float | None
    limit: float
    passed: bool | None
    note: str = ""


@dataclass(frozen=True)
class LabelFigures:
    n: int
    n_pos: int
    auprc_fp32: float | None
    auprc_int8: float | None
    ece_fp32: float | None
    ece_int8: float | None


@dataclass(frozen=True)
class GateResult:
    """Every figure of one gate evaluation and the verdict per criterion."""

    labels: dict[str, LabelFigures]
    criteria: dict[str, Criterion]
    max_abs_diff: float
    p99_abs_diff: float
    mean_abs_diff: float
    flag_agreement: float  # share of (text, label) pairs flagged alike
    text_flag_agreement: float  # share of texts with every label flagged alike
    decision_agreement: float  # share of texts with the same any-label decision
    texts: int
    thresholds: dict[str, float]
    benign_rows: int = 0
    benign_fpr_fp32: float | None = None
    benign_fpr_int8: float | None = None
    labelled: bool = field(default=True)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.criteria.values()) and any(
            c.passed is not None for c in self.criteria.values()
        )

    def failures(self) -> list[str]:
        return [describe(name, c) for name, c in self.criteria.items() if c.passed is False]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_gate(
    fp32: np.ndarray,
    int8: np.ndarray,
    label_names: Sequence[str],
    thresholds: Mapping[str, float],
    labels: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    *,
    benign_fp32: np.ndarray | None = None,
    benign_int8: np.ndarray | None = None,
    benign_negative: np.ndarray | None = None,
    limits: Mapping[str, float] = LIMITS,
) -> GateResult:
    """The gate on calibrated probabilities [n, L] of fp32 and int8 for the same texts.

    `labels` (0/1) and `mask` (True where known) [n, L] enable the AUPRC / ECE criteria. `benign_*`: the
    probabilities [m, L] of both variants on benign texts, with `benign_negative` [m, L] True where the
    head is known to be 0 (any-head FPR counts a row once when any of those heads is flagged).
    """
    fp32, int8 = np.asarray(fp32, dtype=np.float64), np.asarray(int8, dtype=np.float64)
    names = list(label_names)
    if fp32.shape != int8.shape or fp32.ndim != 2 or fp32.shape[1] != len(names):
        raise ValueError(f"fp32 {fp32.shape} and int8 {int8.shape} must both be [texts, {len(names)}]")
    tvec = np.asarray([float(thresholds[n]) for n in names])
    diff = np.abs(int8 - fp32)
    f32, f8 = fp32 >= tvec, int8 >= tvec
    same = f32 == f8
    criteria: dict[str, Criterion] = {}
    per_label: dict[str, LabelFigures] = {}
    labelled = labels is not None
    if labels is not None:
        y_all = np.asarray(labels) > 0.5
        known_all = np.ones_like(y_all, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        for j, name in enumerate(names):
            known = known_all[:, j]
            y = y_all[known, j]
            n_pos = int(y.sum())
            figs = LabelFigures(int(y.size), n_pos, None, None, None, None)
            if 0 < n_pos < y.size:
                a32, a8 = float(bm.average_precision(y, fp32[known, j])), float(bm.average_precision(y, int8[known, j]))
                e32, e8 = float(bm.ece(y, fp32[known, j], N_BINS)), float(bm.ece(y, int8[known, j], N_BINS))
                figs = LabelFigures(int(y.size), n_pos, a32, a8, e32, e8)
                criteria[f"auprc:{name}"] = _within(abs(a8 - a32), limits["auprc_abs_diff"])
                criteria[f"ece:{name}"] = _within(abs(e8 - e32), limits["ece_abs_diff"])
            else:
                why = f"{n_pos} positives among {y.size} known rows: not measurable"
                criteria[f"auprc:{name}"] = Criterion(None, limits["auprc_abs_diff"], None, why)
                criteria[f"ece:{name}"] = Criterion(None, limits["ece_abs_diff"], None, why)
            per_label[name] = figs
    flag_agreement = float(same.mean()) if same.size else 1.0
    criteria["flag_agreement"] = Criterion(flag_agreement, limits["min_flag_agreement"],
                                           flag_agreement >= limits["min_flag_agreement"])
    if not any(c.passed is not None for k, c in criteria.items() if k.startswith(("auprc:", "ece:"))):
        # Nothing says whether ranking survived quantisation: keep the element-wise contract instead.
        worst = float(diff.max()) if diff.size else 0.0
        criteria["max_abs_diff"] = Criterion(worst, limits["unlabelled_max_abs_diff"],
                                             worst <= limits["unlabelled_max_abs_diff"],
                                             "stands in for AUPRC/ECE: no label measurable on these texts")
    benign = _benign_rates(benign_fp32, benign_int8, benign_negative, tvec)
    if benign is not None:
        rise = benign[2] - benign[1]
        criteria["benign_fpr"] = Criterion(rise, limits["benign_fpr_rise"], rise <= limits["benign_fpr_rise"])
    return GateResult(
        labels=per_label,
        criteria=criteria,
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        p99_abs_diff=float(np.quantile(diff, 0.99)) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        flag_agreement=flag_agreement,
        text_flag_agreement=float(same.all(axis=1).mean()) if same.size else 1.0,
        decision_agreement=float((f32.any(axis=1) == f8.any(axis=1)).mean()) if same.size else 1.0,
        texts=int(fp32.shape[0]),
        thresholds={n: float(t) for n, t in zip(names, tvec, strict=True)},
        benign_rows=benign[0] if benign else 0,
        benign_fpr_fp32=benign[1] if benign else None,
        benign_fpr_int8=benign[2] if benign else None,
        labelled=labelled,
    )


def _within(value: float, limit: float) -> Criterion:
    return Criterion(float(value), float(limit), bool(value <= limit))


def _benign_rates(
    p32: np.ndarray | None, p8: np.ndarray | None, negative: np.ndarray | None, tvec: np.ndarray
) -> tuple[int, float, float] | None:
    if p32 is None or p8 is None or negative is None:
        return None
    neg = np.asarray(negative, dtype=bool)
    rows = neg.any(axis=1)
    if not rows.any():
        return None
    rate32 = float(((np.asarray(p32) >= tvec) & neg)[rows].any(axis=1).mean())
    rate8 = float(((np.asarray(p8) >= tvec) & neg)[rows].any(axis=1).mean())
    return int(rows.sum()), rate32, rate8


def describe(name: str, c: Criterion) -> str:
    """'ece:violence |Δ| 0.031 (limit 0.01)' for one criterion, as error messages and the CLI show it."""
    if name == "flag_agreement":
        return f"identical flags {c.value:.2%} (need ≥ {c.limit:.0%})"
    if name == "benign_fpr":
        return f"benign any-head FPR +{(c.value or 0) * 100:.2f} points over fp32 (limit +{c.limit * 100:.1f})"
    if name == "max_abs_diff":
        return f"max |Δp| {c.value:.3g} on unlabelled texts (limit {c.limit:g})"
    kind, _, label = name.partition(":")
    return f"{label} {kind.upper()} |Δ| {c.value:.4f} vs fp32 (limit {c.limit:g})"


# -- the manifest record ---------------------------------------------------------------------------------
def operating_point_id(calibration: Mapping[str, Any], thresholds: Mapping[str, Any]) -> str:
    """A short id of what flags and ECE depend on: the calibration map and the threshold values."""
    core = {
        "calibration": {"method": calibration.get("method", "none"), "per_label": calibration.get("per_label", {})},
        "thresholds": {k: float(v) for k, v in (thresholds.get("thresholds") or {}).items()},
    }
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:12]


def gate_record(result: GateResult, *, source: str, manifest: Mapping[str, Any], provider: str = "") -> dict[str, Any]:
    """`variants.int8.parity` in the manifest: every figure, the criteria, the verdict and its basis.
    `passed` (read by `HarmClassifier.load`) is true only for a final pass."""
    status = "passed" if result.passed else "failed"
    return {
        "gate": "task-level",
        "status": status,
        "passed": status == "passed",
        "reference": "onnx fp32",
        "validation": source,
        **result.to_dict(),
        "failures": result.failures(),
        "limits": dict(LIMITS),
        "measured_under": operating_point_id(manifest.get("calibration") or {}, manifest.get("thresholds") or {}),
        "provider": provider,
    }


def gate_status(parity: Mapping[str, Any] | None) -> str:
    """passed / failed / pending of a variant's parity record; records from before the task-level gate
    carry only `passed`, decided then by the stricter element-wise gate."""
    parity = parity or {}
    status = parity.get("status")
    if status in STATUSES:
        return str(status)
    return "passed" if parity.get("passed", True) else "failed"


def summary(parity: Mapping[str, Any]) -> str:
    """One line of figures for errors and logs: the failed criteria first, then the |Δp| tail."""
    figs = (f"identical flags {parity.get('flag_agreement', float('nan')):.2%}, "
            f"max |Δp| {parity.get('max_abs_diff', float('nan')):.3g}, "
            f"p99 {parity.get('p99_abs_diff', float('nan')):.3g} on {parity.get('texts', '?')} texts")
    failures = parity.get("failures") or []
    return f"{'; '.join(failures)} ({figs})" if failures else figs
