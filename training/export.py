"""`harmscan export`: a trained model folder -> a bundle, with a parity gate against PyTorch.

Training side: it loads the PyTorch model (torch, transformers, optimum-onnx). The runtime
(`harmscan.classifiers`) only reads the bundle this writes (`classifiers/bundle.py`).

Variants: fp32 (exported with optimum-onnx, then given ONNX Runtime's basic offline optimisations, O1),
int8 (dynamic quantisation of that graph: int8 weights per channel, activations quantised per batch at run
time, no calibration data needed) and fp16 (optimum's O4, for GPUs; built when asked).

Why O1 and not O2's fused Attention: measured on 2 cores with MiniLM-L6 on tweets (CPU time, 1 thread), the
fused graph was slower than the unfused one that ONNX Runtime optimises at load (fp32 116 vs 126 texts/s,
int8 214 vs 250): for short sequences the fused Attention kernel costs more than the plain MatMuls it
replaces. See docs/benchmarks.md.

The gate scores the validation texts with PyTorch and with every variant on exactly the same token windows,
and refuses the export when fp32 or fp16 drifts past its tolerance against PyTorch; the figures go into the
manifest. int8 is held to the task-level gate against fp32 instead (`harmscan.classifiers.int8_gate`:
AUPRC, ECE, identical flags, measured on the dataset's validation split when the model records one): a
failing int8 is written but marked failed, so `variant="auto"` never picks it and asking for it by name
is refused, and the verdict is measured again once `harmscan thresholds` has set the final operating point.
The bundle is assembled in a staging folder and moved into place only when everything passed, so a failed
export never leaves a half-written or unchecked bundle behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from harmscan.classifiers.bundle import (
    MANIFEST,
    VARIANT_FILES,
    new_manifest,
    record_files,
    set_bundle_modes,
    write_manifest,
)
from harmscan.classifiers.calibration import sigmoid
from harmscan.classifiers.encoding import CPU_MAX_BATCH_TOKENS, WindowTokenizer, forward_windows
from harmscan.classifiers.int8_gate import LIMITS as INT8_GATE_LIMITS
from harmscan.classifiers.int8_gate import evaluate_gate, gate_record
from harmscan.classifiers.int8_gate import summary as gate_summary
from harmscan.classifiers.manifest import Manifest
from harmscan.classifiers.modelcard import HF_CONFIG, write_model_card
from harmscan.classifiers.policy import Policy
from harmscan.classifiers.runtime import Runner, create_session
from harmscan.classifiers.validation_texts import builtin_validation_texts
from harmscan.errors import BundleError, InputError, require
from harmscan.labels import Taxonomy
from harmscan.text import normalize_text
from harmscan.training.modeling import POOLING_KEY, load_classifier

log = logging.getLogger(__name__)

TRAINING_INFO = "harmscan_training.json"
DEFAULT_MAX_LENGTH = 256
# max |Δprobability| against PyTorch, and the least share of identical flags (None: not gated). int8 is
# judged by the task-level gate against fp32 instead (int8_gate.LIMITS).
TOLERANCES: dict[str, dict[str, float | None]] = {
    "fp32": {"max_abs_diff": 1e-4, "min_flag_agreement": None},
    "fp16": {"max_abs_diff": 0.01, "min_flag_agreement": 0.99},
}
PARITY_THRESHOLD = 0.5  # flags are compared at the neutral threshold a fresh bundle carries
MAX_VALIDATION_TEXTS = 2000
PARITY_BATCH = 32


def read_training_info(model_dir: Path) -> tuple[dict[str, Any], Taxonomy, dict[str, Any]]:
    """(harmscan_training.json, its taxonomy, config.json) of a model folder, checked against each other."""
    if not model_dir.is_dir():
        raise InputError(f"model folder {model_dir} does not exist: train one with `harmscan train`")
    config_path, info_path = model_dir / "config.json", model_dir / TRAINING_INFO
    if not config_path.is_file():
        raise InputError(f"{model_dir} is not a Hugging Face model folder: config.json is missing")
    if not info_path.is_file():
        raise InputError(
            f"{model_dir} lacks {TRAINING_INFO} (written by `harmscan train`): it records the labels, "
            "max length and data licences that the bundle needs"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {config_path.name} / {TRAINING_INFO} in {model_dir}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("labels"), list):
        raise InputError(f"{info_path} must hold a mapping with a 'labels' list (taxonomy entries)")
    taxonomy = Taxonomy.from_list(info["labels"])
    id2label = config.get("id2label") or {}
    model_labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
    if model_labels != taxonomy.names:
        raise BundleError(
            f"{config_path} id2label {model_labels} does not match the labels in {info_path} "
            f"{taxonomy.names}: the model's output columns must follow the taxonomy order"
        )
    return info, taxonomy, config


@dataclass
class ValidationSet:
    """The parity texts, with their labels [n, L] and known-mask [n, L] when they come from a dataset."""

    texts: list[str]
    source: str
    labels: np.ndarray | None = None
    mask: np.ndarray | None = None


def validation_texts(model_dir: Path, info: dict[str, Any], given: Sequence[str] | None) -> tuple[list[str], str]:
    """The parity texts: the caller's, else the recorded dataset's validation split, else the built-in list."""
    found = validation_set(model_dir, info, given)
    return found.texts, found.source


def validation_set(model_dir: Path, info: dict[str, Any], given: Sequence[str] | None) -> ValidationSet:
    """`validation_texts` with the dataset's labels kept (the int8 gate measures AUPRC and ECE on them)."""
    if given is not None:
        found = ValidationSet(list(given), "caller")
    else:
        found = _dataset_split(model_dir, info) or ValidationSet(builtin_validation_texts(), "builtin")
    texts = found.texts
    if not texts:
        raise InputError("the parity gate needs at least one validation text")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise InputError(f"validation text #{bad} is a {type(texts[bad]).__name__}, not a str")
    if len(texts) > MAX_VALIDATION_TEXTS:  # an evenly spaced, deterministic subset keeps export quick
        step = len(texts) / MAX_VALIDATION_TEXTS
        keep = [int(i * step) for i in range(MAX_VALIDATION_TEXTS)]
        found = ValidationSet(
            [texts[i] for i in keep], found.source,
            None if found.labels is None else found.labels[keep],
            None if found.mask is None else found.mask[keep],
        )
    return found


