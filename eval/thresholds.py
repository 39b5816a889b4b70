"""Choose per-label operating points on the validation split and report them on test.

Objectives (one for all labels, or one per label):
    f1              the threshold with the best F1
    precision>=P    the most recall whose precision is at least P
    recall>=R       the most precision whose recall is at least R
    fpr<=F          the most recall whose false-positive rate is at most F
Thresholds apply to calibrated probabilities (`HarmClassifier.predict_proba`), so tune after calibrating;
the calibration in force is recorded with them and `harmscan eval` warns when they no longer match.

Prevalence: validation mixes sources at rates that are not a user's traffic. `prevalence={label: p}`
re-weights validation positives by p/π and negatives by (1-p)/(1-π) (π = the validation positive rate)
before choosing, so "precision >= 0.9" means precision at the user's base rate. Recall and FPR do not
depend on the base rate; precision and F1 do.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.classifiers.policy import DEFAULT_THRESHOLD, Policy
from harmscan.errors import InputError
from harmscan.eval.scores import ScoredSplit
from harmscan.eval.tables import AT_THRESHOLD, figures

log = logging.getLogger(__name__)

_NUM = r"(0(?:\.\d+)?|1(?:\.0*)?|\.\d+)"
_OBJECTIVE = re.compile(rf"^(?:(f1)|(precision)\s*>=\s*{_NUM}|(recall)\s*>=\s*{_NUM}|(fpr)\s*<=\s*{_NUM})$")
_LABEL_PREFIX = re.compile(r"^([A-Za-z_]\w*)\s*=\s*(?![=<>])(.+)$")
OBJECTIVE_HELP = "f1 | precision>=P | recall>=R | fpr<=F"


@dataclass(frozen=True)
class Objective:
    kind: str  # "f1" | "precision" | "recall" | "fpr"
    target: float | None = None

    @classmethod
    def parse(cls, text: str) -> Objective:
        m = _OBJECTIVE.match(text.strip().lower().replace(" ", ""))
        if not m:
            raise InputError(f"objective {text!r} is not one of: {OBJECTIVE_HELP} (e.g. precision>=0.9)")
        if m.group(1):
            return cls("f1")
        kind, value = next((m.group(i), m.group(i + 1)) for i in (2, 4, 6) if m.group(i))
        target = float(value)
        if not 0.0 < target <= 1.0 and kind != "fpr":
            raise InputError(f"objective {text!r}: the target must be within (0, 1]")
        return cls(kind, target)

    def __str__(self) -> str:
        if self.kind == "f1":
            return "f1"
        op = "<=" if self.kind == "fpr" else ">="
        return f"{self.kind}{op}{self.target:g}"


def parse_objectives(spec: str | Mapping[str, str] | Objective, labels: Sequence[str]) -> dict[str, Objective]:
    """One objective for all ("f1"), per label ("toxicity=precision>=0.9,violence=f1"), or both mixed
    (a bare objective sets the default for the labels not named). Unnamed labels default to f1."""
    if isinstance(spec, Objective):
        return {name: spec for name in labels}
    if isinstance(spec, Mapping):
        items = [(str(k), str(v)) for k, v in spec.items()]
    else:
        items = []
        for part in (x.strip() for x in str(spec).split(",")):
            if not part:
                continue
            m = _LABEL_PREFIX.match(part)
            items.append((m.group(1), m.group(2)) if m else ("*", part))
    default = Objective("f1")
    chosen: dict[str, Objective] = {}
    for label, text in items:
        if label == "*":
            default = Objective.parse(text)
        elif label not in labels:
            raise InputError(f"--objective names label {label!r}; the bundle's labels are: {', '.join(labels)}")
        else:
            chosen[label] = Objective.parse(text)
    return {name: chosen.get(name, default) for name in labels}


def parse_prevalence(spec: str | float | Mapping[str, float] | None, labels: Sequence[str]) -> dict[str, float]:
    """"0.01" (every label), "toxicity=0.05,violence=0.01", a float or a mapping -> {label: p}."""
    if spec is None or spec == "":
        return {}
    raw: dict[str, Any]
    if isinstance(spec, Mapping):
        raw = dict(spec)
    elif isinstance(spec, int | float):
        raw = {name: spec for name in labels}
    else:
        raw = {}
        for part in (x.strip() for x in str(spec).split(",") if x.strip()):
            name, sep, value = part.partition("=")
            if sep:
                raw[name.strip()] = value
            else:
                raw.update({n: part for n in labels})
    out: dict[str, float] = {}
    for name, value in raw.items():
        if name not in labels:
            raise InputError(f"--prevalence names label {name!r}; the bundle's labels are: {', '.join(labels)}")
        try:
            p = float(value)
        except (TypeError, ValueError):
            raise InputError(f"--prevalence for {name!r} is not a number: {value!r}") from None
        if not 0.0 < p < 1.0:
            raise InputError(f"--prevalence for {name!r} must be a base rate strictly between 0 and 1, got {p}")
        out[name] = p
    return out


def prevalence_weights(y: np.ndarray, target: float | None) -> np.ndarray | None:
    """Row weights that make the weighted positive rate equal `target` (None: no re-weighting)."""
    if target is None:
        return None
    y = np.asarray(y, dtype=np.float64)
    rate = float(y.mean()) if y.size else 0.0
    if not 0.0 < rate < 1.0:
        return None  # one class only: nothing to re-weight
    return np.where(y > 0.5, target / rate, (1.0 - target) / (1.0 - rate))


def operating_curve(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every distinct operating point, from "flag nothing" to "flag everything".

    Point k flags the rows scoring at or above the k-th highest distinct score; its threshold is the
    midpoint to the next lower score, so a small score shift does not flip the validation decisions.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    order = np.argsort(-p, kind="mergesort")
    ps, ys, ws = p[order], y[order], w[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1]
    distinct = ps[starts]
    tp = np.r_[0.0, np.cumsum(np.add.reduceat(ws * ys, starts))]
    fp = np.r_[0.0, np.cumsum(np.add.reduceat(ws * (1 - ys), starts))]
    lower = np.r_[distinct[1:], distinct[-1:]]  # the last point flags everything: its own score
    cut = (distinct + lower) / 2.0
    top = 1.0 if distinct[0] < 1.0 else float(np.nextafter(1.0, 2.0))  # nothing scores above 1
    thresholds = np.r_[min(top, 1.0), cut]
    n_pos, n_neg = tp[-1], fp[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = tp / n_pos if n_pos > 0 else np.full_like(tp, np.nan)
        fpr = fp / n_neg if n_neg > 0 else np.full_like(fp, np.nan)
        f1 = np.where(2 * tp + fp + (n_pos - tp) > 0, 2 * tp / (2 * tp + fp + (n_pos - tp)), np.nan)
    return {"threshold": thresholds, "precision": precision, "recall": recall, "fpr": fpr, "f1": f1}


def choose_threshold(
    y: np.ndarray, p: np.ndarray, objective: Objective, w: np.ndarray | None = None
) -> tuple[float, dict[str, Any]]:
    """(threshold, validation figures at it, incl. `attained`) for one label."""
    c = operating_curve(y, p, w)
    recall, precision, fpr = c["recall"], c["precision"], c["fpr"]
    attained = True
    target = objective.target if objective.target is not None else 0.0
    if objective.kind == "f1":
        k = int(np.nanargmax(c["f1"])) if np.isfinite(c["f1"]).any() else 0
    elif objective.kind == "recall":
        ok = np.flatnonzero(recall >= target - 1e-12)
        k = int(ok[0]) if ok.size else len(recall) - 1  # the highest threshold that reaches it
    else:
        if objective.kind == "precision":
            ok = np.flatnonzero(precision >= target - 1e-12)
        else:
            ok = np.flatnonzero(fpr <= target + 1e-12)
        if ok.size:
            best_recall = np.nanmax(recall[ok]) if np.isfinite(recall[ok]).any() else np.nan
            # the most recall; among equal recall the highest threshold (fewest false positives)
            k = int(ok[0]) if not np.isfinite(best_recall) else int(ok[np.flatnonzero(recall[ok] == best_recall)[0]])
        else:
            attained = False
            k = int(np.nanargmax(precision)) if np.isfinite(precision).any() else 0
    info = {m: _finite(c[m][k]) for m in AT_THRESHOLD}
    info["attained"] = attained
    return float(c["threshold"][k]), info


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def tune_from_scores(
    validation: ScoredSplit,
    test: ScoredSplit | None,
    label_names: Sequence[str],
    objectives: Mapping[str, Objective],
    prevalence: Mapping[str, float] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Thresholds chosen on validation, with validation figures and test figures + bootstrap intervals."""
    prevalence = dict(prevalence or {})
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        "thresholds": {},
        "objective": {n: str(objectives[n]) for n in label_names},
        "chosen_on": "validation",
        "prevalence": prevalence or None,
        "validation": {},
        "test": {},
    }
    if prevalence:
        out["test_at_prevalence"] = {}
    if test is not None:
        out["hard_negative_fpr"] = {}
    for j, name in enumerate(label_names):
        known = validation.mask[:, j]
        y, p = validation.labels[known, j], validation.probs[known, j]
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == y.size:
            log.warning("thresholds: %s has one class only on validation; keeping 0.5", name)
            t, info = 0.5, {"attained": False, "reason": "one class only on validation"}
        else:
            t, info = choose_threshold(y, p, objectives[name], prevalence_weights(y, prevalence.get(name)))
            if not info["attained"]:
                log.warning("thresholds: %s: %s is not reachable on validation; using the best precision",
                            name, objectives[name])
        out["thresholds"][name] = t
        out["validation"][name] = {"n": int(y.size), "n_pos": n_pos, **info}
        if test is None:
            continue
        tk = test.mask[:, j]
        ty, tp = test.labels[tk, j], test.probs[tk, j]
        out["test"][name] = figures(ty, tp, t, n_boot=n_boot, rng=rng, metrics=AT_THRESHOLD)
        if name in prevalence:
            out["test_at_prevalence"][name] = figures(
                ty, tp, t, n_boot=n_boot, rng=rng, metrics=AT_THRESHOLD,
                row_weight=prevalence_weights(ty, prevalence[name]),
            )
        out["hard_negative_fpr"][name] = _hard_negative_fpr(test, j, t, n_boot, rng)
    return out


