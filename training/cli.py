"""CLI: `harmscan data fetch|stats|build` and `harmscan train`. Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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
