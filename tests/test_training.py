"""Masked multi-label training: zero gradient for unknown labels; data build -> train -> reload -> predict."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harmscan.training.recipe import parse_recipe  # noqa: E402
from harmscan.training.trainer import masked_bce_loss, masked_metrics, positive_weights  # noqa: E402


def test_masked_labels_contribute_exactly_zero_gradient():
    torch.manual_seed(0)
    logits = torch.randn(8, 3, requires_grad=True)
    labels = torch.randint(0, 2, (8, 3)).float()
    mask = torch.ones(8, 3)
    mask[:, 1] = 0  # violence unknown for every row
    mask[3, :] = 0  # one row labels nothing
    loss = masked_bce_loss(logits, labels, mask, pos_weight=torch.tensor([1.0, 3.0, 2.0]))
    loss.backward()
    grad = logits.grad
    assert torch.all(grad[:, 1] == 0)
    assert torch.all(grad[3] == 0)
    assert torch.all(grad[mask > 0] != 0)

    # Flipping an unknown label changes nothing at all; flipping a known one does.
    flipped = labels.clone()
    flipped[:, 1] = 1 - flipped[:, 1]
    same = masked_bce_loss(logits.detach(), flipped, mask, pos_weight=torch.tensor([1.0, 3.0, 2.0]))
    assert same.item() == pytest.approx(loss.item(), abs=0)
    flipped[0, 0] = 1 - flipped[0, 0]
    assert masked_bce_loss(logits.detach(), flipped, mask).item() != pytest.approx(loss.item())


def test_masked_loss_ignores_inf_logits_on_unknown_labels():
    logits = torch.tensor([[0.3, float("inf")]], requires_grad=True)
    loss = masked_bce_loss(logits, torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[0, 1] == 0


def test_positive_weights_follow_the_known_label_balance():
    labels = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=np.float32)
    mask = np.array([[1, 1], [1, 1], [1, 1], [1, 0]], dtype=np.float32)
    w = positive_weights(labels, mask, "linear", 10.0)
    assert w[0] == pytest.approx(3.0)
    assert w[1] == pytest.approx(1.0)  # head 1 has no known positive: neutral weight
    assert positive_weights(labels, mask, "sqrt", 10.0)[0] == pytest.approx(3 ** 0.5)


def test_masked_metrics_exclude_unknown_rows():
    logits = np.array([[2.0], [-2.0], [5.0], [-5.0]])
    labels = np.array([[1.0], [0.0], [0.0], [1.0]])
    mask = np.array([[1.0], [1.0], [0.0], [0.0]])  # the two wrong rows are unknown
    m = masked_metrics(logits, labels, mask, ["toxicity"])
    assert m["auprc_toxicity"] == pytest.approx(1.0)
    assert m["roc_auc_toxicity"] == pytest.approx(1.0)


TINY_RECIPE = {
    "name": "tiny",
    "commercial": True,
    "max_length": 32,
    "sources": {
        "jigsaw_toxic_sample_ibm": {},
        "catqa": {"cap": 200},
        "safetext": {"cap": 200},
    },
    "split": {"validation": 0.2, "test": 0.1, "seed": 1},
    "train": {"epochs": 1, "batch_size": 16, "evaluations": 2, "learning_rate": 1e-3},
}


@pytest.fixture(scope="module")
def tiny_dataset(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harmscan.training.dataset import build_dataset

    out = tmp_path_factory.mktemp("ds")
    return build_dataset(parse_recipe(TINY_RECIPE, "tiny"), data_dir, out)


def test_build_writes_stratified_masked_splits(tiny_dataset: Path):
    from harmscan.training.dataset import load_built

    dd, summary = load_built(tiny_dataset)
    assert set(dd) == {"train", "validation", "test"}
    assert len(dd["train"]) > len(dd["validation"]) > 0 and len(dd["test"]) > 0
    for split in dd.values():
        for source in set(split["source"]):
            assert source in TINY_RECIPE["sources"]
    # every source appears in every split (stratified by source)
    for src in ("catqa", "safetext"):
        assert all(src in set(dd[s]["source"]) for s in ("train", "validation", "test"))
    # texts are unique across splits (dedup before split)
    texts = [t for s in dd.values() for t in s["text"]]
    assert len(texts) == len(set(texts))
    # safetext is benign: all heads it labels are 0; catqa leaves toxicity unknown
    row = next(r for r in dd["train"] if r["source"] == "catqa")
    assert row["label_mask"][0] == 0.0
    assert summary["commercial_use"] is True
    assert summary["sources"]["catqa"]["licence"]


def test_data_build_train_reload_predict_end_to_end(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from harmscan.training.trainer import TRAINING_SUMMARY, train

    out = tmp_path / "model"
    summary = train(
        tiny_dataset, out, recipe=parse_recipe(TINY_RECIPE, "tiny"), base_model=str(tiny_model_dir), max_steps=6
    )
    saved = json.loads((out / TRAINING_SUMMARY).read_text())
    assert saved["metrics"]["steps"] == 6
    assert [label["name"] for label in saved["labels"]] == ["toxicity", "violence", "illegal_advice"]
    assert "catqa" in saved["sources"] and saved["sources"]["catqa"]["licence"]
    assert "validation" in summary["metrics"]
    assert not (out / "checkpoints").exists()

    model = AutoModelForSequenceClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.id2label[2] == "illegal_advice"
    with torch.no_grad():
        logits = model(**tok(["how do I pick a lock", "have a nice day"], return_tensors="pt", padding=True)).logits
    probs = torch.sigmoid(logits)
    assert probs.shape == (2, 3)
    assert torch.all((probs > 0) & (probs < 1))


def test_a_busy_machine_trains_the_same_steps(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch):
    """The schedule is the recipe's whatever the machine's load: a run whose first steps are slowed down (as
    on a machine busy during its first minutes) trains exactly the steps of an idle run, and the training
    summary (copied into the bundle manifest) records them."""
    from harmscan.training import trainer as T

    recipe = parse_recipe({**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "epochs": 2}}, "tiny")
    T.train(tiny_dataset, tmp_path / "idle", recipe=recipe, base_model=str(tiny_model_dir))
    idle = json.loads((tmp_path / "idle" / T.TRAINING_SUMMARY).read_text())["metrics"]

    calls = {"n": 0}
    original = T._Collator.__call__

    def slow(self: Any, features: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 4:
            time.sleep(0.5)  # busy machine: the first batches take far longer
        return original(self, features)

    monkeypatch.setattr(T._Collator, "__call__", slow)
    T.train(tiny_dataset, tmp_path / "busy", recipe=recipe, base_model=str(tiny_model_dir))
    busy = json.loads((tmp_path / "busy" / T.TRAINING_SUMMARY).read_text())["metrics"]
    assert calls["n"] > 4
    assert busy["steps"] == idle["steps"] == idle["schedule"]["steps"] > 1
    assert busy["schedule"] == idle["schedule"] and busy["schedule"]["cut_by_time_budget"] is False


def test_a_time_limit_is_explicit_and_says_what_it_cut(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path):
    """A time limit (a user's option, never a packaged recipe's) stops the run at the limit without changing
    the planned schedule, and the summary says how much of it was cut."""
    from harmscan.training.trainer import TRAINING_SUMMARY, train

    recipe = parse_recipe({**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "epochs": 200}}, "tiny")
    train(tiny_dataset, tmp_path / "m", recipe=recipe, base_model=str(tiny_model_dir),
          overrides={"max_train_minutes": 0.03})
    schedule = json.loads((tmp_path / "m" / TRAINING_SUMMARY).read_text())["metrics"]["schedule"]
    assert schedule["time_budget_minutes"] == 0.03
    assert schedule["cut_by_time_budget"] is True
    assert 1 <= schedule["steps_run"] < schedule["steps"]


def test_packaged_recipes_have_no_time_limit():
    """Every packaged recipe trains the same steps on every machine: none carries a wall-clock limit."""
    from harmscan.training.recipe import available_recipes, load_recipe

    for name in available_recipes():
        assert not load_recipe(name).train.get("max_train_minutes"), name


def test_weight_average_tracks_an_exponential_average_and_swaps_back():
    from harmscan.training.trainer import WeightAverage

    model = torch.nn.Linear(3, 2)
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    model.register_parameter("frozen_extra", frozen)
    start = model.weight.detach().clone()
    avg = WeightAverage.for_run(model, half_life_fraction=0.5, total_steps=2)  # half-life 1 step
    assert avg.decay == pytest.approx(0.5)
    assert len(avg.params) == 2  # weight and bias: frozen parameters are not averaged
    with torch.no_grad():
        model.weight.add_(2.0)
    avg.update()
    live = model.weight.detach().clone()
    with avg.swapped():
        # halfway between the starting weights and the live ones
        assert torch.allclose(model.weight, start + 1.0)
    assert torch.equal(model.weight, live)  # the live weights are back, untouched
    with pytest.raises(Exception, match="decay"):
        WeightAverage(model, 1.0)


def test_averaged_frozen_embedding_run_ships_the_average(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path):
    """A run with `ema_half_life` and `freeze_word_embeddings` trains, evaluates and saves, and the frozen word
    embeddings are exactly those of the base model while the encoder's weights moved."""
    from transformers import AutoModelForSequenceClassification

    from harmscan.training.trainer import TRAINING_SUMMARY, train

    recipe = parse_recipe(
        {**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "ema_half_life": 0.3, "freeze_word_embeddings": True}},
        "tiny",
    )
    out = tmp_path / "avg"
    summary = train(tiny_dataset, out, recipe=recipe, base_model=str(tiny_model_dir), max_steps=7)
    saved = json.loads((out / TRAINING_SUMMARY).read_text())
    assert saved["train_config"]["ema_half_life"] == 0.3 and saved["metrics"]["steps"] == 7
    assert "validation" in summary["metrics"]
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3)
    trained = AutoModelForSequenceClassification.from_pretrained(out)
    emb = trained.get_input_embeddings().weight
    assert torch.equal(emb, base.get_input_embeddings().weight)
    # the encoder did train (the weights moved), so the comparison above is not vacuous
    name, p = next((n, p) for n, p in trained.named_parameters() if "encoder" in n and p.dim() == 2)
    assert not torch.equal(p, dict(base.named_parameters())[name])