def _hard_negative_fpr(test: ScoredSplit, j: int, threshold: float, n_boot: int, rng: np.random.Generator) -> dict:
    """FPR on each test source that has no positives for this label (benign and hard-negative sources)."""
    src = np.asarray(test.sources)
    result = {}
    for source in sorted(set(test.sources)):
        rows = test.mask[:, j] & (src == source)
        if rows.any() and not test.labels[rows, j].any():
            f = figures(test.labels[rows, j], test.probs[rows, j], threshold, n_boot=n_boot, rng=rng, metrics=("fpr",))
            result[source] = {"n": f["n"], "fpr": f["fpr"]}
    return result


def tune_thresholds(
    bundle_dir: str | Path,
    dataset_dir: str | Path,
    objective: str | Mapping[str, str] = "f1",
    prevalence: str | float | Mapping[str, float] | None = None,
    policy_out: str | Path | None = None,
    *,
    variant: str = "fp32",  # fitted on the reference graph; int8 is gated against it
    threads: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Choose thresholds on validation; write them into the bundle, or to `policy_out` when given."""
    from harmscan.classifiers import HarmClassifier
    from harmscan.eval.calibrate import calibration_id
    from harmscan.eval.jsonutil import jsonable
    from harmscan.eval.scores import score_split

    clf = HarmClassifier.load(bundle_dir, variant=variant, threads=threads)
    names = list(clf.labels)
    objectives = parse_objectives(objective, names)
    prev = parse_prevalence(prevalence, names)
    val = score_split(clf, dataset_dir, "validation", progress=progress)
    test = score_split(clf, dataset_dir, "test", progress=progress)
    result = tune_from_scores(val, test, names, objectives, prev, n_boot=n_boot, seed=seed)
    result["calibration"] = calibration_id(clf.bundle.calibration)
    result["calibration_method"] = clf.bundle.calibration.get("method", "none")
    result["variant"] = clf.variant
    result["dataset"] = str(Path(dataset_dir))
    stored = _store(jsonable(result), policy_out, clf.bundle)
    if policy_out is None:  # the bundle's operating point is final now: give int8 its verdict at it
        from harmscan.eval.int8_refresh import refresh_int8_gate

        stored["int8_gate"] = refresh_int8_gate(clf.bundle, dataset_dir, threads=threads, progress=progress)
    return stored


def tune_thresholds_on_labels(
    labels_path: str | Path,
    bundle_dir: str | Path | None = None,
    objective: str | Mapping[str, str] = "f1",
    prevalence: str | float | Mapping[str, float] | None = None,
    policy_out: str | Path | None = None,
    *,
    text_field: str = "text",
    variant: str = "fp32",  # fitted on the reference graph; int8 is gated against it
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Choose thresholds on a user's own labelled file (see `harmscan.eval.labelled`), torch-free.

    Its texts are scored with the bundle's ONNX session, or a scan output's scores are used as they are
    (then `bundle_dir` is optional). Same objectives and choice as `tune_thresholds`, on the whole file
    (there is no held-out test split: the figures reported are the file's own). A label without a column
    keeps the bundle's threshold (0.5 without a bundle). Written to `policy_out` (YAML or JSON by suffix),
    else into the bundle.
    """
    from harmscan.classifiers.bundle import Bundle
    from harmscan.eval.calibrate import calibration_id
    from harmscan.eval.jsonutil import jsonable
    from harmscan.eval.labelled import read_labelled
    from harmscan.eval.scores import score_labelled

    bundle = Bundle.load(bundle_dir) if bundle_dir is not None else None
    names = bundle.label_names if bundle is not None else None
    labelled = read_labelled(labels_path, names, text_field=text_field)
    names = labelled.names
    objectives = parse_objectives(objective, names)
    prev = parse_prevalence(prevalence, names)
    clf = None
    if labelled.texts is not None:
        from harmscan.classifiers import HarmClassifier

        if bundle is None:
            raise InputError(f"{labels_path} has texts but no scores: pass --bundle to score them")
        clf = HarmClassifier.load(bundle, variant=variant, threads=threads)
    scored = score_labelled(clf, labelled, progress=progress)
    # Only the labels the file has: one without a column is unknown on every row, nothing to tune on.
    cols = [names.index(n) for n in labelled.present]
    present = ScoredSplit(*(a[:, cols] for a in (scored.probs, scored.labels, scored.mask)), scored.sources,
                          scored.logits[:, cols])
    tuned = tune_from_scores(present, None, labelled.present, objectives, prev)
    kept = bundle.policy.thresholds if bundle is not None else {}
    result = {**tuned, "thresholds": {}, "objective": {}, "validation": {}}
    for name in names:
        if name in labelled.present:
            for key in ("thresholds", "objective", "validation"):
                result[key][name] = tuned[key][name]
        else:
            result["thresholds"][name] = float(kept.get(name, DEFAULT_THRESHOLD))
            result["objective"][name] = "kept"
            result["validation"][name] = {"n": 0, "n_pos": 0, "attained": False,
                                          "reason": f"no '{name}' column in {labelled.path.name}: threshold kept"}
    result["chosen_on"] = str(labelled.path)
    result["scores_from"] = "bundle" if clf is not None else "file"
    if clf is not None:
        result["calibration"] = calibration_id(clf.bundle.calibration)
        result["calibration_method"] = clf.bundle.calibration.get("method", "none")
        result["variant"] = clf.variant
    if policy_out is None and bundle is None:
        raise InputError("nowhere to write the thresholds: pass -o policy.yaml (or --bundle to update it)")
    return _store(jsonable(result), policy_out, bundle)


def _store(result: dict[str, Any], policy_out: str | Path | None, bundle: Any) -> dict[str, Any]:
    """Write the chosen thresholds to a policy file, or into the bundle's manifest; -> result + written_to."""
    policy = Policy(dict(result["thresholds"]), {k: v for k, v in result.items() if k != "thresholds"})
    if policy_out is not None:
        out = Path(policy_out)
        try:
            if out.suffix.lower() in (".yaml", ".yml"):  # `scan --policy` reads either, by suffix
                import yaml

                out.write_text(yaml.safe_dump(policy.to_dict(), sort_keys=False), encoding="utf-8")
            else:
                policy.save(out)
        except OSError as exc:
            raise InputError(f"cannot write policy file {policy_out}: {exc.strerror}") from None
        result["written_to"] = str(policy_out)
    else:
        bundle.update(thresholds=policy.to_dict())
        result["written_to"] = str(Path(bundle.path) / "harmscan.json")
    return result
