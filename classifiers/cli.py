"""CLI: `harmscan scan`. Handlers import their modules lazily: `harmscan scan` never imports torch or
transformers, and `harmscan --help` does not even import onnxruntime. (`harmscan export` needs torch: it is
registered by `harmscan.training.cli`.)"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_ARTIFACTS = Path(os.environ.get("HARMSCAN_ARTIFACTS", "artifacts"))
DEFAULT_BUNDLE = DEFAULT_ARTIFACTS / "bundle"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="score a file of texts (JSONL, CSV, Parquet, text, stdin) with a bundle; resumable",
        description="Score every text of INPUT and write one row per text: {id, scores, flagged, decision, language}. "
        "Bad rows go to an errors file with their line number; --resume continues an interrupted scan exactly. "
        "Exit status: 0 when the scan finished (an empty input gives an empty output), 1 when no row could be "
        "scored or more than --max-errors rows failed, 2 for a usage, input or bundle error.",
    )
    p.add_argument("input", help="a .jsonl, .csv, .tsv, .parquet or .txt file (one text per line), or - for stdin")
    p.add_argument(
        "-o", "--output", type=Path, required=True,
        help="output file: .jsonl or .parquet, or - for JSONL on stdout (logs and progress stay on stderr)",
    )
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help=f"bundle folder (default: {DEFAULT_BUNDLE})")
    p.add_argument("--text-field", default="text", help="JSONL field / CSV or Parquet column with the text")
    p.add_argument("--id-field", default="id", help="field / column with the row id (default: the line number)")
    p.add_argument("--input-format", choices=["jsonl", "csv", "tsv", "parquet", "text"],
                   help="input format (default: by suffix; stdin: JSONL or text, sniffed)")
    p.add_argument("--output-format", choices=["jsonl", "parquet"], help="output format (default: by suffix)")
    p.add_argument(
        "--errors", type=Path,
        help="where bad rows go (default: OUTPUT's stem + .errors.jsonl; with -o -, one line each on stderr)",
    )
    p.add_argument(
        "--max-errors", type=int, metavar="N",
        help="stop (exit 1) at the first bad row past N; default: no limit, but exit 1 when no row was scored",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted scan of the same input")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--policy", type=Path, help="a threshold policy file (JSON/YAML); default: the bundle's")
    p.add_argument("--thresholds", help="override thresholds: label=p,... e.g. violence=0.3,toxicity=0.7")
    p.add_argument("--variant", default="auto", choices=["auto", "fp32", "int8", "fp16"],
                   help="model variant (default auto: int8 on a CPU when it passed its parity gate, fp16 on CUDA)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where ONNX Runtime runs (default auto: CUDA when available)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: $OMP_NUM_THREADS, else all cores)")
    p.add_argument("--batch-size", type=int, help="most windows per model call (default: 32 on a CPU, 256 on a GPU)")
    p.add_argument(
        "--max-batch-tokens", type=int, help="most padded tokens per model call (default: 512 on a CPU, no cap on a GPU)"
    )
    p.add_argument("--chunk-size", type=int, default=1024, help="texts per commit (default: 1024)")
    p.add_argument("--spans", action="store_true", help="add the top window's character span and window count")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a terminal)")
    add_ray_arguments(p)  # --engine ray|local, --num-actors, --ray-address, --gpus-per-actor
    p.set_defaults(func=_scan)

    p = sub.add_parser(
        "push",
        help="share a bundle on the Hugging Face Hub; load it back with --bundle hf://OWNER/NAME@COMMIT",
        description="Verify BUNDLE (every file against its recorded sha256), write its model card (README.md) "
        "from the manifest, and upload it to the model repository OWNER/NAME (created when missing). Prints "
        "the commit id. Anyone can then scan with `--bundle hf://OWNER/NAME@COMMIT` (or HarmClassifier.load): "
        "the download is cached and checked against the same hashes. Token: --token, else $HF_TOKEN or "
        "`huggingface-cli login`; endpoint: $HF_ENDPOINT (a mirror). Needs the train extra (huggingface_hub).",
    )
    p.add_argument("bundle", type=Path, help="bundle folder")
    p.add_argument("repo_id", metavar="OWNER/NAME", help="Hub model repository")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--revision", help="branch to push to (default: the repository's default branch)")
    p.add_argument("--token", help="Hub token (default: $HF_TOKEN or the saved login)")
    p.add_argument("--license", help="licence id for the model card (default: from the training sources)")
    p.set_defaults(func=_push)


def _push(args: argparse.Namespace) -> int:
    from harmscan.classifiers.hub import SCHEME, push

    commit = push(args.bundle, args.repo_id, private=args.private, revision=args.revision, token=args.token,
                  license=args.license)
    print(f"{SCHEME}{args.repo_id}@{commit}")
    return 0


def _scan(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        from harmscan.errors import InputError

        if str(args.output) == "-" or args.max_errors is not None:
            raise InputError("--engine ray writes a file and has no --max-errors: drop -o - / --max-errors, "
                             "or use --engine local")
        args.no_progress = not show_progress(args)
        return run_ray_scan(args)
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.classifiers.policy import Policy, parse_overrides
    from harmscan.classifiers.scan import scan_file
    from harmscan.errors import RowsFailedError

    bundle = Bundle.load(args.bundle)
    policy = Policy.resolve(args.policy, bundle.label_names, parse_overrides(args.thresholds), default=bundle.policy)
    clf = HarmClassifier.load(
        bundle, variant=args.variant, device=args.device, threads=args.threads, policy=policy,
        batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens or "auto",
    )
    summary = scan_file(
        args.input, args.output, clf, text_field=args.text_field, id_field=args.id_field,
        input_format=args.input_format, output_format=args.output_format, resume=args.resume,
        overwrite=args.overwrite, errors_path=args.errors, chunk_size=args.chunk_size,
        progress=show_progress(args), spans=args.spans, max_errors=args.max_errors,
    )
    where = "stdout" if str(summary.output) == "-" else summary.output
    bad_rows = summary.errors_path or ("stderr" if str(summary.output) == "-" else None)
    if summary.records and not summary.rows:
        hint = "; check --text-field" if "missing field" in (summary.first_error or "") else ""
        raise RowsFailedError(
            f"no row could be scored: all {summary.records} rows of {args.input} failed "
            f"(first: {summary.first_error}{hint}); bad rows in {bad_rows}"
        )
    done = "resumed and finished" if summary.resumed_from else "finished"
    print(
        f"scan {done}: {summary.rows} rows in {where} ({summary.flagged} flagged this run, "
        f"{summary.texts_per_s:.0f} texts/s on {clf.variant}/{clf.providers[0]})",
        file=sys.stderr,
    )
    if summary.errors:
        print(f"{summary.errors} bad rows listed in {bad_rows}", file=sys.stderr)
    return 0


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for a person watching: not with --no-progress, not into a log file or a pipe."""
    return not args.no_progress and sys.stderr.isatty()


