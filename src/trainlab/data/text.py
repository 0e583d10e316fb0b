"""Text to token ids: a regex tokenizer, a vocabulary fitted on training text, padding.

The contract text models rely on: ids are int64 of shape (N, max_len), right-padded with
0; index 0 is `<pad>`, 1 is `<unk>`; a sequence's length is `(ids != 0).sum(1)`. An empty
text becomes a single `<unk>` so that no length is 0 (packed RNNs refuse length 0).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PAD, UNK = "<pad>", "<unk>"
PAD_INDEX, UNK_INDEX = 0, 1
TOKEN = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Words (letters, digits, apostrophes) and single punctuation marks."""
    return TOKEN.findall(text.lower() if lowercase else text)


class Vocabulary:
    """Token ↔ id mapping learned from training text only.

    Args:
        min_freq: tokens seen fewer times in training become `<unk>`.
        max_size: keep at most this many tokens (plus `<pad>`/`<unk>`), the most frequent.
    """

    def __init__(self, itos: Sequence[str]) -> None:
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Count tokens and keep the frequent ones; ties broken alphabetically (deterministic)."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, token_lists: Sequence[list[str]], max_len: int) -> np.ndarray:
        """Ids (N, max_len) int64: truncated, right-padded with 0, empty text → [<unk>]."""
        out = np.zeros((len(token_lists), max_len), dtype=np.int64)
        get = self.stoi.get
        for i, tokens in enumerate(token_lists):
            ids = [get(t, UNK_INDEX) for t in tokens[:max_len]] or [UNK_INDEX]
            out[i, : len(ids)] = ids
        return out

    def state_dict(self) -> dict[str, Any]:
        """The token list (plain JSON)."""
        return {"itos": self.itos}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Vocabulary:
        """Inverse of `state_dict`."""
        return cls(state["itos"])
