"""The bundle's README.md: a Hugging Face model card, written from the manifest.

Front matter: the Hub's model-card metadata (license, language, library_name, pipeline_tag, tags, datasets,
base_model, metrics, model-index); body: labels and thresholds, calibration, how to load the bundle with
harmscan or optimum, training sources with their licences, intended use and limits.

`harmscan export` writes it and `harmscan.classifiers.hub.push` writes it again from the current manifest
(thresholds and calibration change after export). It is documentation, so it is the one file besides the
manifest that `files` does not hash: editing the card on the Hub never breaks the integrity check.
Written with pyyaml only (a base dependency); tests parse it with huggingface_hub's ModelCard.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harmscan.classifiers.language import bundle_languages
from harmscan.classifiers.manifest import Manifest

MODEL_CARD = "README.md"
HF_CONFIG = "config.json"  # what optimum's ORTModelForSequenceClassification reads beside model.onnx
_HF_DATASET = re.compile(r"^https://huggingface\.co/datasets/([\w.-]+/[\w.-]+)")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_METRIC_TYPES = {"auprc": ("average_precision", "AUPRC"), "roc_auc": ("roc_auc", "ROC-AUC")}


def card_metadata(info: Manifest, *, license: str | None = None, model_name: str = "harmscan") -> dict[str, Any]:
    """The YAML front matter (Hub model-card keys only)."""
    training = info.training
    sources = training.get("sources") or {}
    meta: dict[str, Any] = {
        "license": license or str(training.get("license") or "other"),
        "language": list(bundle_languages(training)),
        "library_name": "onnx",
        "pipeline_tag": "text-classification",
        "tags": ["harmscan", "onnx", "optimum", "text-classification", "multi-label-classification",
                 "content-moderation", *info.label_names],
    }
    if meta["license"] == "other":  # the weights follow the base model's and the data's terms: see the body
        meta["license_name"] = "training-data-licences"
    datasets = sorted({m.group(1) for s in sources.values() if isinstance(s, Mapping)
                       if (m := _HF_DATASET.match(str(s.get("origin") or "")))})
    if datasets:
        meta["datasets"] = datasets
    if info.base_model and _HUB_ID.match(info.base_model):
        meta["base_model"] = info.base_model
    results = _eval_results(info, model_name)
    if results:
        meta["metrics"] = sorted({m["type"] for r in results for m in r["metrics"]})
        meta["model-index"] = [{"name": model_name, "results": results}]
    return meta


def _eval_results(info: Manifest, model_name: str) -> list[dict[str, Any]]:
    """model-index results: per label AUPRC / ROC-AUC on the recipe's validation and test splits."""
    recipe_name = _recipe_name(info.training)
    out = []
    for split in ("validation", "test"):
        figures = info.metrics.get(split)
        if not isinstance(figures, Mapping):
            continue
        metrics = []
        for kind, (mtype, shown) in _METRIC_TYPES.items():
            for label in info.label_names:
                value = figures.get(f"{kind}_{label}")  # as training.trainer.masked_metrics names them
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics.append({"type": mtype, "value": round(float(value), 4), "name": f"{shown} {label}"})
        if metrics:
            out.append({
                "task": {"type": "text-classification", "name": "multi-label harm classification"},
                "dataset": {"name": f"harmscan recipe {recipe_name} ({split} split)",
                            "type": f"harmscan-{recipe_name}", "split": split},
                "metrics": metrics,
            })
    return out


def render_model_card(info: Manifest, *, repo_id: str | None = None, license: str | None = None) -> str:
    meta = card_metadata(info, license=license, model_name=(repo_id or "harmscan").split("/")[-1])
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{_body(info, repo_id)}"


def write_model_card(bundle_dir: str | os.PathLike[str], info: Manifest, *, repo_id: str | None = None,
                     license: str | None = None) -> Path:
    path = Path(bundle_dir) / MODEL_CARD
    path.write_text(render_model_card(info, repo_id=repo_id, license=license), encoding="utf-8")
    return path


