"""The bundle manifest (harmscan.json), typed: read, validated and given its defaults here, once.

Every front (scan, serve, eval, the Ray engine) reads a bundle's manifest through `Manifest` fields
(`bundle.info.window_stride`, `bundle.info.base_model`...), never through raw keys with its own defaults:
`tests/test_architecture.py` fails on `manifest["..."]` / `manifest.get(...)` outside the modules that write
the document (this one, `bundle.py`, the int8 gate and the training-side export).

The on-disk format is unchanged (see docs/architecture.md, "Manifest"); keys this class does not name
(`export`, a gate's record...) stay in the document, which `Bundle.update` rewrites as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harmscan.classifiers.calibration import IDENTITY, validate
from harmscan.classifiers.policy import Policy
from harmscan.errors import BundleError
from harmscan.labels import Taxonomy
from harmscan.text import NORMALIZER_VERSION

MANIFEST = "harmscan.json"
FORMAT = "harmscan-bundle"
FORMAT_VERSION = 1
REQUIRED = ("labels", "files", "variants", "tokenizer", "max_length")


def _frozen(value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Manifest:
    """What a bundle's harmscan.json says, with the defaults of older bundles applied."""

    format_version: int
    harmscan_version: str | None
    labels: tuple[Mapping[str, Any], ...]  # taxonomy entries, as `Taxonomy.to_list` writes them
    max_length: int
    window_stride: int  # tokens between window starts; bundles from before it was recorded: max_length // 4
    normalizer_version: int
    tokenizer: str  # relative path of tokenizer.json
    base_model: str | None
    variants: Mapping[str, Mapping[str, Any]]  # {fp32|int8|fp16: {file, parity, ...}}
    calibration: Mapping[str, Any]  # see calibration.py; IDENTITY when absent
    thresholds: Mapping[str, Any]  # the policy document (see policy.py); {} when absent (0.5 everywhere)
    training: Mapping[str, Any]  # sources, licences, commercial_use, recipe
    metrics: Mapping[str, Any]
    files: Mapping[str, str]  # {relpath: sha256}
    # A short hash of the model files and the decision-relevant fields (audit logs, scan progress records).
    fingerprint: str

    @classmethod
    def from_dict(cls, data: Any, bundle_dir: Path) -> Manifest:
        """Validate the parsed harmscan.json of the bundle in `bundle_dir`; errors are one line."""
        mpath = Path(bundle_dir) / MANIFEST
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise BundleError(f"{mpath} is not a harmscan bundle manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{mpath} has bundle format {version}, this harmscan reads format {FORMAT_VERSION}: "
                "re-export the model with this version"
            )
        for key in REQUIRED:
            if key not in data:
                raise BundleError(f"{mpath} lacks '{key}': the bundle is incomplete, re-export it")
        if data.get("normalizer_version") != NORMALIZER_VERSION:
            raise BundleError(
                f"{bundle_dir} was built with text normaliser v{data.get('normalizer_version')}, this harmscan "
                f"has v{NORMALIZER_VERSION}: re-export the bundle"
            )
        max_length = int(data["max_length"])
        manifest = cls(
            format_version=int(version),
            harmscan_version=data.get("harmscan_version"),
            labels=tuple(MappingProxyType(dict(item)) for item in data["labels"]),
            max_length=max_length,
            window_stride=int(data.get("window_stride", max_length // 4)),
            normalizer_version=NORMALIZER_VERSION,
            tokenizer=str(data["tokenizer"]),
            base_model=data.get("base_model"),
            variants=MappingProxyType({name: _frozen(info) for name, info in data["variants"].items()}),
            calibration=_frozen(data.get("calibration") or IDENTITY),
            thresholds=_frozen(data.get("thresholds")),
            training=_frozen(data.get("training")),
            metrics=_frozen(data.get("metrics")),
            files=_frozen(data["files"]),
            fingerprint=_fingerprint(data),
        )
        validate(data.get("calibration", IDENTITY), manifest.label_names)
        Policy.from_dict(data.get("thresholds", {}), manifest.label_names, origin=str(mpath))
        return manifest

    @classmethod
    def load(cls, bundle_dir: str | Path) -> tuple[Manifest, dict[str, Any]]:
        """(typed manifest, the document as stored) of the bundle folder `bundle_dir`."""
        path = Path(bundle_dir)
        mpath = path / MANIFEST
        if not path.is_dir():
            raise BundleError(f"bundle {path} does not exist or is not a folder: create one with `harmscan export`")
        if not mpath.is_file():
            raise BundleError(f"{path} is not a harmscan bundle: {MANIFEST} is missing (create it with `harmscan export`)")
        try:
            document = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{mpath} is corrupt (not valid JSON: {exc}); re-export the bundle") from None
        return cls.from_dict(document, path), document

    # -- derived ---------------------------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        return [item["name"] for item in self.labels]

    @property
    def taxonomy(self) -> Taxonomy:
        return Taxonomy.from_list([dict(item) for item in self.labels])

    @property
    def policy(self) -> Policy:
        return Policy.from_dict(self.thresholds, self.label_names)

    @property
    def calibration_method(self) -> str:
        return str(self.calibration.get("method", "none"))

    def parity(self, variant: str) -> dict[str, Any] | None:
        """The variant's gate record (None when the bundle lacks the variant or it was never measured)."""
        record = (self.variants.get(variant) or {}).get("parity")
        return None if record is None else dict(record)

    def scoring_identity(self, variant: str) -> dict[str, Any]:
        """What a text's logits depend on for `variant`: model and tokenizer hashes, window geometry and
        normaliser (eval's score cache is keyed by it; calibration and thresholds do not enter)."""
        model_file = self.variants[variant]["file"]
        return {
            "model": self.files.get(model_file, model_file),
            "tokenizer": self.files.get(self.tokenizer, ""),
            "max_length": self.max_length,
            "window_stride": self.window_stride,
            "normalizer": self.normalizer_version,
        }


def _fingerprint(data: Mapping[str, Any]) -> str:
    # Of the document as stored (`thresholds` None when absent), so that bundles keep their fingerprint.
    h = hashlib.sha256()
    for rel, digest in sorted(data["files"].items()):
        h.update(f"{rel}={digest};".encode())
    calibration = dict(data.get("calibration") or IDENTITY)
    h.update(json.dumps([calibration, data.get("thresholds")], sort_keys=True).encode())
    return h.hexdigest()[:16]
