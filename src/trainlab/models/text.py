"""Text classifiers over token ids: a (bi)directional RNN and Kim's (2014) CNN.

Inputs are (N, max_len) token ids, right-padded with `pad_index` (0), as produced by the
text datasets (TaskInfo.features: kind=text, vocab_size, pad_index, max_len). Ids may
arrive as floats (the generic batching casts features to float32); they are exact for
any realistic vocabulary and are cast back to integers here.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainlab.models.activations import ActivationSpec, make_activation
from trainlab.models.init import InitSpec, initialize
from trainlab.models.layers import AttentionPooling, masked_max, masked_mean
from trainlab.models.registry import MODELS
from trainlab.params import StrictModel
from trainlab.tasks import TaskInfo


def _vocab(info: TaskInfo, model: str) -> tuple[int, int]:
    f = info.features
    if f.get("kind") != "text" or "vocab_size" not in f:
        raise ValueError(
            f"model '{model}' needs a text dataset (token ids with a vocabulary); "
            f"this dataset gives features {f or 'without text facts'} — use mlp or cnn"
        )
    return int(f["vocab_size"]), int(f.get("pad_index", 0))


class TextRNNParams(StrictModel):
    """Hyper-parameters of `text_rnn`.

    Args:
        cell: `lstm` or `gru`. bidirectional: read the text both ways (seed 004 §5.3).
        pooling: how the per-token states become one vector — `last` (final states of
            both directions), `mean` / `max` over the real tokens, `mean_max` (both,
            concatenated: twice as wide), or `attention`.
        dropout: on the embeddings and before the head; rnn_dropout: between RNN layers.
    """

    embedding_dim: int = Field(128, gt=0)
    hidden: int = Field(64, gt=0)
    layers: int = Field(1, ge=1)
    cell: Literal["lstm", "gru"] = "lstm"
    bidirectional: bool = True
    pooling: Literal["last", "mean", "max", "mean_max", "attention"] = "last"
    dropout: float = Field(0.2, ge=0, lt=1)
    rnn_dropout: float = Field(0.0, ge=0, lt=1)
    dense: list[int] = Field(default_factory=list)
    activation: ActivationSpec = ActivationSpec(name="relu")
    init: InitSpec = InitSpec()


class TextRNN(nn.Module):
    """embedding → packed (bi)LSTM/GRU → pooling → dense → head.

    Sequences are packed by their true lengths, so padding never enters the recurrence:
    a sentence gives the same logits however much padding follows it.
    """

    def __init__(self, vocab: int, pad: int, output_dim: int, p: TextRNNParams) -> None:
        super().__init__()
        self.pad, self.pooling = pad, p.pooling
        self.embedding = nn.Embedding(vocab, p.embedding_dim, padding_idx=pad)
        self.dropout = nn.Dropout(p.dropout)
        rnn = nn.LSTM if p.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            p.embedding_dim,
            p.hidden,
            num_layers=p.layers,
            batch_first=True,
            bidirectional=p.bidirectional,
            dropout=p.rnn_dropout if p.layers > 1 else 0.0,
        )
        n = p.hidden * (2 if p.bidirectional else 1)
        self.attention = AttentionPooling(n) if p.pooling == "attention" else None
        if p.pooling == "mean_max":
            n *= 2
        dense: list[nn.Module] = []
        for width in p.dense:
            dense += [nn.Linear(n, width), make_activation(p.activation), nn.Dropout(p.dropout)]
            n = width
        self.dense = nn.Sequential(*dense)
        self.head = nn.Linear(n, output_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled sentence vector (N, hidden·directions; twice that for `mean_max`)."""
        tokens = x.long()
        mask = tokens != self.pad
        lengths = mask.sum(1).clamp(min=1)
        emb = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state
            directions = 2 if self.rnn.bidirectional else 1
            return torch.cat(list(h[-directions:]), dim=1)
        seq, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        valid = torch.arange(tokens.shape[1], device=x.device)[None, :] < lengths[:, None]
        if self.pooling == "mean":
            return masked_mean(seq, valid)
        if self.pooling == "max":
            return masked_max(seq, valid)
        if self.pooling == "mean_max":
            return torch.cat([masked_mean(seq, valid), masked_max(seq, valid)], dim=1)
        return self.attention(seq, valid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dense(self.dropout(self.encode(x))))


