"""Issue 17: a bundle loads in optimum's ORTModelForSequenceClassification with harmscan's fp32 logits, and
its README.md is a model card whose metadata the Hub's own parser reads."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from harmscan.classifiers.manifest import Manifest

TEXTS = [
    "you are a waste of space",
    "how do I kill a python process",
    "I will stab him with a knife tonight and watch him bleed.",
    "The committee reviewed the budget on Monday morning.",
]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from classifier_helpers import violence_bundle

    return violence_bundle(tmp_path_factory)  # trained: its logits differ from text to text


def test_optimum_loads_the_bundle_with_harmscans_fp32_logits(bundle_dir: Path) -> None:
    pytest.importorskip("optimum.onnxruntime")
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from tokenizers import Tokenizer

    from harmscan.classifiers import HarmClassifier
    from harmscan.text import normalize_text

    config = json.loads((bundle_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "toxicity", "1": "violence", "2": "illegal_advice"}
    assert "_name_or_path" not in config  # a path on the exporting machine

    model = ORTModelForSequenceClassification.from_pretrained(bundle_dir, file_name="model.onnx")
    assert model.config.id2label == {0: "toxicity", 1: "violence", 2: "illegal_advice"}
    tokenizer = Tokenizer.from_file(str(bundle_dir / "tokenizer.json"))  # the bundle's own tokenizer
    ours = HarmClassifier.load(bundle_dir, variant="fp32", threads=1).predict_logits(TEXTS)
    theirs = []
    for text in TEXTS:  # one window each: harmscan's logits are the model's on the normalised text
        ids = np.asarray([tokenizer.encode(normalize_text(text)).ids], dtype=np.int64)
        out = model(input_ids=ids, attention_mask=np.ones_like(ids), token_type_ids=np.zeros_like(ids))
        theirs.append(np.asarray(out.logits)[0])
    np.testing.assert_allclose(np.stack(theirs), ours, atol=1e-5, rtol=0)
    assert np.ptp(ours, axis=0).max() > 0.1  # distinct texts, distinct logits: the comparison has teeth


def test_the_integrity_check_covers_config_but_not_the_model_card(bundle_dir: Path) -> None:
    info, _ = Manifest.load(bundle_dir)
    assert "config.json" in info.files and "README.md" not in info.files
    assert (bundle_dir / "README.md").is_file()


def _known_card_keys() -> set[str]:
    from huggingface_hub import ModelCardData

    params = set(inspect.signature(ModelCardData.__init__).parameters) - {"self", "kwargs",
                                                                          "ignore_metadata_errors"}
    return {*params, "model-index"} - {"eval_results", "model_name"}  # those two are written as model-index


def test_exported_readme_is_a_model_card_the_hub_parser_reads(bundle_dir: Path) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(bundle_dir / "README.md")  # parses the YAML front matter
    data = card.data.to_dict()
    assert set(data) <= _known_card_keys(), set(data) - _known_card_keys()
    assert data["pipeline_tag"] == "text-classification"
    assert data["language"] == ["en"] and data["library_name"] == "onnx"
    assert data["license"] == "other" and data["license_name"]
    assert {"toxicity", "violence", "illegal_advice", "harmscan"} <= set(data["tags"])
    for name in ("toxicity", "violence", "illegal_advice"):
        assert f"| `{name}` | 0.5 |" in card.text  # the thresholds the bundle ships


def test_card_lists_sources_licences_metrics_and_current_thresholds(bundle_dir: Path, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from harmscan.classifiers.bundle import write_manifest
    from harmscan.classifiers.modelcard import write_model_card

    document = json.loads((bundle_dir / "harmscan.json").read_text())
    document["training"] = {
        "recipe": {"name": "default"}, "commercial_use": True,
        "sources": {
            "civil_comments": {"licence": "CC0-1.0", "commercial_use": True,
                               "origin": "https://huggingface.co/datasets/google/civil_comments"},
            "davidson_hate_offensive": {"licence": "MIT", "commercial_use": True,
                                        "origin": "https://github.com/t-davidson/hate-speech-and-offensive-language"},
        },
    }
    document["metrics"] = {"validation": {"auprc_violence": 0.8123456, "roc_auc_violence": 0.95, "macro_auprc": 0.7}}
    document["thresholds"] = {"thresholds": {"toxicity": 0.62, "violence": 0.41, "illegal_advice": 0.55},
                              "objective": "precision>=0.9"}
    write_manifest(tmp_path, document)
    write_model_card(tmp_path, Manifest.from_dict(document, tmp_path), repo_id="acme/harmscan-default")

    card = ModelCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert set(data) <= _known_card_keys()
    assert data["datasets"] == ["google/civil_comments"]  # only origins that are Hub datasets
    assert data["metrics"] == ["average_precision", "roc_auc"]
    assert {(r.metric_name, r.metric_value, r.dataset_split) for r in card.data.eval_results} == {
        ("AUPRC violence", 0.8123, "validation"), ("ROC-AUC violence", 0.95, "validation")}
    assert "| civil_comments | CC0-1.0 | yes |" in card.text
    assert "| davidson_hate_offensive | MIT | yes |" in card.text
    assert "| `violence` | 0.41 |" in card.text and "precision>=0.9" in card.text
    assert 'HarmClassifier.load("hf://acme/harmscan-default")' in card.text
