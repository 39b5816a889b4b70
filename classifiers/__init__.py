"""harmscan.classifiers: the bundle, calibration, policy, the ONNX Runtime HarmClassifier and scan.

Attributes are imported lazily: `harmscan --help` imports this package (for the CLI) and must not pay for
onnxruntime. Nothing here imports torch or transformers: export, which needs them, is
`harmscan.training.export`; this package only reads the bundles it writes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.classifier import HarmClassifier, ScanResult
    from harmscan.classifiers.policy import Policy

__all__ = ["Bundle", "HarmClassifier", "Policy", "ScanResult"]

_WHERE = {
    "Bundle": "harmscan.classifiers.bundle",
    "HarmClassifier": "harmscan.classifiers.classifier",
    "ScanResult": "harmscan.classifiers.classifier",
    "Policy": "harmscan.classifiers.policy",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'harmscan.classifiers' has no attribute {name!r}")
