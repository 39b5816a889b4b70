"""`harmscan export`: bundle contents, the parity gate, and refusal of tampered bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from classifier_helpers import run_harmscan, tiny_bundle

from harmscan.classifiers.bundle import Bundle
from harmscan.errors import BundleError, InputError


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return tiny_bundle(tmp_path_factory, tiny_model_dir)


def _copy(src: Path, tmp_path: Path, name: str = "copy") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def test_export_records_parity_within_tolerance_and_training_info(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / "harmscan.json").read_text())
    assert set(manifest["variants"]) == {"fp32", "int8"}
    fp32, int8 = manifest["variants"]["fp32"]["parity"], manifest["variants"]["int8"]["parity"]
    assert fp32["passed"] and fp32["max_abs_diff"] <= 1e-4
    # int8 against fp32; on the unlabelled built-in texts max |Δp| <= 0.02 stands in for AUPRC / ECE.
    assert int8["passed"] and int8["status"] == "passed" and int8["gate"] == "task-level"
    assert int8["max_abs_diff"] <= 0.02 and int8["flag_agreement"] >= 0.99 and not int8["labelled"]
    assert fp32["texts"] >= 150 and manifest["export"]["validation"]["source"] == "builtin"
    # Every file is hashed; the manifest carries what the runtime and the audit need.
    assert set(manifest["files"]) == {"model.onnx", "model.int8.onnx", "tokenizer.json", "config.json"}
    assert manifest["max_length"] == 128 and manifest["window_stride"] == 32
    assert manifest["labels"][1]["name"] == "violence" and manifest["labels"][1]["definition"]
    assert manifest["training"]["recipe"] == "test" and manifest["training"]["commercial_use"] is True
    assert manifest["base_model"] == "tiny-bert-from-config"
    assert manifest["calibration"] == {"method": "none"}
    assert manifest["thresholds"]["thresholds"] == {"toxicity": 0.5, "violence": 0.5, "illegal_advice": 0.5}
    Bundle.load(bundle_dir)  # verifies every hash


def test_bundle_with_one_byte_changed_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    tampered = _copy(bundle_dir, tmp_path)
    model = tampered / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.int8\.onnx does not match its recorded sha256"):
        Bundle.load(tampered)
    from harmscan.classifiers import HarmClassifier

    with pytest.raises(BundleError, match="modified or corrupted"):
        HarmClassifier.load(tampered, variant="fp32", threads=1)  # refused even for the untouched variant
    # The CLI prints one line, no traceback, exit 2.
    proc = run_harmscan("scan", "-", "-o", str(tmp_path / "out.jsonl"), "--bundle", str(tampered), input="hello\n")
    assert proc.returncode == 2
    assert proc.stderr.startswith("harmscan: error: bundle file") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bundle_with_mismatched_tokenizer_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    tampered = _copy(bundle_dir, tmp_path)
    tok = tampered / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    with pytest.raises(BundleError, match="tokenizer.json does not match"):
        Bundle.load(tampered)


def test_parity_gate_refuses_export_past_tolerance(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harmscan.training import export

    # A gate no fp32 graph can pass: the export must fail loudly, name the figures, and write nothing.
    # (int8 answers to the task-level gate instead: tests/test_int8_gate.py.)
    monkeypatch.setitem(export.TOLERANCES, "fp32", {"max_abs_diff": -1.0, "min_flag_agreement": None})
    out = tmp_path / "bundle"
    texts = ["hello there", "I will hurt you", "a much longer sentence about the weather and the sea"]
    with pytest.raises(BundleError, match=r"parity gate on 3 caller texts: fp32: max \|Δp\| [0-9.e-]+ \(limit -1\)"):
        export.export_bundle(tiny_model_dir, out, validation=texts, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind

    # Asked explicitly, the failing variant is kept but marked, and "auto" does not choose it.
    export.export_bundle(tiny_model_dir, out, variants=("fp32",), validation=texts, progress=False,
                         allow_parity_failure=True)
    manifest = json.loads((out / "harmscan.json").read_text())
    assert manifest["variants"]["fp32"]["parity"]["passed"] is False
    from harmscan.classifiers import HarmClassifier

    with pytest.raises(BundleError, match="no model variant usable on cpu"):
        HarmClassifier.load(out, threads=1)
    with pytest.warns(RuntimeWarning, match="failed the export parity gate"):
        assert HarmClassifier.load(out, variant="fp32", threads=1).variant == "fp32"


def test_export_fp16_and_recorded_validation_dataset(tiny_model_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    model_dir = _copy(tiny_model_dir, tmp_path, "model")
    texts = [f"validation text number {i} about cats and dogs" for i in range(40)]
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["unused"]}),
        "validation": datasets.Dataset.from_dict({"text": texts}),
    })
    ds.save_to_disk(str(tmp_path / "data"))
    info = json.loads((model_dir / "harmscan_training.json").read_text())
    info["dataset"] = "../data"  # relative to the model folder, as a moved artifacts/ tree keeps working
    (model_dir / "harmscan_training.json").write_text(json.dumps(info))

    out = tmp_path / "bundle"
    from harmscan.training.export import export_bundle

    export_bundle(model_dir, out, variants=("fp32",), fp16=True, progress=False)
    manifest = json.loads((out / "harmscan.json").read_text())
    assert manifest["export"]["validation"]["source"].startswith("dataset:")
    assert manifest["export"]["validation"]["texts"] == 40
    fp16 = manifest["variants"]["fp16"]
    assert fp16["file"] == "model.fp16.onnx" and "model.fp16.onnx" in manifest["files"]
    assert fp16["parity"]["passed"] and fp16["parity"]["max_abs_diff"] <= 0.01


def test_export_refuses_bad_model_folders_and_outputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    from harmscan.training.export import export_bundle

    with pytest.raises(InputError, match="does not exist"):
        export_bundle(tmp_path / "nope", tmp_path / "b", progress=False)
    no_info = _copy(tiny_model_dir, tmp_path, "no_info")
    (no_info / "harmscan_training.json").unlink()
    with pytest.raises(InputError, match="lacks harmscan_training.json"):
        export_bundle(no_info, tmp_path / "b", progress=False)

    swapped = _copy(tiny_model_dir, tmp_path, "swapped")
    info = json.loads((swapped / "harmscan_training.json").read_text())
    info["labels"] = [info["labels"][1], info["labels"][0], info["labels"][2]]
    (swapped / "harmscan_training.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match="id2label .* does not match the labels"):
        export_bundle(swapped, tmp_path / "b", progress=False)

    unrelated = tmp_path / "my_documents"
    unrelated.mkdir()
    (unrelated / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="exists and is not a harmscan bundle"):
        export_bundle(tiny_model_dir, unrelated, progress=False)
    assert (unrelated / "thesis.tex").read_text() == "precious"
    with pytest.raises(InputError, match="unknown variants"):
        export_bundle(tiny_model_dir, tmp_path / "b", variants=("int4",), progress=False)


def test_cli_export_replaces_an_earlier_bundle(tiny_model_dir: Path, bundle_dir: Path, tmp_path: Path) -> None:
    out = _copy(bundle_dir, tmp_path, "bundle")
    (out / "stale.txt").write_text("left over from an older export")
    proc = run_harmscan("export", str(tiny_model_dir), "-o", str(out), "--variants", "fp32", "--no-progress", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "fp32: model.onnx" in proc.stdout and "passed" in proc.stdout
    assert not (out / "stale.txt").exists() and not (out / "model.int8.onnx").exists()
    assert Bundle.load(out).variants == ["fp32"]
