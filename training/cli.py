"""CLI: `harmscan data fetch|stats|build`, `harmscan train`, `harmscan loso` and `harmscan export` (export needs
torch, so it belongs to the training side; it writes the bundles the runtime reads). Handlers import heavy
modules lazily."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harmscan.classifiers.cli import DEFAULT_BUNDLE, show_progress

DEFAULT_ARTIFACTS = Path(os.environ.get("HARMSCAN_ARTIFACTS", "artifacts"))


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        help="where the data sources live (default: $HARMSCAN_DATA_DIR, else the user cache dir)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="fetch, inspect and build the labelled training data")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    p = dsub.add_parser("fetch", help="download missing sources from their pinned origin and check sha256")
    p.add_argument("sources", nargs="*", help="source names (default: all)")
    _add_data_dir(p)
    p.add_argument("--force", action="store_true", help="re-download files that are present")
    p.set_defaults(func=_fetch)

    p = dsub.add_parser("stats", help="per source x head: positives / negatives / unknown, and licence")
    p.add_argument("sources", nargs="*", help="source names (default: all)")
    _add_data_dir(p)
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table")
    p.set_defaults(func=_stats)

    p = dsub.add_parser("build", help="build train/validation/test splits from a recipe")
    p.add_argument("--recipe", default="default", help="recipe name or path to a recipe YAML")
    _add_data_dir(p)
    p.add_argument("-o", "--output", type=Path, help="output folder (default: artifacts/data/RECIPE)")
    p.set_defaults(func=_build)

    p = sub.add_parser("train", help="fine-tune a multi-label classifier with masked BCE")
    p.add_argument("--recipe", default="default", help="recipe name or path to a recipe YAML")
    _add_data_dir(p)
    p.add_argument("--dataset", type=Path, help="a dataset built by `harmscan data build` (default: build it)")
    p.add_argument("--base-model", help="hub id or local path (default: the recipe's, else packaged MiniLM-L6)")
    p.add_argument("-o", "--output", type=Path, help="output folder (default: artifacts/model)")
    p.add_argument("--epochs", type=float, help="override the recipe's number of epochs")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument(
        "--max-train-minutes", type=float,
        help="stop training at this wall-clock limit (default: none; the summary says what it cut)",
    )
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "loso", help="leave-one-source-out generalisation: train without a source, score that source"
    )
    p.add_argument("--recipe", default="default", help="recipe name or path to a recipe YAML")
    _add_data_dir(p)
    p.add_argument("--sources", help="comma-separated sources to hold out (default: four large ones)")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per run (default: 5)")
    p.add_argument("--steps", type=int,
                   help="a fixed number of optimiser steps per run instead of --minutes (reproducible on one machine)")
    p.add_argument("--control", action="store_true",
                   help="also train the whole recipe on the same budget: held-out vs kept-in on the same test rows")
    p.add_argument("--model", type=Path, help="the full recipe's model, for the in-domain column")
    p.add_argument("--dataset", type=Path, help="the full recipe's dataset, for the in-domain column")
    p.add_argument("-o", "--output", type=Path, default=Path("artifacts/loso.json"), help="JSON results")
    p.set_defaults(func=_loso)

    p = sub.add_parser(
        "export",
        help="export a trained model folder to an ONNX bundle (fp32, int8, fp16) behind a parity gate",
        description="Export MODEL_DIR (written by `harmscan train`) to a bundle: an optimised fp32 ONNX graph, "
        "an int8 one, optionally fp16 for GPUs, tokenizer.json and the harmscan.json manifest. Each variant must "
        "match PyTorch on validation texts (fp32: max |Δp| ≤ 1e-4; int8: ≤ 0.02 and ≥ 99% identical flags).",
    )
    p.add_argument("model_dir", type=Path, help="a Hugging Face model folder with harmscan_training.json")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_BUNDLE, help=f"bundle folder (default: {DEFAULT_BUNDLE})")
    p.add_argument("--variants", default="fp32,int8", help="comma-separated: fp32, int8, fp16 (default: fp32,int8)")
    p.add_argument("--fp16", action="store_true", help="also build the fp16 variant (for GPUs)")
    p.add_argument(
        "--validation",
        help="texts for the parity gate: a .txt (one per line), .jsonl, .csv or .parquet file with a 'text' "
        "field (default: the validation split recorded by `harmscan train`, else built-in sentences)",
    )
    p.add_argument("--no-optimize", action="store_true", help="skip the offline ONNX Runtime graph optimisation (debugging)")
    p.add_argument(
        "--allow-parity-failure",
        action="store_true",
        help="write variants that fail the parity gate anyway, marked as failed (never chosen by --variant auto)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a terminal)")
    p.add_argument(
        "--private", action="store_true",
        help="keep the bundle to its owner (files 0600, folders 0700); default: readable by all (0644/0755), "
        "so that a service running as another user can load it",
    )
    p.set_defaults(func=_export)


def _fetch(args: argparse.Namespace) -> int:
    from harmscan.training.datadir import resolve_data_dir
    from harmscan.training.fetch import fetch_sources

    fetch_sources(args.sources or None, resolve_data_dir(args.data_dir, must_exist=False), force=args.force)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from harmscan.training.datadir import resolve_data_dir
    from harmscan.training.stats import compute_stats, format_stats

    rows = compute_stats(resolve_data_dir(args.data_dir), args.sources or None)
    print(format_stats(rows, args.format))
    return 0


def _build(args: argparse.Namespace) -> int:
    from harmscan.training.datadir import resolve_data_dir
    from harmscan.training.dataset import build_dataset
    from harmscan.training.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    out = args.output or DEFAULT_ARTIFACTS / "data" / recipe.name
    build_dataset(recipe, resolve_data_dir(args.data_dir), out)
    print(f"dataset written to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from harmscan.training.recipe import load_recipe
    from harmscan.training.trainer import train_from_args

    recipe = load_recipe(args.recipe)
    train_from_args(recipe, args, DEFAULT_ARTIFACTS)
    return 0


def _loso(args: argparse.Namespace) -> int:
    from harmscan.labels import load_taxonomy
    from harmscan.training.datadir import resolve_data_dir
    from harmscan.training.loso import DEFAULT_HELD_OUT, format_loso, leave_one_source_out, save_loso
    from harmscan.training.recipe import load_recipe

    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else DEFAULT_HELD_OUT
    results = leave_one_source_out(
        load_recipe(args.recipe), resolve_data_dir(args.data_dir), sources, minutes=args.minutes,
        steps=args.steps, control=args.control, in_domain_model=args.model, in_domain_dataset=args.dataset,
    )
    save_loso(results, args.output)
    print(format_loso(results, load_taxonomy().names))
    print(f"results written to {args.output}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from harmscan.training.export import export_bundle

    texts = None
    if args.validation:
        from harmscan.classifiers.records import iter_records

        texts = [r.text for r in iter_records(args.validation) if r.text is not None]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    out = export_bundle(
        args.model_dir, args.output, variants=variants, fp16=args.fp16, validation=texts,
        optimize=not args.no_optimize, progress=show_progress(args), allow_parity_failure=args.allow_parity_failure,
        private=args.private,
    )
    from harmscan.classifiers.bundle import Bundle

    bundle = Bundle.load(out, verify=False)
    for name, info in bundle.info.variants.items():
        par = info["parity"]
        verdict = "passed" if par["passed"] else "FAILED the parity gate"
        if par.get("gate") == "task-level":  # int8, against fp32 at the bundle's current thresholds
            verdict = f"task-level gate {par['status']}" + (f": {'; '.join(par['failures'])}" if par["failures"] else "")
        print(
            f"{name}: {info['file']}  max |Δp| {par['max_abs_diff']:.2g}, identical flags {par['flag_agreement']:.2%}"
            f" on {par['texts']} texts: {verdict}"
        )
    print(f"bundle written to {out}")
    return 0