def _dataset_split(model_dir: Path, info: dict[str, Any]) -> ValidationSet | None:
    recorded = info.get("dataset")
    if isinstance(recorded, dict):
        recorded = recorded.get("path")
    if not recorded:
        return None
    path = Path(recorded)
    path = path if path.is_absolute() else model_dir / path
    if not path.exists():
        log.warning("the dataset recorded in %s (%s) is absent: parity uses built-in texts", TRAINING_INFO, path)
        return None
    datasets = require("datasets", "train")
    ds = datasets.load_from_disk(str(path))
    if "validation" not in ds:
        return None
    split = ds["validation"]
    texts = [str(t) for t in split["text"]]
    if not {"labels", "label_mask"} <= set(split.column_names):  # texts only: parity on them, no AUPRC/ECE
        return ValidationSet(texts, f"dataset:{path}")
    labels = np.asarray(split["labels"], dtype=np.float32).reshape(len(texts), -1) > 0.5
    mask = np.asarray(split["label_mask"], dtype=np.float32).reshape(len(texts), -1) > 0.5
    return ValidationSet(texts, f"dataset:{path}", labels, mask)


def export_bundle(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    variants: Sequence[str] = ("fp32", "int8"),
    fp16: bool = False,
    validation: Sequence[str] | None = None,
    optimize: bool = True,
    progress: bool = True,
    allow_parity_failure: bool = False,
    private: bool = False,
) -> Path:
    """Export `model_dir` (a `harmscan train` folder) to the bundle folder `out_dir`; returns its path.

    Raises BundleError when fp32 or fp16 fails its parity gate against PyTorch (nothing is written then),
    InputError for a bad model folder or arguments. `out_dir` may be an existing bundle (it is replaced) or
    an empty folder. `allow_parity_failure` writes failing fp32/fp16 anyway, marked `"passed": false`;
    `HarmClassifier.load(variant="auto")` never picks them. An int8 that fails its task-level gate is
    always written, marked failed with its figures (the verdict may change at calibrated thresholds).
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    wanted = _check_variants(variants, fp16)
    _check_output(out_dir)
    info, taxonomy, config = read_training_info(model_dir)
    max_length = int(info.get("max_length") or DEFAULT_MAX_LENGTH)
    positions = int(config.get("max_position_embeddings") or max_length)
    if not 8 <= max_length <= positions:
        raise InputError(f"{TRAINING_INFO}: max_length {max_length} must be within [8, {positions}] for this model")
    stride = max_length // 4
    vset = validation_set(model_dir, info, validation)
    texts, source = vset.texts, vset.source

    steps = ["load model", "export ONNX", "optimise", *(f"build {v}" for v in wanted if v != "fp32"), "parity gate"]
    bar = tqdm(total=len(steps) + 1, desc="export", unit="step", disable=not progress)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with _quiet_third_party():
            built, parity, probs = _build_and_check(model_dir, staging, wanted, optimize, texts, max_length, stride, bar)
        failures = [_failure(v, parity[v]) for v in wanted if v in TOLERANCES and not parity[v]["passed"]]
        if failures and allow_parity_failure:
            log.warning("parity gate failed, variants kept as asked (marked passed: false): %s", "; ".join(failures))
        elif failures:
            raise BundleError(
                f"export of {model_dir} refused by the parity gate on {len(texts)} {source} texts: "
                + "; ".join(failures)
                + ". Nothing was written: export without that variant (--variants fp32), check the model, or "
                "keep it marked as failed with --allow-parity-failure"
            )
        _next(bar, "write bundle")
        manifest = new_manifest(
            taxonomy,
            max_length=max_length,
            base_model=str(info.get("base_model") or config.get("_name_or_path") or "unknown"),
            training={k: v for k, v in info.items() if k not in ("labels", "metrics", "max_length")},
            window_stride=stride,
        )
        manifest["metrics"] = info.get("metrics") or {}
        if "int8" in wanted:
            parity["int8"] = _int8_gate(probs, vset, taxonomy.names, manifest, source, parity["int8"])
        for variant in wanted:
            manifest["variants"][variant] = {"file": VARIANT_FILES[variant], **built[variant], "parity": parity[variant]}
        manifest["export"] = _export_record(source, len(texts))
        _write_hf_config(staging / HF_CONFIG, config, taxonomy)
        record_files(staging, manifest)
        write_manifest(staging, manifest)
        write_model_card(staging, Manifest.from_dict(manifest, staging))  # not hashed: see modelcard.py
        set_bundle_modes(staging, private)  # mkdtemp made it 0700: see set_bundle_modes
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
        bar.update(1)
    finally:
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
    log.info("bundle written to %s (%s)", out_dir, ", ".join(wanted))
    return out_dir


def _build_and_check(
    model_dir: Path,
    staging: Path,
    wanted: list[str],
    optimize: bool,
    texts: list[str],
    max_length: int,
    stride: int,
    bar: tqdm,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Write tokenizer.json and every variant into `staging`; -> (build info, parity report, probabilities
    per text) per variant, the PyTorch reference's under "pytorch"."""
    with tempfile.TemporaryDirectory(prefix="harmscan-export-") as work_dir:
        work = Path(work_dir)
        bar.set_postfix_str("load model")
        model, tokenizer_file = _load_torch_model(model_dir, staging)
        _next(bar, "export ONNX")
        raw = _export_onnx(model, work / "raw")
        _next(bar, "optimise")
        built: dict[str, dict[str, Any]] = {}
        optimized = work / "optimized.onnx"
        opt_info = _optimize_fp32(raw, optimized, optimize)
        if "fp32" in wanted:
            shutil.copyfile(optimized, staging / VARIANT_FILES["fp32"])
            built["fp32"] = opt_info
        if "int8" in wanted:
            _next(bar, "build int8")
            built["int8"] = {**opt_info, **_quantize_int8(optimized, staging / VARIANT_FILES["int8"])}
        if "fp16" in wanted:
            _next(bar, "build fp16")
            built["fp16"] = _convert_fp16(raw, staging / VARIANT_FILES["fp16"])
        _next(bar, "parity gate")
        tokenizer = WindowTokenizer(tokenizer_file, max_length, stride)
        parity, probs = _parity(model, tokenizer, texts, staging, wanted)
        return built, parity, probs


