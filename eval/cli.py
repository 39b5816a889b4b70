"""CLI: `harmscan eval`, `harmscan calibrate`, `harmscan thresholds`, `harmscan redteam`. Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_ARTIFACTS = Path(os.environ.get("HARMSCAN_ARTIFACTS", "artifacts"))
OBJECTIVE_HELP = (
    "f1 | precision>=P | recall>=R | fpr<=F, for every label, or per label: "
    "'toxicity=precision>=0.9,violence=f1' (a bare objective sets the default; unnamed labels get f1)"
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True, help="a bundle folder written by `harmscan export`")
    p.add_argument("--variant", default="auto", choices=["auto", "fp32", "int8", "fp16"], help="model variant")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a bundle on a built dataset and/or a public benchmark: JSON, Markdown and HTML report",
    )
    _common(p)
    p.add_argument("--data", type=Path, help="a dataset built by `harmscan data build` (evaluates its test split)")
    p.add_argument("--split", default="test", help="dataset split to evaluate (default: test)")
    p.add_argument("-o", "--output", type=Path, help="report folder (default: artifacts/report)")
    p.add_argument("--policy", type=Path, help="a threshold policy file (default: the bundle's thresholds)")
    p.add_argument("--thresholds", help="override thresholds: 'toxicity=0.7,violence=0.4'")
    p.add_argument("--suite", action="store_true", help="add the behavioural test suite to the report")
    p.add_argument(
        "--benchmark", action="append", default=[],
        help="a public benchmark: openai_moderation, xstest, hatecheck, harmbench, simplesafetytests "
        "(repeat with one --path each)",
    )
    p.add_argument("--path", action="append", default=[], type=Path, help="the benchmark's published file")
    p.add_argument(
        "--data-dir",
        help="data sources for the external sources and the identity-term audit (default: $HARMSCAN_DATA_DIR, "
        "if present)",
    )
    ext = p.add_mutually_exclusive_group()
    ext.add_argument(
        "--external-sources",
        help="score these whole sources, never trained on, first in the report: 'gsm8k,banking77:2000' "
        "(NAME:CAP scores a fixed subsample; default: the sources the dataset's recipe lists under external:; "
        "needs no --data)",
    )
    ext.add_argument("--no-external", action="store_true", help="skip the external sources")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "calibrate",
        help="fit per-label calibration into the bundle, on a built dataset's validation split or on your own labels",
    )
    _tuning_common(p, bundle_required=True)
    p.add_argument("--method", default="temperature", choices=["temperature", "isotonic"],
                   help="temperature (Platt: p = sigmoid(z/T + b), default) or isotonic (needs harmscan[train])")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser(
        "thresholds",
        help="choose per-label thresholds on a built dataset's validation split (reported on test) or on your "
        "own labels",
    )
    _tuning_common(p, bundle_required=False)
    p.add_argument("--objective", default="f1", help=OBJECTIVE_HELP)
    p.add_argument(
        "--prevalence",
        help="your traffic's base rate, one number for all labels or 'toxicity=0.05,violence=0.005': "
        "validation is re-weighted to it before a precision or F1 operating point is chosen",
    )
    p.add_argument("-o", "--policy-out", type=Path,
                   help="write a policy file (.yaml or .json) for `scan --policy` / `serve --policy` instead of "
                   "updating the bundle")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    p.set_defaults(func=_thresholds)

    _register_redteam(sub)


LABELS_HELP = (
    "your own labelled file instead of --data: CSV / TSV / JSONL / Parquet with a text column and one 0/1 "
    "column per label (empty = unknown; a label without a column is left as it is), or a `harmscan scan` "
    "output joined with such columns (its scores are then used, no model runs). Needs only the base install"
)


def _tuning_common(p: argparse.ArgumentParser, bundle_required: bool) -> None:
    """`calibrate` and `thresholds`: a built dataset (--data) or the user's labels (--labels)."""
    p.add_argument(
        "--bundle", type=Path, required=bundle_required,
        help="a bundle folder written by `harmscan export`"
        + ("" if bundle_required else " (optional with --labels when the file carries a scan's scores)"),
    )
    p.add_argument(
        "--variant", default="fp32", choices=["fp32", "int8", "fp16"],
        help="model variant to fit on (default: fp32, the reference every other variant's gate is measured against)",
    )
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="built dataset (default: the one the quickstart builds)")
    source.add_argument("--labels", type=Path, metavar="FILE", help=LABELS_HELP)
    p.add_argument("--text-field", default="text", help="with --labels: the column holding the text (default: text)")


