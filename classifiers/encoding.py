"""Tokenisation into overlapping windows, with the `tokenizers` library only (no transformers, no torch).

A text longer than the model's max length is never cut off: it becomes several windows of at most
`max_length` tokens, each overlapping the previous one by `overlap` tokens, so that a sentence that straddles
a window boundary is still seen whole by one window (when it is shorter than the overlap).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from harmscan.errors import BundleError

# Tokens per batch on a CPU. Measured on MiniLM-L6 with 1 thread (CPU time): batches of about 512 tokens
# beat 32 windows per batch by 13 % on tweets and 32 % on 256-token windows (int8), because the layer
# activations of a small batch stay in the core's cache. GPUs want large batches: no cap there.
CPU_MAX_BATCH_TOKENS = 512


@dataclass
class Windows:
    """The windows of a list of texts, in text order (all windows of text 0, then text 1, ...)."""

    ids: list[list[int]]  # token ids of each window, special tokens included
    owner: np.ndarray  # [n_windows] index of the text each window belongs to
    first: np.ndarray  # [n_texts] index of each text's first window
    # [start, end) of each window in the text it was encoded from; None where not asked for (see encode)
    char_spans: list[tuple[int, int] | None]

    @property
    def counts(self) -> np.ndarray:
        return np.diff(np.append(self.first, len(self.ids)))

    def __len__(self) -> int:
        return len(self.ids)


class WindowTokenizer:
    def __init__(self, path: str | os.PathLike[str], max_length: int, overlap: int) -> None:
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - any parse error means a bad bundle file
            raise BundleError(f"cannot read tokenizer {path}: {exc}; re-export the bundle") from None
        specials = self.tokenizer.num_special_tokens_to_add(False)
        body = max_length - specials
        if body < 2:
            raise BundleError(f"max_length {max_length} leaves no room for text after {specials} special tokens")
        # The overlap must leave each window room to advance, else the tokenizer would loop forever.
        self.overlap = max(0, min(int(overlap), body - 1))
        self.max_length = int(max_length)
        # A tokenizer.json saved by transformers may carry fixed-length padding: we pad per batch instead.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length, stride=self.overlap)
        self.pad_id = self._pad_id()

    def _pad_id(self) -> int:
        for token in ("[PAD]", "<pad>", "<PAD>"):
            tid = self.tokenizer.token_to_id(token)
            if tid is not None:
                return int(tid)
        return 0  # padded positions are masked out, so any id is correct

    def encode(self, texts: Sequence[str], with_spans: bool = False) -> Windows:
        """Windows of every text. Character spans are computed for texts of several windows, and for all
        texts when `with_spans` (reading offsets costs time on short texts that rarely need them)."""
        ids: list[list[int]] = []
        owner: list[int] = []
        first: list[int] = []
        spans: list[tuple[int, int] | None] = []
        for i, enc in enumerate(self.tokenizer.encode_batch(list(texts), add_special_tokens=True)):
            first.append(len(ids))
            windows = (enc, *enc.overflowing)
            for window in windows:
                ids.append(window.ids)
                owner.append(i)
                need = with_spans or len(windows) > 1
                spans.append(_char_span(window.offsets, window.special_tokens_mask) if need else None)
        return Windows(ids, np.asarray(owner, dtype=np.int64), np.asarray(first, dtype=np.int64), spans)


def _char_span(offsets: list[tuple[int, int]], special: list[int]) -> tuple[int, int]:
    content = [off for off, s in zip(offsets, special, strict=True) if not s]
    if not content:
        return 0, 0
    return content[0][0], content[-1][1]


def forward_windows(
    win: Windows,
    model: Callable[[np.ndarray, np.ndarray], np.ndarray],
    batch_size: int,
    pad_id: int,
    n_outputs: int,
    max_tokens: int | None = None,
) -> np.ndarray:
    """`model(input_ids, attention_mask)` on every window -> [n_windows, n_outputs], in window order.

    Windows are sorted by length and each batch is padded only to its own longest window, so a batch of
    tweets costs tweet-length compute even when one text in the call is a 512-token window. A batch holds
    at most `batch_size` windows and, when `max_tokens` is set, at most that many (padded) tokens.
    """
    n = len(win)
    out = np.empty((n, n_outputs), dtype=np.float32)
    if n == 0:
        return out
    lengths = np.fromiter((len(ids) for ids in win.ids), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < n:
        width = int(lengths[order[start]])  # the longest window of the batch: sorted, so its first
        size = batch_size if max_tokens is None else max(1, min(batch_size, max_tokens // width))
        idx = order[start : start + size]
        start += len(idx)
        ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, w in enumerate(idx):
            seq = win.ids[w]
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        out[idx] = model(ids, mask)
    return out