# -- the Ray engine -----------------------------------------------------------------------------------
def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The Ray options of `harmscan scan`."""
    group = parser.add_argument_group("Ray engine (pip install 'harmscan[ray]'; see docs/ray.md)")
    group.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this process; ray: a pool of actors on Ray Data (default: local)")
    group.add_argument("--num-actors", type=int,
                       help="classifier actors (default: the cluster's CPUs / --threads, or GPUs / --gpus-per-actor)")
    group.add_argument("--ray-address",
                       help="an existing Ray cluster to join ('auto', or the head's host:6379); default: $RAY_ADDRESS, "
                       "else a local Ray instance for this scan")
    group.add_argument("--gpus-per-actor", type=float, default=0.0,
                       help="GPUs per actor (0.5: two actors share a GPU); > 0 runs the actors on CUDA")


def run_ray_scan(args: argparse.Namespace) -> int:
    """The `harmscan scan --engine ray` handler: the local scan's arguments keep their meaning (--chunk-size
    is the records per actor call, --threads the threads per actor), plus the Ray ones."""
    from harmscan.classifiers.policy import parse_overrides
    from harmscan.classifiers.ray_engine import scan_with_ray
    from harmscan.errors import InputError

    gpus = float(args.gpus_per_actor)
    if args.device == "cuda" and gpus == 0:
        raise InputError("--engine ray --device cuda: say how many GPUs each actor gets with --gpus-per-actor")
    if args.device == "cpu" and gpus > 0:
        raise InputError("--device cpu contradicts --gpus-per-actor > 0: drop one of them")
    summary = scan_with_ray(
        args.input, args.output, args.bundle, text_field=args.text_field, id_field=args.id_field,
        input_format=args.input_format, output_format=args.output_format, policy=args.policy,
        thresholds=parse_overrides(args.thresholds), num_actors=args.num_actors, batch_size=args.chunk_size,
        num_gpus_per_actor=gpus, threads_per_actor=args.threads or 1, variant=args.variant,
        model_batch_size=args.batch_size, max_batch_tokens=getattr(args, "max_batch_tokens", None) or "auto",
        errors_path=args.errors, ray_address=args.ray_address,
        resume=args.resume, overwrite=args.overwrite, spans=args.spans, progress=not args.no_progress,
    )
    done = "resumed and finished" if summary.resumed_from else "finished"
    print(f"scan {done} on Ray: {summary.rows} rows in {summary.output} ({summary.flagged} flagged this run, "
          f"{summary.texts_per_s:.0f} texts/s)", file=sys.stderr)
    if summary.errors:
        print(f"{summary.errors} bad rows listed in {summary.errors_path}", file=sys.stderr)
    return 0