def _dataset(args: argparse.Namespace) -> Path:
    from harmscan.errors import InputError

    if args.data:
        return Path(args.data)
    default = DEFAULT_ARTIFACTS / "data" / "default"
    if (default / "dataset_dict.json").is_file():
        return default
    raise InputError(f"--data is required: pass the folder `harmscan data build -o` wrote (no {default})")


def _print(obj: Any) -> None:
    from harmscan.eval.jsonutil import jsonable

    print(json.dumps(jsonable(obj), indent=2))


def _calibrate(args: argparse.Namespace) -> int:
    from harmscan.eval.calibrate import calibrate_bundle, calibrate_on_labels

    if args.labels:
        result = calibrate_on_labels(
            args.bundle, args.labels, args.method, text_field=args.text_field, variant=args.variant,
            threads=args.threads, progress=not args.no_progress,
        )
        print(f"calibration ({args.method}, fitted on {args.labels}) written to {args.bundle / 'harmscan.json'}")
        _print_calibration(result["in_sample"], "on the labels file (in-sample)")
        for name in result["kept"]:
            print(f"{name}: no column in {args.labels}: its calibration is kept")
        for name, why in result["skipped"].items():
            print(f"{name}: left uncalibrated ({why})")
        return 0
    result = calibrate_bundle(
        args.bundle, _dataset(args), args.method, variant=args.variant, threads=args.threads,
        progress=not args.no_progress,
    )
    print(f"calibration ({args.method}, fitted on validation) written to {args.bundle / 'harmscan.json'}")
    _print_calibration(result["test"], "on test")
    for name, why in result["skipped"].items():
        print(f"{name}: left uncalibrated ({why})")
    return 0


def _print_calibration(rows: dict[str, dict[str, float]], where: str) -> None:
    print(f"{'label':<16}{'pos rate':>9}{'ECE before':>12}{'ECE after':>11}{'Brier before':>14}{'Brier after':>13}"
          f"  ({where})")
    for name, r in rows.items():
        print(
            f"{name:<16}{r['positive_rate']:>9.3f}{r['ece_before']:>12.4f}{r['ece_after']:>11.4f}"
            f"{r['brier_before']:>14.4f}{r['brier_after']:>13.4f}"
        )


def _thresholds(args: argparse.Namespace) -> int:
    from harmscan.errors import InputError
    from harmscan.eval.thresholds import tune_thresholds, tune_thresholds_on_labels

    if args.labels:
        result = tune_thresholds_on_labels(
            args.labels, args.bundle, objective=args.objective, prevalence=args.prevalence,
            policy_out=args.policy_out, text_field=args.text_field, variant=args.variant, threads=args.threads,
            progress=not args.no_progress,
        )
        print(f"thresholds chosen on {args.labels} ({result['scores_from']} scores), written to "
              f"{result['written_to']}")
        print(f"{'label':<16}{'objective':<18}{'threshold':>10}  rows / positives, precision / recall / FPR there")
        for name, t in result["thresholds"].items():
            v = result["validation"][name]
            if not v.get("n"):
                print(f"{name:<16}{'-':<18}{t:>10.4f}  {v.get('reason', '')}")
                continue
            there = " / ".join(_fmt(v.get(m)) for m in ("precision", "recall", "fpr"))
            note = "" if v.get("attained", True) else "  (objective not reached)"
            print(f"{name:<16}{result['objective'][name]:<18}{t:>10.4f}  {v['n']} / {v['n_pos']}, {there}{note}")
        return 0
    if args.bundle is None:
        raise InputError("--bundle is required (without --labels, thresholds are chosen by scoring a dataset)")
    result = tune_thresholds(
        args.bundle, _dataset(args), objective=args.objective, prevalence=args.prevalence,
        policy_out=args.policy_out, variant=args.variant, threads=args.threads, n_boot=args.bootstrap,
        progress=not args.no_progress,
    )
    print(f"thresholds chosen on validation, written to {result['written_to']}")
    print(f"{'label':<16}{'objective':<18}{'threshold':>10}  test precision / recall / FPR (95% CI)")
    for name, t in result["thresholds"].items():
        test = result["test"].get(name, {})
        cells = []
        for m in ("precision", "recall", "fpr"):
            f = test.get(m) or {}
            v, ci = f.get("value"), f.get("ci95") or [None, None]
            cells.append("n/a" if v is None else f"{v:.3f} [{_fmt(ci[0])}, {_fmt(ci[1])}]")
        note = "" if result["validation"][name].get("attained", True) else "  (objective not reached)"
        print(f"{name:<16}{result['objective'][name]:<18}{t:>10.4f}  {' / '.join(cells)}{note}")
    return 0


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _eval(args: argparse.Namespace) -> int:
    from harmscan.errors import DataError, InputError
    from harmscan.eval.evaluate import evaluate_bundle

    if len(args.benchmark) != len(args.path):
        raise InputError("give one --path per --benchmark (e.g. --benchmark xstest --path xstest_prompts.csv)")
    if not args.data and not args.benchmark and not args.suite and not args.external_sources:
        raise InputError(
            "nothing to evaluate: pass --data DATASET, --benchmark NAME --path FILE, --suite or --external-sources"
        )
    external_only = bool(args.external_sources) and not (args.data or args.benchmark or args.suite)
    if external_only:  # the data dir is all there is to read: say so before loading the bundle
        from harmscan.training.datadir import resolve_data_dir

        resolve_data_dir(args.data_dir)
    thresholds = None
    if args.thresholds:
        from harmscan.classifiers.policy import parse_overrides

        thresholds = parse_overrides(args.thresholds)
    result = evaluate_bundle(
        args.bundle, args.data, out_dir=args.output or DEFAULT_ARTIFACTS / "report", policy=args.policy,
        suite=args.suite, benchmark=args.benchmark or None, benchmark_path=args.path or None,
        split=args.split, data_dir=args.data_dir, n_boot=args.bootstrap, variant=args.variant,
        threads=args.threads, thresholds=thresholds, progress=not args.no_progress,
        external_sources=args.external_sources, external=not args.no_external,
    )
    if external_only and not any(k.startswith("external:") for k in result["headline"]):
        why = json.loads(Path(result["paths"]["json"]).read_text(encoding="utf-8"))["skipped"].get("external")
        raise DataError(f"external validation did not run: {why}")
    for line in result.get("headline_lines", []):
        print(line)
    for kind, path in result["paths"].items():
        print(f"{kind}: {path}")
    return 0


