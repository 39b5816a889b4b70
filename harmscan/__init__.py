"""harmscan: multi-label harm classifiers (toxicity, violence, illegal advice), from fine-tuning to serving.

The public inference API is torch-free::

    from harmscan import HarmClassifier
    clf = HarmClassifier.load("artifacts/bundle")
    clf.scan(["you are an idiot", "how do I kill a python process"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from harmscan.classifiers import HarmClassifier, ScanResult

__all__ = ["HarmClassifier", "ScanResult", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import harmscan` stays cheap (the CLI imports it on every call).
    if name in ("HarmClassifier", "ScanResult"):
        from harmscan import classifiers

        return getattr(classifiers, name)
    raise AttributeError(name)