# -- steps ---------------------------------------------------------------------------------------------
def _write_hf_config(path: Path, config: dict[str, Any], taxonomy: Taxonomy) -> None:
    """config.json beside model.onnx, so that optimum's ORTModelForSequenceClassification loads the bundle
    (`from_pretrained(bundle_dir, file_name="model.onnx")`) with the bundle's label names and order."""
    hf = {k: v for k, v in config.items() if k != "_name_or_path"}  # a path on the exporting machine
    hf.update(
        id2label={str(i): name for i, name in enumerate(taxonomy.names)},
        label2id={name: i for i, name in enumerate(taxonomy.names)},
        problem_type="multi_label_classification",  # one sigmoid per label, not a softmax
    )
    path.write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@contextmanager
def _quiet_third_party() -> Iterator[None]:
    """optimum and onnxruntime.quantization log every fused node at INFO (hundreds of lines, partly on
    the root logger): keep them out of `harmscan export` unless the user asked for debug logs (-v)."""
    root = logging.getLogger()
    level = root.level
    if level > logging.DEBUG:
        root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _next(bar: tqdm, name: str) -> None:
    bar.update(1)
    bar.set_postfix_str(name)
    log.debug("export: %s", name)


def _check_variants(variants: Sequence[str], fp16: bool) -> list[str]:
    wanted = list(dict.fromkeys([*variants, *(["fp16"] if fp16 else [])]))
    unknown = [v for v in wanted if v not in VARIANT_FILES]
    if unknown or not wanted:
        raise InputError(f"unknown variants {unknown or '(none)'}: choose from {', '.join(VARIANT_FILES)}")
    return wanted


