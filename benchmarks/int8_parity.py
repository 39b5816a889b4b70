"""Why the int8 variant fails the parity gate: how far each int8 recipe moves a trained model's probabilities.

`harmscan export` gates int8 at max |Δp| <= 0.02 against PyTorch (and >= 99 % identical flags at 0.5) on the
validation texts. This script scores the same texts (the export's own validation set and windows) with
PyTorch and with several int8 recipes, so the trade-off is visible:

  all              dynamic int8, every MatMul (what `harmscan export` builds)
  x_ffn_out        ... except the FFN output projections (input: GELU activations, the widest range)
  x_att_out        ... except the attention output projections
  x_ffn_in         ... except the FFN input projections
  qkv_ffn_in       only Q/K/V and FFN input projections
  smooth_a         SmoothQuant-style: per-channel activation scales (from 512 train texts, not the gate's
                   texts) migrated into the weights before quantising, alpha = a
  weights_8bit     int8 weights (per output channel), fp32 activations: the weight error alone
  weights_10bit    the same with 10-bit weights

Each line: max / mean / 99th percentile of |Δp| over texts x heads, identical flags at 0.5, max |Δlogit|, and
the CPU seconds to score the texts (1 process, --threads threads).

    OMP_NUM_THREADS=2 python benchmarks/int8_parity.py artifacts/model --json int8_parity.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", type=Path, help="a `harmscan train` model folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from harmscan.classifiers.calibration import sigmoid
    from harmscan.classifiers.encoding import CPU_MAX_BATCH_TOKENS, WindowTokenizer, forward_windows
    from harmscan.classifiers.runtime import Runner, create_session
    from harmscan.text import normalize_text
    from harmscan.training import export as ex
    from harmscan.training.modeling import load_classifier

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="harmscan-int8-parity-"))
    model = load_classifier(args.model_dir)
    info, _, _ = ex.read_training_info(args.model_dir)
    max_length = int(info.get("max_length") or ex.DEFAULT_MAX_LENGTH)
    texts, source = ex.validation_texts(args.model_dir, info, None)
    raw = ex._export_onnx(model, work / "raw")
    optimized = work / "opt.onnx"
    ex._optimize_fp32(raw, optimized, True)
    tok = WindowTokenizer(args.model_dir / "tokenizer.json", max_length, max_length // 4)
    windows = tok.encode([normalize_text(t) for t in texts])
    n_out = int(model.config.num_labels)

    def per_text(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], win: Any = windows) -> np.ndarray:
        logits = forward_windows(win, fn, ex.PARITY_BATCH, tok.pad_id, n_out, CPU_MAX_BATCH_TOKENS)
        return np.maximum.reduceat(logits, win.first, axis=0)

    def torch_forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            t_ids = torch.from_numpy(ids)
            out = model(input_ids=t_ids, attention_mask=torch.from_numpy(mask), token_type_ids=torch.zeros_like(t_ids))
        return out.logits.float().numpy()

    ref = per_text(torch_forward)
    p_ref = sigmoid(ref)
    results: dict[str, Any] = {}

    def measure(path: Path, name: str) -> None:
        runner = Runner(create_session(path, "cpu", args.threads, "cpu"), io_binding=False)
        started = time.process_time()
        logits = per_text(runner)
        cpu_s = time.process_time() - started
        probs = sigmoid(logits)
        diff = np.abs(probs - p_ref)
        results[name] = {
            "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "p99_abs_diff": float(np.quantile(diff, 0.99)),
            "flag_agreement": float(np.mean((probs >= 0.5) == (p_ref >= 0.5))),
            "max_abs_dlogit": float(np.abs(logits - ref).max()),
            "cpu_s": round(cpu_s, 2),
        }
        r = results[name]
        print(
            f"{name:14s} max {r['max_abs_diff']:.4f}  mean {r['mean_abs_diff']:.5f}  p99 {r['p99_abs_diff']:.4f}  "
            f"flags {r['flag_agreement']:.2%}  max|Δlogit| {r['max_abs_dlogit']:.3f}  cpu {cpu_s:.1f} s",
            flush=True,
        )

    def quantize(src: Path, name: str, **kw: Any) -> Path:
        out = work / f"{name}.onnx"
        quantize_dynamic(src, out, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT}, **kw)
        return out

    graph = onnx.load(optimized)
    inits = {i.name: i for i in graph.graph.initializer}
    matmuls = [n for n in graph.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    names = [n.name for n in matmuls]
    ffn_out = [n for n in names if n.endswith("output/dense/MatMul") and "attention" not in n]
    att_out = [n for n in names if "attention/output" in n]
    ffn_in = [n for n in names if "intermediate" in n]
    qkv = [n for n in names if "attention/self" in n]

    print(f"{len(texts)} validation texts ({source}), {len(windows)} windows, reference: PyTorch fp32")
    measure(optimized, "fp32")
    measure(quantize(optimized, "all"), "all")
    measure(quantize(optimized, "x_ffn_out", nodes_to_exclude=ffn_out), "x_ffn_out")
    measure(quantize(optimized, "x_att_out", nodes_to_exclude=att_out), "x_att_out")
    measure(quantize(optimized, "x_ffn_in", nodes_to_exclude=ffn_in), "x_ffn_in")
    measure(quantize(optimized, "qkv_ffn_in", nodes_to_quantize=qkv + ffn_in), "qkv_ffn_in")

    # SmoothQuant-style smoothing: activation channel maxima from train texts (never the gate's texts).
    from datasets import load_from_disk

    dataset = info.get("dataset")
    if dataset and Path(dataset).exists():
        train = load_from_disk(dataset)["train"].shuffle(seed=0)
        cal_texts = [str(t) for t in train.select(range(min(512, len(train))))["text"]]
        acts = sorted({n.input[0] for n in matmuls})
        probe = onnx.load(optimized)
        for a in acts:
            probe.graph.output.append(helper.make_tensor_value_info(a, TensorProto.FLOAT, None))
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
        out_names = [o.name for o in session.get_outputs()]
        amax: dict[str, np.ndarray] = {}

        def probe_fn(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            outs = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
            keep = mask.reshape(-1).astype(bool)
            for name, value in zip(out_names[1:], outs[1:], strict=True):
                m = np.abs(value.reshape(-1, value.shape[-1])[keep]).max(axis=0)
                amax[name] = np.maximum(amax[name], m) if name in amax else m
            return outs[0]

        per_text(probe_fn, tok.encode([normalize_text(t) for t in cal_texts]))
        for alpha in (0.5, 0.75):
            smoothed = onnx.load(optimized)
            s_inits = {i.name: i for i in smoothed.graph.initializer}
            groups: dict[str, list[Any]] = {}
            for node in smoothed.graph.node:
                if node.op_type == "MatMul" and node.input[1] in s_inits:
                    groups.setdefault(node.input[0], []).append(node)
            nodes = list(smoothed.graph.node)
            for act, group in groups.items():
                ws = [numpy_helper.to_array(s_inits[n.input[1]]) for n in group]
                w_max = np.max([np.abs(w).max(axis=1) for w in ws], axis=0)
                scale = np.clip(np.maximum(amax[act], 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha), 1e-2, 1e3)
                inv = act + "_smooth_inv"
                smoothed.graph.initializer.append(numpy_helper.from_array((1 / scale).astype(np.float32), inv))
                mul = helper.make_node("Mul", [act, inv], [act + "_smoothed"], name=act + "_SmoothMul")
                nodes.insert(nodes.index(group[0]), mul)
                for node, w in zip(group, ws, strict=True):
                    s_inits[node.input[1]].CopyFrom(numpy_helper.from_array((w * scale[:, None]).astype(np.float32), node.input[1]))
                    node.input[0] = act + "_smoothed"
            del smoothed.graph.node[:]
            smoothed.graph.node.extend(nodes)
            path = work / f"smooth_{alpha}.onnx"
            onnx.save(smoothed, path)
            measure(quantize(path, f"smooth_{alpha}_q"), f"smooth_{alpha}")

    for bits in (8, 10):
        fake = onnx.load(optimized)
        f_inits = {i.name: i for i in fake.graph.initializer}
        for node in fake.graph.node:
            if node.op_type == "MatMul" and node.input[1] in f_inits:
                w = numpy_helper.to_array(f_inits[node.input[1]])
                if w.ndim != 2:
                    continue
                top = 2 ** (bits - 1) - 1
                scale = np.abs(w).max(axis=0, keepdims=True) / top
                q = np.clip(np.round(w / scale), -top, top) * scale
                f_inits[node.input[1]].CopyFrom(numpy_helper.from_array(q.astype(np.float32), node.input[1]))
        path = work / f"weights_{bits}.onnx"
        onnx.save(fake, path)
        measure(path, f"weights_{bits}bit")

    if args.json:
        Path(args.json).write_text(json.dumps({"model": str(args.model_dir), "texts": len(texts), "source": source,
                                               "threads": args.threads, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