@MODELS.register(
    "text_rnn",
    description="Text classifier: embedding → packed bidirectional LSTM/GRU → pooling",
    params=TextRNNParams,
    inputs="text",
)
def build_text_rnn(p: TextRNNParams, info: TaskInfo) -> nn.Module:
    """A recurrent text classifier (seed 004's bidirectional-LSTM sentiment model).

    Use it when word order matters (negations, long-range context); attention pooling
    lets it weigh the words that carry the label.
    """
    vocab, pad = _vocab(info, "text_rnn")
    return initialize(TextRNN(vocab, pad, info.output_dim, p), p.init)


class TextCNNParams(StrictModel):
    """Hyper-parameters of `text_cnn` (Kim 2014 defaults: widths 3/4/5, 100 maps, 0.5)."""

    embedding_dim: int = Field(128, gt=0)
    widths: list[int] = Field(default_factory=lambda: [3, 4, 5])
    filters: int = Field(100, gt=0)
    activation: ActivationSpec = ActivationSpec(name="relu")
    dropout: float = Field(0.5, ge=0, lt=1)
    embedding_dropout: float = Field(0.0, ge=0, lt=1)
    init: InitSpec = InitSpec()

    @field_validator("widths")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or min(value) <= 0:
            raise ValueError(f"widths must be a non-empty list of positive ints (got {value})")
        return value


class TextCNN(nn.Module):
    """embedding → parallel 1-D convolutions of several widths → max over time → head.

    Only windows that start inside the sentence compete in the max, so trailing padding
    never changes the logits.
    """

    def __init__(self, vocab: int, pad: int, output_dim: int, p: TextCNNParams) -> None:
        super().__init__()
        self.pad, self.widths = pad, list(p.widths)
        self.embedding = nn.Embedding(vocab, p.embedding_dim, padding_idx=pad)
        self.embedding_dropout = nn.Dropout(p.embedding_dropout)
        self.convs = nn.ModuleList(nn.Conv1d(p.embedding_dim, p.filters, k) for k in p.widths)
        self.act = make_activation(p.activation)
        self.dropout = nn.Dropout(p.dropout)
        self.head = nn.Linear(p.filters * len(p.widths), output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.long()
        if tokens.shape[1] < max(self.widths):
            tokens = F.pad(tokens, (0, max(self.widths) - tokens.shape[1]), value=self.pad)
        lengths = (tokens != self.pad).sum(1).clamp(min=1)
        emb = self.embedding_dropout(self.embedding(tokens)).transpose(1, 2)
        pooled = []
        for k, conv in zip(self.widths, self.convs, strict=True):
            h = self.act(conv(emb))
            starts = torch.arange(h.shape[2], device=x.device)[None, :]
            valid = starts < (lengths - k + 1).clamp(min=1)[:, None]
            pooled.append(h.masked_fill(~valid[:, None, :], float("-inf")).max(2).values)
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


@MODELS.register(
    "text_cnn",
    description="Kim-2014 text CNN: convolutions of several widths, max over time",
    params=TextCNNParams,
    inputs="text",
)
def build_text_cnn(p: TextCNNParams, info: TaskInfo) -> nn.Module:
    """A convolutional text classifier.

    Use it for short texts where key phrases decide the label: it is fast (no
    recurrence) and about as accurate as an LSTM on sentence sentiment.
    """
    vocab, pad = _vocab(info, "text_cnn")
    return initialize(TextCNN(vocab, pad, info.output_dim, p), p.init)