def _check_output(out_dir: Path) -> None:
    # Replacing an earlier bundle is routine (re-export); wiping an unrelated folder never is.
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file())):
        raise InputError(f"output {out_dir} exists and is not a harmscan bundle: choose another -o folder")


def _load_torch_model(model_dir: Path, staging: Path) -> tuple[Any, Path]:
    """The PyTorch model (the parity reference) and the bundle's tokenizer.json, written into staging."""
    require("torch", "train")
    transformers = require("transformers", "train")
    model = load_classifier(model_dir)
    tokenizer_file = staging / "tokenizer.json"
    fast = transformers.AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    if not getattr(fast, "is_fast", False):
        raise InputError(f"{model_dir}: the tokenizer has no fast (Rust) version, which inference needs")
    backend = fast.backend_tokenizer
    # Padding and truncation are per-call settings at inference; a bundle should not carry stale ones.
    backend.no_padding()
    backend.no_truncation()
    backend.save(str(tokenizer_file))
    return model, tokenizer_file


def _export_onnx(model: Any, out: Path) -> Path:
    exporters = require("optimum.exporters.onnx.convert", "train")
    torch = require("torch", "train")
    with warnings.catch_warnings():
        # The trace turns transformers' mask arithmetic into constants and says so for every export; the
        # parity gate, not this warning, is what tells whether the graph is right.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if getattr(model.config, POOLING_KEY, "cls") == "mean":
            # optimum's exporter for the encoder's model_type (its inputs, dynamic axes, opset), given the
            # model directly: onnx_export_from_model only takes classes defined inside transformers.
            tasks = require("optimum.exporters.tasks", "train")
            onnx_config = tasks.TasksManager.get_exporter_config_constructor(
                exporter="onnx", model_type=model.config.model_type, task="text-classification",
                library_name="transformers",
            )(model.config)
            out.mkdir(parents=True, exist_ok=True)
            model.config.save_pretrained(out)
            exporters.export(model, onnx_config, out / "model.onnx", opset=onnx_config.DEFAULT_ONNX_OPSET)
        else:
            exporters.onnx_export_from_model(model, out, task="text-classification", do_validation=False)
    path = out / "model.onnx"
    if not path.is_file():
        raise BundleError(f"optimum produced no model.onnx in {out}")
    return path


