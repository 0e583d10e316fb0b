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

    def encode(self, x: torch.Tensor, recurrence: nn.Module | None = None) -> torch.Tensor:
        """The pooled sentence vector (N, hidden·directions; twice that for `mean_max`).

        `recurrence` replaces the packed RNN by an equivalent module taking (embeddings,
        lengths) and returning (per-token states, final states): `PaddedRecurrence`,
        which `torch.export` can trace (`export_friendly`).
        """
        tokens = x.long()
        mask = tokens != self.pad
        lengths = mask.sum(1).clamp(min=1)
        emb = self.dropout(self.embedding(tokens))
        if recurrence is not None:
            seq, last = recurrence(emb, lengths)
        else:
            seq, last = self._packed(emb, lengths, tokens.shape[1])
        if self.pooling == "last":
            return last
        valid = torch.arange(tokens.shape[1], device=x.device)[None, :] < lengths[:, None]
        if self.pooling == "mean":
            return masked_mean(seq, valid)
        if self.pooling == "max":
            return masked_max(seq, valid)
        if self.pooling == "mean_max":
            return torch.cat([masked_mean(seq, valid), masked_max(seq, valid)], dim=1)
        return self.attention(seq, valid)

    def _packed(
        self, emb: torch.Tensor, lengths: torch.Tensor, total: int
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The RNN over packed sequences: per-token states (None for `last` pooling, which
        needs only the final states) and the last layer's final states of each direction."""
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state
        directions = 2 if self.rnn.bidirectional else 1
        last = torch.cat(list(h[-directions:]), dim=1)
        if self.pooling == "last":
            return None, last
        seq, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
        return seq, last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dense(self.dropout(self.encode(x))))

    def export_friendly(self) -> nn.Module:
        """This model with its packed RNN replaced by `PaddedRecurrence` (same weights,
        same outputs): packing has data-dependent shapes that `torch.export` cannot trace.

        For inference only (no dropout between RNN layers); the model is not changed.
        """
        return _UnpackedTextRNN(self)


class PaddedRecurrence(nn.Module):
    """A packed (bi)directional LSTM/GRU computed on right-padded batches, for export.

    Each layer and direction runs as its own one-direction RNN sharing the trained
    weights. The forward direction reads the padded batch as it is: padding comes after a
    sentence's tokens, so it never reaches them. The backward direction reads every
    sentence reversed within its length (padding stays at the end), and its outputs are
    reversed back. Per-token states are those of packing at the real tokens (garbage at
    padding, which every pooling masks); final states are taken at each sentence's last
    token. Only static shapes and gathers: `torch.export` and ONNX trace it.
    """

    def __init__(self, rnn: nn.LSTM | nn.GRU) -> None:
        super().__init__()
        directions = 2 if rnn.bidirectional else 1
        layers = []
        for layer in range(rnn.num_layers):
            cells = []
            for d in range(directions):
                size = rnn.input_size if layer == 0 else rnn.hidden_size * directions
                cell = type(rnn)(size, rnn.hidden_size, 1, bias=rnn.bias, batch_first=True)
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                for name in cell._flat_weights_names:
                    setattr(cell, name, getattr(rnn, name.removesuffix("_l0") + suffix))
                cells.append(cell)
            layers.append(nn.ModuleList(cells))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = torch.arange(x.shape[1], device=x.device)[None, :]
        n = lengths[:, None]
        reverse = torch.where(steps < n, n - 1 - steps, steps)[:, :, None]  # its own inverse
        at_last = (lengths - 1)[:, None, None]
        last: list[torch.Tensor] = []
        for cells in self.layers:
            outs, last = [], []
            for d, cell in enumerate(cells):
                inp = x if d == 0 else x.gather(1, reverse.expand(-1, -1, x.shape[2]))
                out, _ = cell(inp)
                last.append(out.gather(1, at_last.expand(-1, 1, out.shape[2])).squeeze(1))
                outs.append(out if d == 0 else out.gather(1, reverse.expand(-1, -1, out.shape[2])))
            x = torch.cat(outs, dim=2)
        return x, torch.cat(last, dim=1)


class _UnpackedTextRNN(nn.Module):
    """A `TextRNN` whose recurrence is `PaddedRecurrence` (TextRNN.export_friendly)."""

    def __init__(self, model: TextRNN) -> None:
        super().__init__()
        self.model = model
        self.recurrence = PaddedRecurrence(model.rnn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.head(m.dense(m.dropout(m.encode(x, self.recurrence))))


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
