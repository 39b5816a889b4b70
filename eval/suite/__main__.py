"""`python -m harmscan.eval.suite`: score a bundle on the suite, or list its functionalities."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harmscan.eval.suite.generator import SPLITS
from harmscan.eval.suite.scoring import format_functionality_table, run_suite_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harmscan.eval.suite", description="The behavioural test suite (per-functionality pass rates)."
    )
    parser.add_argument("--bundle", help="score this bundle on the suite and print the table")
    parser.add_argument("--split", default="test", choices=SPLITS, help="template set to score (default: test)")
    parser.add_argument("-o", "--output", help="also write the result: .json (full) or .md (the table)")
    parser.add_argument("--list", action="store_true", help="print the functionalities with their case counts")
    parser.add_argument("--examples", type=int, default=0, help="with --list: show this many test cases each")
    args = parser.parse_args(argv)
    if args.list:
        print(format_functionality_table(args.examples), end="")
        return 0
    if not args.bundle:
        parser.error("pass --bundle BUNDLE (or --list)")
    from harmscan.errors import HarmscanError

    try:
        return run_suite_cli(args.bundle, args.split, args.output)
    except HarmscanError as exc:
        print(f"harmscan: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