def _optimize_fp32(raw: Path, dest: Path, optimize: bool) -> dict[str, Any]:
    if not optimize:
        shutil.copyfile(raw, dest)
        return {"optimization": "none"}
    try:
        level = _ort_optimize(raw, dest, level="O1")
        return {"optimization": level}
    except Exception as exc:  # noqa: BLE001 - optimum raises plain exceptions for unsupported architectures
        log.warning("graph optimisation failed (%s): the fp32 graph is kept as exported", exc)
        shutil.copyfile(raw, dest)
        return {"optimization": f"none ({type(exc).__name__})"}


def _ort_optimize(raw: Path, dest: Path, level: str) -> str:
    ort_opt = require("optimum.onnxruntime", "train")
    config_mod = require("optimum.onnxruntime.configuration", "train")
    config = config_mod.AutoOptimizationConfig.with_optimization_level(level)
    with tempfile.TemporaryDirectory(prefix="harmscan-opt-") as tmp:
        optimizer = ort_opt.ORTOptimizer.from_pretrained(raw.parent, file_names=[raw.name])
        optimizer.optimize(save_dir=tmp, optimization_config=config, file_suffix="opt")
        produced = Path(tmp) / f"{raw.stem}_opt.onnx"
        shutil.move(produced, dest)
    return level


