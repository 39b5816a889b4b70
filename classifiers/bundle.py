"""The model bundle: model files + tokenizer.json + harmscan.json, read by every front (scan, serve, eval).

Layout of a bundle folder:
    harmscan.json        the manifest (this module reads and writes it)
    tokenizer.json       a `tokenizers` tokenizer (no transformers needed at inference)
    model.onnx           fp32, optimised for ONNX Runtime
    model.int8.onnx      int8, dynamically quantised (CPU)
    model.fp16.onnx      fp16 (GPU), when built
    config.json          id2label / problem_type for optimum's ORTModelForSequenceClassification
    README.md            the model card (modelcard.py): documentation, not hashed
Every file except the manifest is listed in its `files` with its sha256; loading verifies them. The
manifest is read and validated by `manifest.Manifest`; this module writes it.
Calibration and thresholds are edited in place by `harmscan calibrate` / `harmscan thresholds`, which
rewrite only the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmscan import __version__
from harmscan.classifiers.calibration import IDENTITY
from harmscan.classifiers.hub import resolve_bundle_path
from harmscan.classifiers.manifest import FORMAT, FORMAT_VERSION, MANIFEST, Manifest
from harmscan.classifiers.modelcard import MODEL_CARD
from harmscan.classifiers.policy import Policy
from harmscan.errors import BundleError
from harmscan.labels import Taxonomy
from harmscan.text import NORMALIZER_VERSION

VARIANT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
# A bundle is read by whoever serves it, often another user than the one who exported it (a service
# account, a container): readable by all by default. `harmscan export --private` keeps it to its owner.
FILE_MODE, DIR_MODE = 0o644, 0o755
PRIVATE_FILE_MODE, PRIVATE_DIR_MODE = 0o600, 0o700


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """A loaded, verified bundle. `info` is its typed manifest (what every front reads); `manifest` is the
    harmscan.json document as stored, which `update` rewrites (keys `Manifest` does not name kept)."""

    path: Path
    manifest: dict[str, Any]
    info: Manifest

    # -- reading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True) -> Bundle:
        folder = resolve_bundle_path(path)  # a folder, or hf://owner/name[@rev]: its snapshot (hub.py)
        info, document = Manifest.load(folder)
        bundle = cls(folder, document, info)
        if verify:
            bundle.verify_files()
        return bundle

    def verify_files(self) -> None:
        """Refuse a tampered or incomplete bundle: every listed file must exist with its recorded sha256."""
        for rel, expected in self.info.files.items():
            fpath = self.path / rel
            if not fpath.is_file():
                raise BundleError(f"bundle file {fpath} is missing: the bundle is incomplete, re-export it")
            actual = sha256_file(fpath)
            if actual != expected:
                raise BundleError(
                    f"bundle file {fpath} does not match its recorded sha256 (expected {expected[:12]}…, "
                    f"got {actual[:12]}…): the bundle was modified or corrupted; re-export or re-download it"
                )

    @property
    def taxonomy(self) -> Taxonomy:
        return self.info.taxonomy

    @property
    def label_names(self) -> list[str]:
        return self.info.label_names

    @property
    def calibration(self) -> dict[str, Any]:
        return dict(self.info.calibration)

    @property
    def policy(self) -> Policy:
        return self.info.policy

    @property
    def max_length(self) -> int:
        return self.info.max_length

    @property
    def tokenizer_path(self) -> Path:
        return self.path / self.info.tokenizer

    def variant_path(self, variant: str) -> Path:
        info = self.info.variants.get(variant)
        if not info:
            have = ", ".join(sorted(self.info.variants)) or "none"
            raise BundleError(f"bundle {self.path} has no {variant} variant (it has: {have})")
        return self.path / info["file"]

    @property
    def variants(self) -> list[str]:
        return sorted(self.info.variants)

    @property
    def fingerprint(self) -> str:
        """A short hash of the model files and the decision-relevant manifest fields (audit logs)."""
        return self.info.fingerprint

    # -- writing -------------------------------------------------------------------------------------
    def update(self, **fields: Any) -> None:
        """Set top-level manifest fields (calibration, thresholds, metrics...) and save atomically.
        New calibration or thresholds turn a variant's task-level gate verdict `pending`: it was measured
        at the old operating point (`harmscan thresholds` measures it again)."""
        changed = [k for k in ("calibration", "thresholds") if k in fields and fields[k] != self.manifest.get(k)]
        document = {**self.manifest, **fields}
        if changed:
            mark_gates_pending(document, f"{' and '.join(changed)} changed after the gate was measured")
        self.info = Manifest.from_dict(document, self.path)  # validated before anything is written
        self.manifest = document
        write_manifest(self.path, self.manifest)


def new_manifest(
    taxonomy: Taxonomy,
    *,
    max_length: int,
    base_model: str,
    training: Mapping[str, Any],
    window_stride: int,
) -> dict[str, Any]:
    """A manifest with neutral calibration and thresholds; export fills variants and files."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "harmscan_version": __version__,
        "labels": taxonomy.to_list(),
        "max_length": int(max_length),
        "window_stride": int(window_stride),
        "normalizer_version": NORMALIZER_VERSION,
        "tokenizer": "tokenizer.json",
        "base_model": base_model,
        "variants": {},
        "calibration": dict(IDENTITY),
        "thresholds": Policy.neutral(taxonomy.names).to_dict(),
        "training": dict(training),
        "metrics": {},
        "files": {},
    }


def mark_gates_pending(manifest: dict[str, Any], reason: str) -> None:
    """Set every task-level gate record (int8's) to `pending`, figures kept: flags and ECE depend on the
    calibration and thresholds, so a verdict holds only for the operating point it was measured at."""
    for info in manifest.get("variants", {}).values():
        parity = info.get("parity") or {}
        if parity.get("gate") == "task-level" and parity.get("status") != "pending":
            parity.update(status="pending", passed=False, pending_reason=reason)


def record_files(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    """Hash every file in the bundle folder into manifest['files'], except the manifest and the model card
    (documentation, rewritten by `hub.push` and editable on the Hub: see modelcard.py)."""
    files = {}
    for fpath in sorted(bundle_dir.rglob("*")):
        if fpath.is_file() and fpath.relative_to(bundle_dir).as_posix() not in (MANIFEST, MODEL_CARD):
            files[fpath.relative_to(bundle_dir).as_posix()] = sha256_file(fpath)
    manifest["files"] = files


def write_manifest(bundle_dir: Path, manifest: Mapping[str, Any]) -> None:
    bundle_dir = Path(bundle_dir)
    target = bundle_dir / MANIFEST
    # mkstemp makes the file 0600; keep the mode of the manifest it replaces (a --private bundle stays
    # private after `harmscan calibrate`), else the readable default.
    mode = target.stat().st_mode & 0o777 if target.is_file() else FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=bundle_dir, prefix=".harmscan.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, target)


def set_bundle_modes(bundle_dir: str | os.PathLike[str], private: bool = False) -> None:
    """chmod the bundle folder, its sub-folders and files: 0755/0644, or 0700/0600 when `private`.
    Explicit modes, not the umask's: the staging folder comes from mkdtemp (0700) and the manifest from
    mkstemp (0600), which would otherwise lock out a service running as another user."""
    root = Path(bundle_dir)
    file_mode, dir_mode = (PRIVATE_FILE_MODE, PRIVATE_DIR_MODE) if private else (FILE_MODE, DIR_MODE)
    os.chmod(root, dir_mode)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, dir_mode if path.is_dir() else file_mode)
