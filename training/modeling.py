"""The PyTorch classifier behind a bundle: an encoder, a pooling of its token states, one logit per head.

Two poolings, a recipe's `train.pooling`:

- `cls` (transformers' `AutoModelForSequenceClassification`): the first token's state through the encoder's
  pooler. Works for any architecture the hub has a sequence-classification head for.
- `mean`: the mask-weighted mean of the last layer's token states, then dropout and one linear layer
  (`MeanPoolingClassifier`). Sentence-transformers encoders such as all-MiniLM-L6-v2 were trained to make
  exactly this mean a sentence embedding; their CLS state and pooler were never trained for it.

A mean-pooled model folder saves the encoder's own config (model_type, sizes) with `harmscan_pooling: "mean"`
added, so `load_classifier` and the ONNX exporter (which reads model_type) both know what it is. Loading such
a folder with `AutoModelForSequenceClassification` would silently build a CLS head with random weights:
always load a trained folder with `load_classifier`. Torch is only ever needed here, at training and export
time; the ONNX bundle carries the pooling in its graph.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harmscan.errors import DataError, require

POOLINGS = ("cls", "mean")
POOLING_KEY = "harmscan_pooling"


def check_pooling(pooling: Any, where: str = "") -> str:
    """`pooling` if it is one of POOLINGS; else a DataError naming `where` (e.g. the recipe)."""
    if pooling not in POOLINGS:
        raise DataError(f"{where}train.pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    return str(pooling)


def _pooling(config: Any) -> str:
    return check_pooling(str(getattr(config, POOLING_KEY, "cls")))


@functools.cache
def _mean_pooling_class() -> Any:
    """Built on first use, so importing this module needs neither torch nor transformers."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPoolingClassifier(transformers.PreTrainedModel):  # type: ignore[misc, name-defined]
        """encoder -> mask-weighted mean of the last hidden states -> dropout -> linear (one logit per head)."""

        base_model_prefix = "encoder"

        def __init__(self, config: Any, encoder: Any = None) -> None:
            """`encoder`: a pretrained one (`build_classifier`); None builds one from `config` to load into."""
            super().__init__(config)
            self.encoder = encoder if encoder is not None else transformers.AutoModel.from_config(config)
            if getattr(self.encoder, "pooler", None) is not None:
                self.encoder.pooler = None  # unused by mean pooling; keeps its weights out of the folder
            params = inspect.signature(self.encoder.forward).parameters
            self._takes_token_types = "token_type_ids" in params
            dropout: Any = getattr(config, "classifier_dropout", None)
            if dropout is None:
                dropout = getattr(config, "hidden_dropout_prob", 0.1)
            self.dropout = torch.nn.Dropout(float(dropout))
            self.classifier = torch.nn.Linear(int(config.hidden_size), int(config.num_labels))
            self.post_init()

        def _init_weights(self, module: Any) -> None:
            if module is self.classifier:
                std = float(getattr(self.config, "initializer_range", 0.02))
                module.weight.data.normal_(mean=0.0, std=std)
                module.bias.data.zero_()

        def forward(
            self,
            input_ids: Any = None,
            attention_mask: Any = None,
            token_type_ids: Any = None,
            **kwargs: Any,
        ) -> Any:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            extra = {"token_type_ids": token_type_ids} if self._takes_token_types and token_type_ids is not None else {}
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))

    return MeanPoolingClassifier


def build_classifier(base: str, heads: Sequence[str], pooling: str = "cls") -> Any:
    """A fresh classifier for `heads` on the pretrained encoder `base` (a hub id or a folder)."""
    transformers = require("transformers", "train")
    label_args: Mapping[str, Any] = {
        "num_labels": len(heads),
        "problem_type": "multi_label_classification",
        "id2label": dict(enumerate(heads)),
        "label2id": {h: i for i, h in enumerate(heads)},
    }
    if check_pooling(pooling) == "cls":
        return transformers.AutoModelForSequenceClassification.from_pretrained(
            base, ignore_mismatched_sizes=True, **label_args
        )
    config = transformers.AutoConfig.from_pretrained(base, **label_args)
    setattr(config, POOLING_KEY, "mean")
    # The encoder's own loader knows the checkpoint's key prefixes (bare, "bert.", ...). Eager attention is
    # what a reloaded MeanPoolingClassifier gets (it declares no SDPA support), so training, reload and
    # export compute the same thing.
    encoder = transformers.AutoModel.from_pretrained(base, config=config, attn_implementation="eager")
    return _mean_pooling_class()(config, encoder=encoder)


def pooling_of(model_dir: str | Path) -> str:
    transformers = require("transformers", "train")
    return _pooling(transformers.AutoConfig.from_pretrained(str(model_dir)))


def load_classifier(model_dir: str | Path) -> Any:
    """A trained model folder, with the pooling it was trained with, in eval mode."""
    transformers = require("transformers", "train")
    config = transformers.AutoConfig.from_pretrained(str(model_dir))
    if _pooling(config) == "cls":
        return transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    return _mean_pooling_class().from_pretrained(str(model_dir), config=config).eval()