def _quantize_int8(optimized: Path, dest: Path) -> dict[str, Any]:
    onnx = require("onnx", "train")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Every MatMul with a constant weight becomes DynamicQuantizeMatMul (VNNI int8 GEMM on this CPU); the
    # attention score products, layer norms and GELU stay fp32.
    quantize_dynamic(
        optimized,
        dest,
        weight_type=QuantType.QInt8,
        per_channel=True,
        # Ops from ORT's own domain (after optimisation) have no ONNX shape inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return {"quantization": "dynamic int8 (QInt8 weights per channel, uint8 activations)"}


def _convert_fp16(raw: Path, dest: Path) -> dict[str, Any]:
    # optimum's O4: the O3 fusions for a GPU, then float16 weights and compute (inputs/outputs stay int64
    # and float32). It needs no GPU to build; it is meant to run on one. Without a GPU, onnxruntime's
    # optimizer logs an ERROR that it cannot run its own GPU session pass: the graph fusions and the fp16
    # conversion are done all the same (the parity gate checks the result), and onnxruntime applies its
    # session-level optimisations when the bundle is loaded on the GPU. Keep that false alarm off the screen.
    noisy = logging.getLogger("onnxruntime.transformers.optimizer")
    level = noisy.level
    noisy.setLevel(logging.CRITICAL)
    try:
        _ort_optimize(raw, dest, level="O4")
    finally:
        noisy.setLevel(level)
    return {"optimization": "O4", "precision": "float16"}


# -- parity --------------------------------------------------------------------------------------------
def _parity(
    model: Any, tokenizer: WindowTokenizer, texts: list[str], staging: Path, variants: list[str]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    torch = require("torch", "train")
    windows = tokenizer.encode([normalize_text(t) for t in texts])
    n_out = int(model.config.num_labels)

    def torch_forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.zeros_like(torch.from_numpy(ids)),
            )
        return out.logits.float().numpy()

    def per_text(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        # The CPU inference batching: with dynamic int8, a text's batch-mates set its activation scales.
        win_logits = forward_windows(windows, fn, PARITY_BATCH, tokenizer.pad_id, n_out, CPU_MAX_BATCH_TOKENS)
        return np.maximum.reduceat(win_logits, windows.first, axis=0)

    reference = sigmoid(per_text(torch_forward))
    results, probs = {}, {"pytorch": reference}
    for variant in variants:
        session = create_session(staging / VARIANT_FILES[variant], "cpu", None, "cpu")
        probs[variant] = sigmoid(per_text(Runner(session, io_binding=False)))
        provider = session.get_providers()[0]
        if variant in TOLERANCES:
            results[variant] = _compare(reference, probs[variant], variant, provider, len(windows))
        else:
            results[variant] = {"provider": provider, "windows": int(len(windows))}
    return results, probs


def _int8_gate(
    probs: dict[str, np.ndarray], vset: ValidationSet, names: list[str], manifest: dict[str, Any], source: str,
    measured: dict[str, Any],
) -> dict[str, Any]:
    """int8 against fp32 (PyTorch when fp32 is not built: the two agree within 1e-4) at the fresh bundle's
    operating point: identity calibration, neutral thresholds."""
    reference = probs.get("fp32", probs["pytorch"])
    thresholds = Policy.from_dict(manifest["thresholds"], names).thresholds
    result = evaluate_gate(reference, probs["int8"], names, thresholds, vset.labels, vset.mask)
    record = gate_record(result, source=source, manifest=manifest, provider=measured.get("provider", ""))
    record["windows"] = measured.get("windows")
    if not record["passed"]:
        log.warning("int8 kept but marked failed: %s", gate_summary(record))
    return record


def _compare(reference: np.ndarray, probs: np.ndarray, variant: str, provider: str, n_windows: int) -> dict[str, Any]:
    diff = np.abs(probs - reference)
    flags_ref, flags = reference >= PARITY_THRESHOLD, probs >= PARITY_THRESHOLD
    tol = TOLERANCES[variant]
    report: dict[str, Any] = {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "p99_abs_diff": float(np.quantile(diff, 0.99)),  # informative: the gate is on the max
        "flag_agreement": float(np.mean(flags_ref == flags)),
        "decision_agreement": float(np.mean(flags_ref.any(axis=1) == flags.any(axis=1))),
        "texts": int(reference.shape[0]),
        "windows": int(n_windows),
        "threshold": PARITY_THRESHOLD,
        "reference": "pytorch fp32",
        "provider": provider,
        "tolerance": dict(tol),
    }
    ok = report["max_abs_diff"] <= float(tol["max_abs_diff"] or 0.0)
    if tol["min_flag_agreement"] is not None:
        ok = ok and report["flag_agreement"] >= float(tol["min_flag_agreement"])
    report["passed"] = bool(ok)
    return report


def _failure(variant: str, r: dict[str, Any]) -> str:
    tol = r["tolerance"]
    text = f"{variant}: max |Δp| {r['max_abs_diff']:.3g} (limit {tol['max_abs_diff']:g})"
    if tol["min_flag_agreement"] is not None:
        text += f", identical flags {r['flag_agreement']:.2%} (need ≥ {tol['min_flag_agreement']:.0%})"
    return text


def _export_record(source: str, n_texts: int) -> dict[str, Any]:
    import onnxruntime

    versions = {"onnxruntime": onnxruntime.__version__}
    for name in ("torch", "transformers", "optimum", "onnx"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a version string is informational only
            continue
    return {
        "validation": {"source": source, "texts": n_texts},
        "tolerances": {**TOLERANCES, "int8": {"task_level_gate": dict(INT8_GATE_LIMITS)}},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions,
    }
