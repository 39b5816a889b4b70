"""`harmscan loso`: train without a source, score that source; with --control, the same budget with it.

Runs the CLI on a small recipe (3 real sources, a few hundred rows) and a 2-layer BERT built from a config, so
the figures mean nothing; what is checked is what a user relies on: the held-out source never reaches the
training data, every run gets the same fixed step budget, the controlled comparison scores both models on the
same test rows, and a step budget gives the same figures twice. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch")

from harmscan.cli import main  # noqa: E402

RECIPE = {
    "name": "tiny-loso",
    "commercial": True,
    "max_length": 32,
    "sources": {"jigsaw_toxic_sample_ibm": {}, "catqa": {}, "safetext": {"cap": 150}},
    "split": {"validation": 0.2, "test": 0.2, "seed": 1},
    "train": {"epochs": 1, "batch_size": 16, "evaluations": 1, "learning_rate": 1e-3, "threads": 1},
}


@pytest.fixture(scope="module")
def recipe_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loso") / "tiny-loso.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "base_model": str(tiny_model_dir)}), encoding="utf-8")
    return path


def _loso(recipe_file: Path, data_dir: Path, out: Path, *extra: str) -> dict:
    code = main(["loso", "--recipe", str(recipe_file), "--data-dir", str(data_dir), "--sources", "catqa",
                 "--steps", "3", "-o", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_loso_with_a_control_on_a_fixed_step_budget(recipe_file: Path, data_dir: Path, tmp_path: Path, capsys):
    from harmscan.training.loso import leave_one_source_out
    from harmscan.training.recipe import load_recipe

    result = _loso(recipe_file, data_dir, tmp_path / "loso.json", "--control")
    printed = capsys.readouterr().out
    assert "3 optimiser steps per run" in printed and "| catqa | illegal_advice |" in printed
    assert result["steps_per_run"] == 3 and result["steps"] == {"control": 3, "catqa": 3}
    entry = result["sources"]["catqa"]
    assert entry["rows"] > 0 and 0.0 <= entry["held_out"]["auprc_illegal_advice"] <= 1.0
    # both models scored on the same rows: catqa's rows of the whole recipe's test split
    assert entry["test_rows"] > 0
    counted = [k for k in entry["test_with"] if k.startswith("positives_")]
    assert counted and all(entry["test_without"][k] == entry["test_with"][k] > 0 for k in counted)

    # the held-out run's training data has no catqa row; a step budget gives the same figures again
    work = tmp_path / "work"
    again = leave_one_source_out(load_recipe(str(recipe_file)), data_dir, ["catqa"], steps=3, work_dir=work)
    from datasets import load_from_disk

    built = load_from_disk(str(work / "data-catqa"))
    assert all("catqa" not in set(built[split]["source"]) for split in built)
    assert again["sources"]["catqa"]["held_out"] == entry["held_out"]


def test_loso_refuses_a_source_the_recipe_does_not_have(recipe_file: Path, data_dir: Path, tmp_path: Path, capsys):
    code = main(["loso", "--recipe", str(recipe_file), "--data-dir", str(data_dir), "--sources", "gab_hate_corpus",
                 "--steps", "3", "-o", str(tmp_path / "x.json")])
    assert code != 0
    err = capsys.readouterr().err
    assert "gab_hate_corpus" in err and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()
