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

from harmscan.errors import BundleError, InputError

# Tokens per batch on a CPU. Measured on MiniLM-L6 with 1 thread (CPU time): batches of about 512 tokens
# beat 32 windows per batch by 13 % on tweets and 32 % on 256-token windows (int8), because the layer
# activations of a small batch stay in the core's cache. GPUs want large batches: no cap there.
CPU_MAX_BATCH_TOKENS = 512
# The most windows one text may become. Far above any real text (about 1 M characters of prose with a
# 256-token model; a training text is one window), it bounds the work one text can cause: normalisation can
# multiply a text's length (NFKC turns U+FDFA into 18 characters), so the bound is on windows, counted after
# normalisation, not on the characters sent. Servers set a lower, per-request bound (docs/serving.md).
MAX_WINDOWS_PER_TEXT = 1024


class TooManyWindowsError(InputError):
    """A text that would become more windows than the limit: refused before the model sees any of it."""

    def __init__(self, index: int, windows: int, limit: int) -> None:
        super().__init__(f"text #{index} becomes {windows} token windows after normalisation, more than the "
                         f"limit of {limit} per text: split it into shorter texts")
        self.index, self.windows, self.limit = index, windows, limit

    def shifted(self, offset: int) -> TooManyWindowsError:
        """The same error for a text `offset` places further into the caller's list."""
        return TooManyWindowsError(self.index + offset, self.windows, self.limit)


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
    def __init__(self, path: str | os.PathLike[str], max_length: int, overlap: int,
                 max_windows: int = MAX_WINDOWS_PER_TEXT) -> None:
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - any parse error means a bad bundle file
            raise BundleError(f"cannot read tokenizer {path}: {exc}; re-export the bundle") from None
        # A tokenizer.json saved by transformers may carry fixed-length padding: we pad per batch instead.
        # Texts are encoded whole and cut into windows here, not by the tokenizer's truncation: its overflow
        # encodings changed between versions (tokenizers 0.23 returns one overflow window where 0.22
        # returned all of them), and relying on them silently truncated long texts.
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.prefix, self.suffix = self._special_template()
        self.max_length = int(max_length)
        self.body = self.max_length - len(self.prefix) - len(self.suffix)
        if self.body < 2:
            raise BundleError(
                f"max_length {max_length} leaves no room for text after {len(self.prefix) + len(self.suffix)} "
                "special tokens"
            )
        # The overlap must leave each window room to advance, else windowing would never end.
        self.overlap = max(0, min(int(overlap), self.body - 1))
        self.pad_id = self._pad_id()
        self.max_windows = int(max_windows)

    def _special_template(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after one sequence ([CLS] / [SEP], <s> / </s>)."""
        plain = self.tokenizer.encode("a", add_special_tokens=False).ids
        full = self.tokenizer.encode("a", add_special_tokens=True).ids
        for k in range(len(full) - len(plain) + 1):
            if full[k : k + len(plain)] == plain:
                return full[:k], full[k + len(plain) :]
        raise BundleError("cannot tell this tokenizer's special tokens apart from the text; re-export the bundle")

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
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        for i, enc in enumerate(encodings):  # refuse before building (or scoring) any window
            if (n := self.window_count(len(enc.ids))) > self.max_windows:
                raise TooManyWindowsError(i, n, self.max_windows)
        for i, enc in enumerate(encodings):
            first.append(len(ids))
            tokens = enc.ids
            bounds = self.window_bounds(len(tokens))
            offsets = enc.offsets if with_spans or len(bounds) > 1 else None
            for start, end in bounds:
                ids.append([*self.prefix, *tokens[start:end], *self.suffix])
                owner.append(i)
                if offsets is None:
                    spans.append(None)
                else:
                    spans.append((offsets[start][0], offsets[end - 1][1]) if end > start else (0, 0))
        return Windows(ids, np.asarray(owner, dtype=np.int64), np.asarray(first, dtype=np.int64), spans)

    def count_windows(self, texts: Sequence[str]) -> list[int]:
        """How many windows each (normalised) text becomes, without building them."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [self.window_count(len(enc.ids)) for enc in encodings]

    def window_count(self, n_tokens: int) -> int:
        """len(window_bounds(n_tokens)), in constant time."""
        step = self.body - self.overlap
        return 1 if n_tokens <= self.body else 1 + -(-(n_tokens - self.body) // step)

    def window_bounds(self, n_tokens: int) -> list[tuple[int, int]]:
        """[start, end) token ranges of the windows of a text of `n_tokens` tokens (special tokens not
        counted): `body` tokens each, each starting `body - overlap` after the previous, the last one ending
        at the text's end."""
        step = self.body - self.overlap
        bounds = []
        start = 0
        while True:
            end = min(start + self.body, n_tokens)
            bounds.append((start, end))
            if end >= n_tokens:
                return bounds
            start += step


def forward_windows(
    win: Windows,
    model: Callable[[np.ndarray, np.ndarray], np.ndarray],
    batch_size: int,
    pad_id: int,
    n_outputs: int,
    max_tokens: int | None = None,
    pad_multiple: int = 1,
) -> np.ndarray:
    """`model(input_ids, attention_mask)` on every window -> [n_windows, n_outputs], in window order.

    Windows are sorted by length and each batch is padded only to its own longest window, so a batch of
    tweets costs tweet-length compute even when one text in the call is a 512-token window. A batch holds
    at most `batch_size` windows and, when `max_tokens` is set, at most that many (padded) tokens.
    `pad_multiple` rounds each batch's width up to a multiple (GPUs: 8 keeps the shapes few, so each one's
    kernels are picked and loaded once, and fits the tensor cores; padded positions are masked out).
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
        width = -(-width // pad_multiple) * pad_multiple
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
