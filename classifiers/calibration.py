"""Calibration maps raw logits to probabilities, per label. Pure numpy: it runs on the inference path.

Parameters live in the bundle manifest under "calibration":
    {"method": "none"} or
    {"method": "temperature", "per_label": {"toxicity": {"temperature": 1.3, "bias": 0.0}, ...}} or
    {"method": "isotonic", "per_label": {"toxicity": {"x": [...logits...], "y": [...probs...]}, ...}}
A label missing from per_label is left uncalibrated (plain sigmoid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harmscan.errors import BundleError

IDENTITY: dict[str, Any] = {"method": "none"}
METHODS = ("none", "temperature", "isotonic")


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def validate(params: Mapping[str, Any], labels: Sequence[str]) -> None:
    method = params.get("method", "none")
    if method not in METHODS:
        raise BundleError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    per_label = params.get("per_label", {}) or {}
    for name, p in per_label.items():
        if name not in labels:
            raise BundleError(f"calibration names label {name!r}, which the bundle does not have")
        if method == "temperature" and not float(p.get("temperature", 1.0)) > 0:
            raise BundleError(f"calibration temperature for {name!r} must be > 0")
        if method == "isotonic" and len(p.get("x", [])) != len(p.get("y", [])):
            raise BundleError(f"isotonic calibration for {name!r} has x and y of different lengths")


def apply_calibration(logits: np.ndarray, params: Mapping[str, Any], labels: Sequence[str]) -> np.ndarray:
    """logits [n, L] -> calibrated probabilities [n, L] (float32)."""
    logits = np.asarray(logits, dtype=np.float64)
    method = params.get("method", "none")
    per_label = params.get("per_label", {}) or {}
    out = sigmoid(logits)
    if method == "none" or not per_label:
        return out.astype(np.float32)
    for j, name in enumerate(labels):
        p = per_label.get(name)
        if not p:
            continue
        if method == "temperature":
            t = float(p.get("temperature", 1.0))
            b = float(p.get("bias", 0.0))
            out[:, j] = sigmoid(logits[:, j] / t + b)
        elif method == "isotonic":
            x = np.asarray(p["x"], dtype=np.float64)
            y = np.asarray(p["y"], dtype=np.float64)
            out[:, j] = np.interp(logits[:, j], x, y)
    return out.astype(np.float32)