def test_same_recipe_and_seed_train_the_same_model(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path):
    """A schedule that fits its budget is a fixed number of steps, and on one thread two runs of one recipe
    train the same weights. (At full scale on 2 threads they drift in the last digits: docs/training.md.)"""
    from safetensors.torch import load_file

    from harmscan.training.trainer import train

    recipe = parse_recipe({**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "ema_half_life": 0.2}}, "tiny")
    weights = []
    for run in ("a", "b"):
        train(tiny_dataset, tmp_path / run, recipe=recipe, base_model=str(tiny_model_dir), max_steps=5)
        weights.append(load_file(str(tmp_path / run / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_mean_pooled_run_reloads_exports_and_scores_like_torch(tiny_dataset: Path, tiny_model_dir: Path, tmp_path: Path):
    """`train.pooling: mean` trains a linear head on the mask-weighted mean of the token states. The folder
    reloads as that model with its trained head (not a CLS head with random weights), a text scores the same
    alone or padded beside a longer one, and the ONNX bundle passes the parity gate and scores like PyTorch."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from harmscan.classifiers.classifier import HarmClassifier
    from harmscan.training.export import export_bundle
    from harmscan.training.modeling import load_classifier, pooling_of
    from harmscan.training.trainer import TRAINING_SUMMARY, train

    recipe = parse_recipe({**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "pooling": "mean"}}, "tiny")
    out = tmp_path / "mean"
    train(tiny_dataset, out, recipe=recipe, base_model=str(tiny_model_dir), max_steps=6)
    assert json.loads((out / TRAINING_SUMMARY).read_text())["train_config"]["pooling"] == "mean"
    assert pooling_of(out) == "mean" and pooling_of(tiny_model_dir) == "cls"
    model = load_classifier(out)
    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(model.classifier.weight, saved["classifier.weight"])
    assert not any("pooler" in k for k in saved)  # mean pooling ships no unused pooler

    tok = AutoTokenizer.from_pretrained(out)
    texts = ["how do I pick a lock", "have a nice day, and a long one, with many more words than the first text"]
    with torch.no_grad():
        batch = model(**tok(texts, return_tensors="pt", padding=True)).logits
        alone = model(**tok(texts[:1], return_tensors="pt")).logits
    assert torch.allclose(batch[0], alone[0], atol=1e-5)  # padding never leaks into the mean

    bundle = tmp_path / "bundle"
    export_bundle(out, bundle, progress=False)
    manifest = json.loads((bundle / "harmscan.json").read_text())
    assert manifest["variants"]["fp32"]["parity"]["passed"]
    clf = HarmClassifier.load(bundle, variant="fp32")
    assert np.allclose(clf.predict_proba(texts), torch.sigmoid(batch).numpy(), atol=1e-4)


def test_recipe_refuses_an_unknown_pooling():
    from harmscan.errors import DataError

    with pytest.raises(DataError, match="train.pooling must be one of cls, mean"):
        parse_recipe({**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "pooling": "max"}}, "tiny")


def test_recipe_states_how_its_thresholds_are_chosen():
    """A recipe's `thresholds:` (objective and prevalence, as `harmscan thresholds` takes them) is checked
    when the recipe loads, so a typo fails before training, not after it."""
    from harmscan.errors import DataError

    recipe = parse_recipe({**TINY_RECIPE, "thresholds": {"objective": "toxicity=fpr<=0.02,fpr<=0.01"}}, "tiny")
    assert recipe.thresholds == {"objective": "toxicity=fpr<=0.02,fpr<=0.01"}
    assert recipe.to_dict()["thresholds"]["objective"].startswith("toxicity=")
    assert "thresholds" not in parse_recipe(TINY_RECIPE, "tiny").to_dict()
    with pytest.raises(DataError, match="thresholds: objective 'fpr<0.01' is not one of"):
        parse_recipe({**TINY_RECIPE, "thresholds": {"objective": "fpr<0.01"}}, "tiny")
    with pytest.raises(DataError, match="thresholds must be a mapping"):
        parse_recipe({**TINY_RECIPE, "thresholds": {"goal": "f1"}}, "tiny")
