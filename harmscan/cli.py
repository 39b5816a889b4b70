"""The `harmscan` command: a thin layer over library functions.

Each area registers its own subcommands; handlers import heavy dependencies lazily, so `harmscan --help`
and `harmscan scan` never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from harmscan import __version__
from harmscan.errors import HarmscanError, missing_extra

# Modules with a `register(subparsers)` function, in help order.
COMMAND_MODULES = (
    "harmscan.quickstart",
    "harmscan.training.cli",
    "harmscan.classifiers.cli",
    "harmscan.eval.cli",
    "harmscan.serving.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harmscan",
        description="Train, export, calibrate, evaluate and serve multi-label harm classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"harmscan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HarmscanError as exc:
        if args.verbose:
            raise
        print(f"harmscan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ImportError as exc:
        # An optional dependency imported lazily anywhere below a handler: name the extra, not a traceback.
        known = missing_extra(exc)
        if known is None or args.verbose:
            raise
        print(f"harmscan: error: {known}", file=sys.stderr)
        return known.exit_code
    except KeyboardInterrupt:
        print("harmscan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
