"""`harmscan data build` of one recipe gives the same dataset in every process.

Python randomises string hashing per process (PYTHONHASHSEED), so anything that iterates a set of strings
can change from one run to the next. It did: the obfuscation augmentation rewrote tied target words in set
order, so two builds of the `default` recipe differed in 29 of 46,818 train rows, and two `make quickstart`
runs trained different models (README, model card). Training itself is deterministic for a given dataset,
seed and thread count on one machine, so the dataset is where reproducibility starts. Skipped when
../shared/data is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_a_rebuild_in_another_process_is_identical(default_dataset, data_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    # A hash seed other than this process's: fixed when PYTHONHASHSEED is set, else this one is random.
    other_seed = str(int(os.environ.get("PYTHONHASHSEED") or 0) + 7)
    out = tmp_path / "rebuilt"
    run = subprocess.run(
        [sys.executable, "-m", "harmscan.cli", "data", "build", "--recipe", "default",
         "--data-dir", str(data_dir), "-o", str(out)],
        env={**os.environ, "PYTHONHASHSEED": other_seed}, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rebuilt = datasets.load_from_disk(str(out))
    assert list(rebuilt) == list(default_dataset)
    for split in default_dataset:
        a, b = default_dataset[split], rebuilt[split]
        assert len(a) == len(b), split
        for column in ("text", "labels", "label_mask", "source", "weight"):
            same = sum(x == y for x, y in zip(a[column], b[column], strict=True))
            assert same == len(a), f"{split}.{column}: {len(a) - same} of {len(a)} rows differ"
