"""ONNX Runtime sessions: provider choice, thread settings, and no silent CPU fallback.

onnxruntime asked for CUDAExecutionProvider without working CUDA logs an error and quietly runs on the CPU
(a recurring user complaint). We always read back `session.get_providers()`: `device="cuda"` fails when CUDA
is not really in use, and `device="auto"` says so when it ends up on the CPU.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import InputError, MissingExtraError

try:
    import onnxruntime as ort
except ImportError:  # the base install ships no ONNX Runtime build: the user picks CPU or GPU
    raise MissingExtraError(
        "ONNX Runtime is not installed: pip install 'harmscan[cpu]' (or 'harmscan[gpu]' for CUDA)"
    ) from None

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
# Graph rewrites that make the CPU slower. SkipLayerNormFusion turns the int8 graph's residual Add +
# LayerNormalization into a SkipLayerNormalization kernel that cost 15 % of the int8 model's time on
# MiniLM-L6 tweets; unfused, int8 ran 16 % faster (278 -> 323 texts per CPU-second, 1 thread; 466 -> 536
# texts/s with 2 threads) and fp32 was unchanged. On CUDA the fused kernel is the fast one.
CPU_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


class DeviceError(InputError):
    """The requested device cannot be used (e.g. device='cuda' without a working CUDA provider)."""


def default_threads() -> int:
    """Threads for ONNX Runtime when the caller gives none: $OMP_NUM_THREADS if set, else ORT's default
    (one per physical core). Tests and shared machines set OMP_NUM_THREADS=1 and get one thread."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else 0


def session_options(threads: int | None) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = default_threads() if threads is None else max(0, int(threads))
    so.inter_op_num_threads = 1  # one sequential graph: inter-op threads would only compete for the cores
    so.log_severity_level = 3  # errors only; we report provider problems ourselves
    return so


def cuda_available() -> bool:
    return CUDA in ort.get_available_providers()


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when this onnxruntime has a CUDA provider, else 'cpu'. Fails for an unusable 'cuda'."""
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise DeviceError(
            "device='cuda' but this onnxruntime has no CUDA provider (available: "
            f"{', '.join(ort.get_available_providers())}): replace onnxruntime with onnxruntime-gpu "
            "(pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu[cuda,cudnn]==1.31.1'; never both, "
            "see docs/scanning.md) or use device='cpu'"
        )
    return device


_PRELOADED = False


def preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that pip installed (`onnxruntime-gpu[cuda,cudnn]`) before the first
    CUDA session: onnxruntime does not look in those site-packages folders on its own, and without this a
    CUDA session fails (or silently falls back to the CPU) unless torch happened to be imported first."""
    global _PRELOADED
    if _PRELOADED or not hasattr(ort, "preload_dlls"):
        return
    _PRELOADED = True
    try:
        ort.preload_dlls()
    except Exception as exc:  # noqa: BLE001 - a failed preload shows up as the provider check's error below
        log.debug("onnxruntime.preload_dlls() failed: %s", exc)


def create_session(model: Path, device: str, threads: int | None, requested: str) -> ort.InferenceSession:
    """A session on `device` ('cpu' or 'cuda'). `requested` is what the user asked for: when CUDA does not
    really run, a requested 'cuda' raises DeviceError and 'auto' warns (the session then runs on the CPU)."""
    so = session_options(threads)
    providers: list[Any] = [CPU]
    disabled = CPU_DISABLED_OPTIMIZERS
    if device == "cuda":
        providers, disabled = [CUDA, CPU], []
        preload_cuda_libraries()
    session = ort.InferenceSession(str(model), sess_options=so, providers=providers, disabled_optimizers=disabled)
    in_use = session.get_providers()
    if device == "cuda" and (not in_use or in_use[0] != CUDA):
        message = (
            f"CUDA was requested but onnxruntime runs {model.name} on {in_use[0] if in_use else 'nothing'} "
            "(CUDA or cuDNN libraries missing or mismatched; see onnxruntime's CUDA requirements)"
        )
        if requested == "cuda":
            raise DeviceError(message + ": fix the CUDA install or use device='cpu'")
        warnings.warn(message + ": continuing on the CPU", RuntimeWarning, stacklevel=3)
        log.warning("%s: continuing on the CPU", message)
    return session


class Runner:
    """Runs a session on padded numpy batches; with IOBinding when asked (the GPU path)."""

    def __init__(self, session: ort.InferenceSession, io_binding: bool) -> None:
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_name = session.get_outputs()[0].name
        self.io_binding = io_binding
        on_cuda = session.get_providers()[0] == CUDA
        self.output_device = "cuda" if on_cuda else "cpu"

    def feeds(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        available = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        missing = [n for n in self.input_names if n not in available]
        if missing:
            raise InputError(f"the model expects inputs {missing} that harmscan does not provide")
        return {name: available[name] for name in self.input_names}

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = self.feeds(ids, mask)
        if not self.io_binding:
            return np.asarray(self.session.run([self.output_name], feeds)[0], dtype=np.float32)
        # IOBinding: inputs are copied to the device once, the output stays there until we ask for it,
        # instead of ORT staging every tensor through host memory on each run.
        binding = self.session.io_binding()
        for name, arr in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(arr))
        binding.bind_output(self.output_name, self.output_device)
        self.session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)
