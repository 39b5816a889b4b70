"""Peak memory of `harmscan scan` on 10k vs 100k rows: it must stay flat (streaming, constant memory).

Writes a JSONL file of N rows (tweets from ../shared/data, repeated with unique ids), runs `harmscan scan` on
it in a fresh process, and samples that process's RSS from /proc every 0.2 s, together with the number of
rows committed so far (the scan's progress file). Reports the peak RSS and the RSS at 10 / 50 / 90 % of the
scan for each size.

    python benchmarks/scan_memory.py --bundle BUNDLE --rows 10000 100000 --threads 2 [--variant int8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLI_SNIPPET = (
    "import sys, harmscan.cli as c; c.COMMAND_MODULES = ('harmscan.classifiers.cli',); sys.exit(c.main(sys.argv[1:]))"
)


def write_input(path: Path, rows: int) -> None:
    tweets = [t.strip() for t in (DATA / "tweeteval_offensive" / "train_text.txt").read_text().splitlines() if t.strip()]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(json.dumps({"id": i, "text": tweets[i % len(tweets)]}) + "\n")


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def committed(progress: Path) -> int:
    try:
        return int(json.loads(progress.read_text())["records"])
    except (OSError, ValueError, KeyError):
        return 0


def measure(bundle: Path, rows: int, threads: int, work: Path, variant: str = "auto") -> dict[str, Any]:
    src, out = work / f"in_{rows}.jsonl", work / f"out_{rows}.jsonl"
    write_input(src, rows)
    harmscan = shutil.which("harmscan", path=str(Path(sys.executable).parent))
    ok = harmscan and subprocess.run([harmscan, "--help"], capture_output=True).returncode == 0
    entry = [harmscan] if ok and harmscan else [sys.executable, "-c", CLI_SNIPPET]
    cmd = [*entry, "scan", str(src), "-o", str(out), "--bundle", str(bundle), "--threads", str(threads),
           "--no-progress", "--overwrite", "--variant", variant]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[int, float]] = []
    progress = out.with_name(out.name + ".progress.json")
    while proc.poll() is None:
        rss = rss_mib(proc.pid)
        if rss is not None:
            samples.append((committed(progress), rss))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"scan failed: {stderr.decode()}")

    def at(share: float) -> float:
        return next((r for n, r in samples if n >= share * rows), samples[-1][1])

    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "texts_per_s": round(rows / seconds, 1),
        "peak_rss_mib": round(max(r for _, r in samples), 1),
        "rss_at_10pct": round(at(0.1), 1),
        "rss_at_50pct": round(at(0.5), 1),
        "rss_at_90pct": round(at(0.9), 1),
        "samples": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", default="auto", help="model variant to scan with (default: auto)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harmscan-mem-"))
    try:
        results = [measure(Path(args.bundle), n, args.threads, work, args.variant) for n in args.rows]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
