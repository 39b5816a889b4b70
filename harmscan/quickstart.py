"""`harmscan quickstart`: the main job, end to end, on one machine.

data build -> train -> export -> calibrate -> thresholds -> eval (+ behavioural suite), then prints where
the report is and the command that serves the bundle. Every step is a library call that the CLI's
individual commands also make, so a user can rerun any one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

DEFAULT_OBJECTIVE = "f1"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="build data, train, export, calibrate, tune thresholds and evaluate the default model",
    )
    p.add_argument("--recipe", default="default", help="recipe name or YAML path (default: default)")
    p.add_argument("--data-dir", help="data directory (default: $HARMSCAN_DATA_DIR, else the user cache)")
    p.add_argument("--artifacts", type=Path, help="output root (default: ./artifacts)")
    p.add_argument("--base-model", help="hub id or local path of the encoder (default: packaged MiniLM-L6)")
    p.add_argument(
        "--objective",
        help=f"threshold objective (default: the recipe's `thresholds.objective`, else {DEFAULT_OBJECTIVE})",
    )
    p.add_argument("--prevalence", help="positive rate of the deployed traffic (default: the recipe's)")
    p.add_argument("--max-steps", type=int, help="cap training steps (smoke runs)")
    p.add_argument(
        "--max-train-minutes", type=float,
        help="stop training at this wall-clock limit (default: none, the recipe's whole schedule runs)",
    )
    p.add_argument("--skip-train", action="store_true", help="reuse ARTIFACTS/model if it exists")
    p.set_defaults(func=run_quickstart)


def _step(name: str) -> float:
    print(f"\n== {name}", flush=True)
    return time.monotonic()


def _done(t0: float) -> None:
    print(f"   done in {time.monotonic() - t0:.0f} s", flush=True)


def run_quickstart(args: argparse.Namespace) -> int:
    from harmscan.classifiers.int8_gate import summary as gate_summary
    from harmscan.eval import calibrate_bundle, evaluate_bundle, tune_thresholds
    from harmscan.training.datadir import resolve_data_dir
    from harmscan.training.dataset import build_dataset
    from harmscan.training.export import export_bundle
    from harmscan.training.recipe import load_recipe
    from harmscan.training.trainer import TRAINING_SUMMARY, describe_schedule, format_metrics_table, train

    started = time.monotonic()
    artifacts = Path(args.artifacts or os.environ.get("HARMSCAN_ARTIFACTS", "artifacts"))
    recipe = load_recipe(args.recipe)
    data_dir = resolve_data_dir(args.data_dir)
    dataset_dir = artifacts / "data" / recipe.name
    model_dir = artifacts / "model"
    bundle_dir = artifacts / "bundle"
    report_dir = artifacts / "report"

    t0 = _step(f"1/6 data build (recipe {recipe.name}, data from {data_dir})")
    build_dataset(recipe, data_dir, dataset_dir)
    summary = json.loads((dataset_dir / "harmscan_data.json").read_text())
    print("   rows:", {s: c["rows"] for s, c in summary["counts"].items()})
    _done(t0)

    t0 = _step("2/6 train")
    if args.skip_train and (model_dir / TRAINING_SUMMARY).is_file():
        training: dict[str, Any] = json.loads((model_dir / TRAINING_SUMMARY).read_text())
        print(f"   reusing {model_dir}")
    else:
        training = train(
            dataset_dir, model_dir, recipe=recipe, base_model=args.base_model, max_steps=args.max_steps,
            overrides={"max_train_minutes": args.max_train_minutes},
        )
    heads = [item["name"] for item in training["labels"]]
    print(format_metrics_table(training["metrics"], heads))
    print("   " + describe_schedule(training["metrics"]))
    _done(t0)

    t0 = _step("3/6 export to ONNX (fp32 + int8, parity-checked)")
    # int8 is kept even when its task-level gate fails at the fresh bundle's 0.5 thresholds: step 5 gives
    # it its final verdict at the calibrated thresholds, and `variant="auto"` uses it only if it passed.
    export_bundle(model_dir, bundle_dir)
    _done(t0)

    t0 = _step("4/6 calibrate (temperature scaling on validation)")
    cal = calibrate_bundle(bundle_dir, dataset_dir)
    _print_json(cal)
    _done(t0)

    objective = args.objective or recipe.thresholds.get("objective") or DEFAULT_OBJECTIVE
    prevalence = args.prevalence or recipe.thresholds.get("prevalence")
    at = f" at prevalence {prevalence}" if prevalence else ""
    t0 = _step(f"5/6 thresholds (objective {objective}{at}, chosen on validation)")
    thr = tune_thresholds(bundle_dir, dataset_dir, objective=objective, prevalence=prevalence)
    gate = thr.pop("int8_gate", None)
    _print_json(thr)
    if gate:
        print(f"   int8 task-level gate at these thresholds: {gate['status'].upper()} ({gate_summary(gate)})")
    _done(t0)

    t0 = _step("6/6 evaluate (test split, behavioural suite)")
    result = evaluate_bundle(bundle_dir, dataset_dir, out_dir=report_dir, suite=True, data_dir=data_dir)
    _print_json({k: v for k, v in result.items() if k != "paths"})
    _done(t0)

    minutes = (time.monotonic() - started) / 60
    licence = "commercial use allowed by every source" if training.get("commercial_use") else "NON-COMMERCIAL"
    print(f"\nquickstart finished in {minutes:.1f} min. Model licence status: {licence}.")
    paths = result.get("paths", {})
    print(f"report: {paths.get('html', report_dir / 'report.html')}")
    print(f"bundle: {bundle_dir}")
    print(f"serve it:  harmscan serve --bundle {bundle_dir}   (http://127.0.0.1:3000/v1/scan)")
    print(f"scan a file: harmscan scan posts.jsonl -o scores.jsonl --bundle {bundle_dir}")
    return 0


def _print_json(obj: Any) -> None:
    text = json.dumps(obj, indent=2, default=str)
    lines = text.splitlines()
    print("\n".join("   " + line for line in lines[:60]))
    if len(lines) > 60:
        print(f"   ... ({len(lines) - 60} more lines)")