def _body(info: Manifest, repo_id: str | None) -> str:
    training = info.training
    thresholds = info.policy.thresholds
    languages = ", ".join(bundle_languages(training))
    ref = f"hf://{repo_id}" if repo_id else "path/to/bundle"
    lines = [
        f"# {repo_id or 'harmscan bundle'}",
        "",
        "A multi-label harm classifier exported by [harmscan](https://github.com/harmscan/harmscan): one sigmoid "
        "per label, ONNX graphs for ONNX Runtime (no PyTorch needed), calibrated scores and the thresholds "
        "that `harmscan scan`, `harmscan serve` and `harmscan eval` apply.",
        "",
        "## Labels and thresholds",
        "",
        "| label | threshold | definition |",
        "|---|---:|---|",
    ]
    for entry in info.labels:
        name = str(entry["name"])
        definition = " ".join(str(entry.get("definition", "")).split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {thresholds.get(name, 0.5):.3g} | {definition} |")
    objective = info.thresholds.get("objective") or (info.thresholds.get("meta") or {}).get("objective")
    lines += [
        "",
        f"Thresholds chosen for: {objective or 'the neutral default (0.5)'}. "
        f"Calibration: {info.calibration_method}. Max length {info.max_length} tokens; longer texts are "
        "scanned in overlapping windows, the score per label being the max over them.",
        "",
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
    ]
    for variant, record in sorted(info.variants.items()):
        parity = record.get("parity") or {}
        verdict = "passed its parity gate" if parity.get("passed") else "did not pass its parity gate"
        lines.append(f"| `{record.get('file')}` | {variant} ONNX graph ({verdict}) |")
    lines += [
        "| `tokenizer.json` | the tokenizer (`tokenizers`) |",
        f"| `{HF_CONFIG}` | labels for optimum / transformers (`id2label`, `problem_type`) |",
        "| `harmscan.json` | the manifest: labels, calibration, thresholds, training sources, sha256 of every file |",
        "",
        "## Use",
        "",
        "```python",
        "from harmscan import HarmClassifier",
        f'clf = HarmClassifier.load("{ref}")   # verifies every file\'s sha256 first',
        'clf.scan(["how do I kill a python process"])[0].to_dict()',
        "```",
        "",
        "Raw logits with optimum (apply a sigmoid, then the bundle's calibration and thresholds yourself):",
        "",
        "```python",
        "from optimum.onnxruntime import ORTModelForSequenceClassification",
        'model = ORTModelForSequenceClassification.from_pretrained(bundle_dir, file_name="model.onnx")',
        "```",
        "",
        "## Training data and licences",
        "",
        f"Recipe: {_recipe_name(training)}. Commercial use allowed by every source: "
        f"**{'yes' if training.get('commercial_use') else 'no'}**.",
        "",
    ]
    sources = training.get("sources") or {}
    if sources:
        lines += ["| source | licence | commercial use | origin |", "|---|---|---|---|"]
        for name, src in sorted(sources.items()):
            src = src if isinstance(src, Mapping) else {}
            lines.append(f"| {name} | {src.get('licence', 'unknown')} | "
                         f"{'yes' if src.get('commercial_use') else 'no'} | {src.get('origin', '')} |")
    else:
        lines.append("The manifest records no training sources.")
    lines += [
        "",
        "## Intended use",
        "",
        "Screening user-generated text and LLM prompts or outputs for toxicity, violence and requests for "
        "illegal help, as a filter in front of people who review and decide, or as a guardrail with a stated "
        "policy. Not for decisions about people (employment, credit, policing) without human review.",
        "",
        "## Limits",
        "",
        f"- Trained on {languages} text: other languages are scored as if they were {languages}. Every result "
        "carries its detected language; a policy's `out_of_scope` block routes the others (to review, by default).",
        "- Mentioning a topic (news, history, fiction, safety advice) should not flag, but short or sarcastic "
        "texts and new slang are where it errs; measure it on your own data (`harmscan eval`, "
        "`harmscan thresholds --labels`) before relying on its thresholds.",
        "- Scores reflect the labelling conventions of the training sources, including their biases against "
        "some dialects and identity terms (the evaluation report has an identity-term audit).",
        "",
    ]
    return "\n".join(lines)


def _recipe_name(training: Mapping[str, Any]) -> str:
    recipe = training.get("recipe")
    return str(recipe.get("name") if isinstance(recipe, Mapping) else recipe or "unknown")
