"""`evaluate_bundle`: score a bundle on its external sources, a dataset split, benchmarks, the identity audit
and the suite, and write report.json / report.md / report.html.

External sources (never trained on: `harmscan.eval.external`) come first, in the report and the headline:
model and recipe decisions are made on them, not on in-domain splits that share their sources with training.

One threshold set everywhere: the policy is the bundle's (or a policy file, or the bundle's with
overrides), loaded into the HarmClassifier exactly as `scan` and `serve` load it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.classifiers.calibration import sigmoid
from harmscan.classifiers.policy import Policy, parse_overrides
from harmscan.errors import DataError, InputError
from harmscan.eval import binary_metrics as bm
from harmscan.eval import plots
from harmscan.eval.render_report import write_report
from harmscan.eval.scores import ScoredSplit
from harmscan.eval.tables import ALL_SOURCES, label_source_table

log = logging.getLogger(__name__)


# The name eval's callers have used for the one `--thresholds` parser.
parse_threshold_overrides = parse_overrides


def dataset_sections(
    scored: ScoredSplit,
    label_names: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    calibrated: bool,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, list[tuple[str, str]]]]:
    """Summary, per label x source table, calibration figures and every per-label image of one split."""
    names = list(label_names)
    tvec = [float(thresholds[n]) for n in names]
    table = label_source_table(
        scored.probs, scored.labels, scored.mask, scored.sources, names, tvec, n_boot=n_boot, seed=seed,
        progress=progress,
    )
    part: dict[str, Any] = {
        "summary": {n: table[n][ALL_SOURCES] for n in names if ALL_SOURCES in table[n]},
        "per_source": table,
    }
    raw = sigmoid(scored.logits)
    images: dict[str, list[tuple[str, str]]] = {"curves": [], "reliability": [], "histograms": [],
                                                 "threshold-curves": []}
    cal_rows: dict[str, Any] = {}
    for j, name in enumerate(names):
        known = scored.mask[:, j]
        if not known.any():
            continue
        y, p = scored.labels[known, j].astype(np.float64), scored.probs[known, j].astype(np.float64)
        before = raw[known, j] if calibrated else None
        cal_rows[name] = {
            "n": int(y.size), "positive_rate": float(y.mean()),
            "ece_before": bm.ece(y, raw[known, j]), "ece_after": bm.ece(y, p),
            "brier_before": bm.brier(y, raw[known, j]), "brier_after": bm.brier(y, p),
        }
        images["curves"].append((f"{name}: precision-recall and ROC", plots.pr_roc(y, p, tvec[j], name)))
        images["reliability"].append((f"{name}: reliability", plots.reliability(y, p, name, p_before=before)))
        images["histograms"].append((f"{name}: scores by class", plots.histogram(y, p, tvec[j], name)))
        images["threshold-curves"].append(
            (f"{name}: precision / recall / FPR vs threshold", plots.threshold_curves(y, p, tvec[j], name))
        )
    if calibrated:
        part["calibration"] = {"per_label": cal_rows}
    else:
        part["calibration"] = {"per_label": {
            n: {k: v for k, v in r.items() if not k.endswith("_before")} for n, r in cal_rows.items()
        }}
    return part, images


def headline(report: Mapping[str, Any]) -> dict[str, Any]:
    """External figures first (worst any-head FPR on benign external rows, AUPRC per source and head), then
    a few numbers per label and the suite / audit / benchmark headlines, for the caller to print."""
    from harmscan.eval.external import headline_figures

    out: dict[str, Any] = headline_figures(report.get("external"))
    for label, fig in (report.get("summary") or {}).items():
        out[label] = {k: (fig.get(k) or {}).get("value") for k in ("roc_auc", "auprc", "precision", "recall", "fpr",
                                                                     "ece")}
    suite = report.get("suite") or {}
    if suite.get("overall"):
        out["suite_pass_rate"] = suite["overall"].get("pass_rate")
    audit = report.get("identity_audit") or {}
    if audit.get("overall_held_out"):
        out["identity_audit_fpr_held_out"] = audit["overall_held_out"]["fpr_any"]["value"]
    for bench in report.get("benchmarks") or []:
        out[f"benchmark:{bench['name']}"] = {
            k: (bench["overall"].get(k) or {}).get("value") if isinstance(bench["overall"].get(k), dict)
            else bench["overall"].get(k)
            for k in ("recall_unsafe", "fpr_safe", "accuracy", "any_harm_auprc") if k in bench["overall"]
        }
    return out


def _headline_lines(head: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in head.items():
        if isinstance(value, dict):
            cells = ", ".join(f"{k} {v:.3f}" for k, v in value.items() if isinstance(v, float))
            lines.append(f"{key}: {cells}")
        elif isinstance(value, float):
            lines.append(f"{key}: {value:.3f}")
    return lines


def evaluate_bundle(
    bundle_dir: str | Path,
    dataset_dir: str | Path | None = None,
    out_dir: str | Path = "artifacts/report",
    policy: Policy | str | Path | None = None,
    suite: bool = False,
    benchmark: str | Sequence[str] | None = None,
    benchmark_path: str | Path | Sequence[str | Path] | None = None,
    *,
    split: str = "test",
    data_dir: str | Path | None = None,
    audit: bool = True,
    thresholds: Mapping[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    variant: str = "auto",
    threads: int | None = None,
    progress: bool = True,
    external_sources: str | Sequence[Any] | None = None,
    external: bool = True,
) -> dict[str, Any]:
    """Evaluate a bundle and write report.json, report.md and report.html into out_dir.

    External sources: `external_sources` ('a,b:2000' or ExternalSpecs) when given, else those the dataset's
    recipe names (its harmscan_data.json); read from `data_dir`. `external=False` turns them off.
    Returns {"paths": {json, markdown, html}, "headline": {...}, "headline_lines": [...]}.
    """
    from harmscan.classifiers import HarmClassifier
    from harmscan.eval.calibrate import calibration_id

    started = time.monotonic()
    benches = _pair_benchmarks(benchmark, benchmark_path)
    ext_specs, ext_origin, data_summary = _external_specs(external_sources, dataset_dir, external)
    clf = HarmClassifier.load(bundle_dir, variant=variant, threads=threads)
    names = list(clf.labels)
    pol = Policy.resolve(policy, names, thresholds, default=clf.policy)
    pol_source = "bundle" if policy is None else "given" if isinstance(policy, Policy) else str(policy)
    clf.policy = pol  # the behavioural suite reads the classifier's policy: the same thresholds everywhere
    cal = clf.bundle.calibration
    report: dict[str, Any] = {
        "title": "harmscan evaluation report",
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "bundle": {
            "path": str(bundle_dir), "base_model": clf.bundle.info.base_model,
            "variant": clf.variant, "providers": list(clf.providers), "fingerprint": clf.bundle.fingerprint,
            "calibration_method": clf.bundle.info.calibration_method, "labels": names,
            "harmscan_version": clf.bundle.info.harmscan_version,
        },
        "policy": {"source": pol_source, "thresholds": dict(pol.thresholds), "meta": dict(pol.meta)},
        "int8_gate": clf.bundle.info.parity("int8"),
        "warnings": [],
        "skipped": {},
    }
    tuned_under = pol.meta.get("calibration")
    if tuned_under is not None and tuned_under != calibration_id(cal):
        report["warnings"].append(
            "the thresholds were chosen under a different calibration than the bundle now has: "
            "rerun `harmscan thresholds`"
        )
    _run_external(report, clf, pol, ext_specs, ext_origin, data_summary, data_dir, external, n_boot, seed,
                  progress)
    images: dict[str, list[tuple[str, str]]] = {}
    train_texts: list[str] | None = None
    dataset_sids = ("summary", "per-source", "curves", "reliability", "histograms", "threshold-curves")
    if dataset_dir is not None:
        from harmscan.eval.scores import load_split, score_split

        scored = score_split(clf, dataset_dir, split, progress=progress)
        report["dataset"] = {"path": str(dataset_dir), "split": split, "n": int(scored.probs.shape[0])}
        part, images = dataset_sections(
            scored, names, pol.thresholds, calibrated=cal.get("method", "none") != "none", n_boot=n_boot,
            seed=seed, progress=progress,
        )
        report.update(part)
        try:
            train_texts = list(load_split(dataset_dir, "train")["text"])
        except DataError:
            train_texts = None
    else:
        for sid in dataset_sids:
            report["skipped"][sid] = "no dataset given (--data)"

    _run_audit(report, clf, pol, data_dir if audit else None, train_texts, audit, progress)
    _run_suite(report, clf, suite, progress)
    if benches:
        from harmscan.eval.public_benchmarks import run_benchmark

        report["benchmarks"] = [
            run_benchmark(clf, name, path, pol.thresholds, n_boot=n_boot, progress=progress) for name, path in benches
        ]
    else:
        report["skipped"]["benchmarks"] = "no benchmark given (--benchmark NAME --path FILE)"
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    paths = write_report(report, images, out_dir)
    head = headline(report)
    return {"paths": paths, "headline": head, "headline_lines": _headline_lines(head),
            "warnings": report["warnings"]}


def _pair_benchmarks(
    benchmark: str | Sequence[str] | None, path: str | Path | Sequence[str | Path] | None
) -> list[tuple[str, Path]]:
    if benchmark is None:
        return []
    names = [benchmark] if isinstance(benchmark, str) else list(benchmark)
    paths = [path] if isinstance(path, str | Path) else list(path or [])
    if len(names) != len(paths):
        raise InputError("give one benchmark file per benchmark (--benchmark NAME --path FILE, repeated)")
    from harmscan.eval.public_benchmarks import ALIASES, LOADERS

    for name, path in zip(names, paths, strict=True):  # fail before the (slow) dataset scoring
        if ALIASES.get(name.lower(), name.lower()) not in LOADERS:
            raise InputError(f"unknown benchmark {name!r}: use one of {', '.join(LOADERS)}")
        if not Path(path).is_file():
            raise InputError(f"benchmark file {path} does not exist: pass the published file with --path")
    return [(n, Path(p)) for n, p in zip(names, paths, strict=True)]


def _external_specs(
    given: str | Sequence[Any] | None, dataset_dir: str | Path | None, enabled: bool
) -> tuple[list[Any], str, dict[str, Any] | None]:
    """(specs, origin, dataset summary): checked before any slow scoring."""
    import json

    from harmscan.eval.external import check_names, parse_external_sources, specs_from_summary
    from harmscan.training.recipe import ExternalSpec

    summary: dict[str, Any] | None = None
    if dataset_dir is not None:
        path = Path(dataset_dir) / "harmscan_data.json"
        try:
            summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, ValueError):
            summary = None  # score_split reports an unreadable dataset in its own words
    if not enabled:
        return [], "disabled", summary
    if given is not None:
        specs = parse_external_sources(given) if isinstance(given, str) else [
            s if isinstance(s, ExternalSpec) else ExternalSpec(str(s)) for s in given
        ]
        check_names(specs)
        return specs, "given", summary
    return specs_from_summary(summary or {}), "recipe", summary


def _run_external(
    report: dict[str, Any], clf: Any, pol: Policy, specs: Sequence[Any], origin: str,
    data_summary: Mapping[str, Any] | None, data_dir: str | Path | None, enabled: bool, n_boot: int, seed: int,
    progress: bool,
) -> None:
    from harmscan.eval.external import run_external

    if not enabled:
        report["skipped"]["external"] = "disabled (--no-external)"
        return
    section, why, warnings = run_external(
        clf, specs, data_dir, pol.thresholds, origin=origin, dataset_summary=data_summary, n_boot=n_boot,
        seed=seed, progress=progress,
    )
    report["warnings"].extend(warnings)
    if section is None:
        report["skipped"]["external"] = why
    else:
        report["external"] = section


def _run_audit(
    report: dict[str, Any], clf: Any, pol: Policy, data_dir: str | Path | None, train_texts: list[str] | None,
    enabled: bool, progress: bool,
) -> None:
    from harmscan.eval.identity_audit import AUDIT_SOURCE, identity_audit

    if not enabled:
        report["skipped"]["identity-audit"] = "disabled"
        return
    try:
        from harmscan.training.datadir import resolve_data_dir

        root = resolve_data_dir(data_dir, must_exist=False)
    except ImportError:  # pragma: no cover - the training package ships with harmscan
        root = Path(data_dir) if data_dir else None
    if root is None or not (root / AUDIT_SOURCE).is_dir():
        report["skipped"]["identity-audit"] = (
            f"the {AUDIT_SOURCE} source is not in the data directory ({root}): pass --data-dir or run "
            f"`harmscan data fetch {AUDIT_SOURCE}`"
        )
        return
    try:
        report["identity_audit"] = identity_audit(clf, root, pol.thresholds, train_texts=train_texts,
                                                  progress=progress)
    except (ImportError, AttributeError) as exc:  # the data registry is missing or older
        report["skipped"]["identity-audit"] = f"the data registry cannot read {AUDIT_SOURCE} ({exc})"


def _run_suite(report: dict[str, Any], clf: Any, enabled: bool, progress: bool) -> None:
    if not enabled:
        report["skipped"]["suite"] = "not requested (--suite)"
        return
    try:
        from harmscan.eval.suite import evaluate_suite
    except ImportError as exc:
        report["skipped"]["suite"] = f"the behavioural suite is not available ({exc})"
        return
    result = evaluate_suite(clf, split="test", progress=progress)
    report["suite"] = result
