"""Word neighbours in the encoder's own input embeddings, for the `word_substitution` attack (TextFooler's
synonym step, without an outside word-vector file).

The fp32 ONNX model of a bundle holds the word-embedding matrix as an initializer
(`...word_embeddings.weight`, [vocab, hidden]); it is read once with `onnx` and nothing else of the model
is loaded. Only whole-word vocabulary entries (letters only, no `##` piece, no special token) are
candidates. Neighbours are computed for the words an attack asks about and cached.

Similarity bound: a substitution is kept only when the cosine between the mean-pooled input embeddings
of the original and the edited text stays >= `min_similarity` (0.8 by default). That is a cheap proxy of
the sentence encoder TextFooler uses (USE), computed from the same matrix, with no model query.
"""

from __future__ import annotations

import json
import re
from typing import Protocol

import numpy as np

from harmscan.classifiers.bundle import Bundle
from harmscan.errors import BundleError, require

DEFAULT_K = 8
MIN_WORD_COSINE = 0.4
DEFAULT_MIN_SIMILARITY = 0.8
_ALPHA = re.compile(r"[a-z]{2,}")


class Neighbours(Protocol):
    """What the word-substitution search needs: candidate words and a text-similarity score."""

    def neighbours(self, word: str) -> list[str]: ...

    def similarity(self, a: str, b: str) -> float: ...


class EmbeddingNeighbours:
    """Nearest vocabulary words by cosine of the input word embeddings."""

    def __init__(self, matrix: np.ndarray, vocab: dict[str, int], tokenizer: object | None = None,
                 k: int = DEFAULT_K, min_word_cosine: float = MIN_WORD_COSINE) -> None:
        self.k = k
        self.min_word_cosine = min_word_cosine
        self._matrix = matrix.astype(np.float32)
        self._vocab = vocab
        self._tokenizer = tokenizer
        ids = np.asarray(sorted(i for w, i in vocab.items() if _ALPHA.fullmatch(w)), dtype=np.int64)
        self._words = {i: w for w, i in vocab.items()}
        self._cand_ids = ids
        cand = self._matrix[ids]
        self._cand = cand / np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-12)
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_bundle(cls, bundle: Bundle, k: int = DEFAULT_K, min_word_cosine: float = MIN_WORD_COSINE,
                    ) -> EmbeddingNeighbours:
        """Read the word embeddings from a bundle's fp32 model and its tokenizer.json."""
        onnx = require("onnx", "train")
        from onnx import numpy_helper

        model_path = bundle.variant_path("fp32")
        tok_path = bundle.tokenizer_path
        vocab = json.loads(tok_path.read_text(encoding="utf-8")).get("model", {}).get("vocab")
        if not isinstance(vocab, dict):
            raise BundleError(f"{tok_path} has no WordPiece vocabulary: word substitution needs one")
        model = onnx.load(str(model_path), load_external_data=True)
        matrix = None
        for init in model.graph.initializer:
            if init.name.endswith("word_embeddings.weight") or (
                len(init.dims) == 2 and init.dims[0] == len(vocab) and init.data_type == onnx.TensorProto.FLOAT
            ):
                matrix = numpy_helper.to_array(init)
                break
        if matrix is None or matrix.shape[0] < len(vocab):
            raise BundleError(f"{model_path} has no word-embedding matrix of {len(vocab)} rows")
        from tokenizers import Tokenizer

        return cls(matrix, vocab, Tokenizer.from_file(str(tok_path)), k=k, min_word_cosine=min_word_cosine)

    def neighbours(self, word: str) -> list[str]:
        key = word.lower()
        if key in self._cache:
            return self._cache[key]
        out: list[str] = []
        i = self._vocab.get(key)
        if i is not None:
            v = self._matrix[i]
            sims = self._cand @ (v / max(float(np.linalg.norm(v)), 1e-12))
            order = np.argsort(-sims, kind="stable")[: self.k + 1]
            out = [self._words[int(self._cand_ids[j])] for j in order
                   if sims[j] >= self.min_word_cosine and int(self._cand_ids[j]) != i][: self.k]
        self._cache[key] = out
        return out

    def _pooled(self, text: str) -> np.ndarray:
        if self._tokenizer is not None:
            ids = self._tokenizer.encode(text, add_special_tokens=False).ids  # type: ignore[attr-defined]
        else:
            ids = [self._vocab[w] for w in re.findall(r"[a-z]+", text.lower()) if w in self._vocab]
        if not ids:
            return np.zeros(self._matrix.shape[1], dtype=np.float32)
        return self._matrix[np.asarray(ids)].mean(axis=0)

    def similarity(self, a: str, b: str) -> float:
        va, vb = self._pooled(a), self._pooled(b)
        denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
        return float(va @ vb / denom) if denom > 0 else 0.0