def _register_redteam(sub: argparse._SubParsersAction) -> None:
    from harmscan.eval.attacks import RECIPES

    p = sub.add_parser(
        "redteam",
        help="attack a bundle (character edits, word substitutions, padding, framings, jailbreak templates, "
        "payload splitting) on held-out harmful texts: ASR per label x recipe and an adversarial JSONL source",
    )
    _common(p)
    p.add_argument("--data", type=Path, required=True,
                   help="a dataset built by `harmscan data build` (its test split) or a labelled CSV / TSV / JSONL "
                   "/ Parquet file (a text column and 0/1 columns named after the labels)")
    p.add_argument("--split", default="test", help="with a built dataset: the split to attack (default: test; never train)")
    p.add_argument("-o", "--output", type=Path, help="output folder (default: artifacts/redteam)")
    p.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, from: {', '.join(RECIPES)} (default: all)")
    p.add_argument("--max-texts", type=int, default=50, help="flagged harmful texts attacked per label (default: 50)")
    p.add_argument("--queries", type=int, default=50, help="model queries per text and recipe (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the text sample and of the attacks (default: 0)")
    p.add_argument("--min-similarity", type=float, default=0.8,
                   help="word substitution: least cosine of the mean-pooled input embeddings (default: 0.8)")
    p.add_argument("--templates", type=Path,
                   help="jailbreak templates instead of the built-in ones: one a line, or a CSV / JSONL with a "
                   "'template' or 'prompt' column; {payload} marks where the text goes")
    p.set_defaults(func=_redteam)


def _redteam(args: argparse.Namespace) -> int:
    from harmscan.eval.redteam_run import redteam_bundle

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    result = redteam_bundle(
        args.bundle, args.data, args.output or DEFAULT_ARTIFACTS / "redteam", split=args.split, recipes=recipes,
        max_texts=args.max_texts, queries=args.queries, seed=args.seed, min_similarity=args.min_similarity,
        templates=args.templates, variant=args.variant, threads=args.threads, progress=not args.no_progress,
    )
    report = result["report"]
    for recipe, cell in report["overall"].items():
        asr = "n/a" if cell["asr"] is None else f"{cell['asr']:.0%}"
        print(f"{recipe:<18} ASR {asr:>5} ({cell['evaded']}/{cell['attacked']})")
    for kind, path in result["paths"].items():
        print(f"{kind}: {path}")
    return 0
