"""Wide & Deep (Cheng et al. 2016; seed 003 §4.4) for tables with categorical columns.

Inputs are float32 (N, n_numeric + n_categorical): numeric (scaled / one-hot) columns
first, then one integer index per categorical column (0 = unknown), as produced by the
tabular datasets (TaskInfo.features: kind=tabular, numeric, cardinalities,
categorical_names).
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from trainlab.models.activations import ActivationSpec, make_activation
from trainlab.models.init import InitSpec, initialize
from trainlab.models.norms import NormSpec, make_norm
from trainlab.models.registry import MODELS
from trainlab.params import StrictModel
from trainlab.tasks import TaskInfo

_HASH = 2654435761  # Knuth's multiplicative hash constant


class WideDeepParams(StrictModel):
    """Hyper-parameters of `wide_deep`.

    Args:
        crosses: pairs of categorical columns whose combinations get their own wide
            weight, e.g. [[education, occupation]] (memorization of feature interactions).
        hash_buckets: a cross with more combinations than this is hashed into this many.
        wide_numeric: also feed the numeric columns to the wide (linear) part.
        embedding_dim: deep-part embedding size per categorical; None = min(16, 1.6·c^0.56).
        hidden: the deep part's MLP widths.
        wide / deep: turn a part off (for ablations: wide-only is a logistic regression).
    """

    crosses: list[list[str]] = Field(default_factory=list)
    hash_buckets: int = Field(1000, gt=0)
    wide_numeric: bool = True
    embedding_dim: int | None = Field(None, gt=0)
    hidden: list[int] = Field(default_factory=lambda: [64, 32])
    activation: ActivationSpec = ActivationSpec(name="relu")
    norm: NormSpec = NormSpec()
    dropout: float = Field(0.0, ge=0, lt=1)
    init: InitSpec = InitSpec()
    wide: bool = True
    deep: bool = True

    @field_validator("crosses")
    @classmethod
    def _pairs(cls, value: list[list[str]]) -> list[list[str]]:
        for cross in value:
            if len(cross) != 2:
                raise ValueError(f"each cross names exactly two categorical columns (got {cross})")
        return value


class WideDeep(nn.Module):
    """wide(x) + deep(x): a linear model over one-hot and crossed categoricals (and the
    numeric columns) plus an MLP over categorical embeddings and the numeric columns,
    trained jointly."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        cross_pairs: list[tuple[int, int]],
        output_dim: int,
        p: WideDeepParams,
    ) -> None:
        super().__init__()
        self.n_numeric, self.cards = n_numeric, [int(c) for c in cardinalities]
        self.use_wide, self.use_deep = p.wide, p.deep
        self.cross_pairs = cross_pairs
        self.cross_sizes = [
            min(self.cards[i] * self.cards[j], p.hash_buckets) for i, j in cross_pairs
        ]
        # one output_dim-wide weight row per category = a linear layer over its one-hot
        self.wide_embeddings = nn.ModuleList(nn.Embedding(c, output_dim) for c in self.cards)
        self.cross_embeddings = nn.ModuleList(nn.Embedding(s, output_dim) for s in self.cross_sizes)
        self.wide_linear = nn.Linear(n_numeric, output_dim) if p.wide_numeric else None
        self.wide_bias = nn.Parameter(torch.zeros(output_dim))
        dims = [p.embedding_dim or min(16, round(1.6 * c**0.56)) for c in self.cards]
        self.deep_embeddings = nn.ModuleList(
            nn.Embedding(c, d) for c, d in zip(self.cards, dims, strict=True)
        )
        layers: list[nn.Module] = []
        n = n_numeric + sum(dims)
        for width in p.hidden:
            layers.append(nn.Linear(n, width))
            norm = make_norm(p.norm, width, spatial=False)
            layers += [m for m in (norm, make_activation(p.activation)) if m is not None]
            if p.dropout > 0:
                layers.append(nn.Dropout(p.dropout))
            n = width
        layers.append(nn.Linear(n, output_dim))
        self.deep_mlp = nn.Sequential(*layers)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Numeric columns and categorical indices (unknown or out-of-range → 0)."""
        numeric = x[:, : self.n_numeric]
        idx = x[:, self.n_numeric :].round().long()
        cards = torch.tensor(self.cards, device=x.device)
        idx = torch.where((idx >= 0) & (idx < cards), idx, torch.zeros_like(idx))
        return numeric, idx

    def cross_indices(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Index of each crossed pair's combination i·card_j + j (hashed if too many)."""
        out = []
        for (i, j), size in zip(self.cross_pairs, self.cross_sizes, strict=True):
            combo = idx[:, i] * self.cards[j] + idx[:, j]
            if size < self.cards[i] * self.cards[j]:
                combo = (combo * _HASH) % size
            out.append(combo)
        return out

    def wide(self, x: torch.Tensor) -> torch.Tensor:
        """The wide part's logits: exactly a linear model over the one-hot features."""
        numeric, idx = self.split(x)
        out = self.wide_bias.expand(x.shape[0], -1)  # not len(x): keeps the batch dynamic
        for k, emb in enumerate(self.wide_embeddings):
            out = out + emb(idx[:, k])
        for combo, emb in zip(self.cross_indices(idx), self.cross_embeddings, strict=True):
            out = out + emb(combo)
        if self.wide_linear is not None:
            out = out + self.wide_linear(numeric)
        return out

    def deep(self, x: torch.Tensor) -> torch.Tensor:
        """The deep part's logits: MLP over [numeric, embeddings of the categoricals]."""
        numeric, idx = self.split(x)
        parts = [numeric] + [emb(idx[:, k]) for k, emb in enumerate(self.deep_embeddings)]
        return self.deep_mlp(torch.cat(parts, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_wide and self.use_deep:
            return self.wide(x) + self.deep(x)
        return self.wide(x) if self.use_wide else self.deep(x)


@MODELS.register(
    "wide_deep",
    description="Wide & Deep for census tables: linear over crossed one-hots + embedding MLP",
    params=WideDeepParams,
)
def build_wide_deep(p: WideDeepParams, info: TaskInfo) -> nn.Module:
    """A Wide & Deep model (seed 003 §4.4's census-income model).

    Use it for tables with many categorical columns: the wide part memorizes specific
    feature combinations, the deep part generalizes through embeddings.
    """
    f = info.features
    if "cardinalities" not in f:
        raise ValueError(
            "model 'wide_deep' needs a table with index-encoded categorical columns "
            "(dataset features 'numeric' and 'cardinalities'), e.g. dataset adult; use mlp here"
        )
    if not (p.wide or p.deep):
        raise ValueError("wide_deep needs wide, deep or both set to true")
    names = list(f.get("categorical_names") or [f"cat{i}" for i in range(len(f["cardinalities"]))])
    pairs = []
    for a, b in p.crosses:
        for col in (a, b):
            if col not in names:
                raise ValueError(
                    f"crosses: unknown categorical column '{col}'; categorical columns: "
                    f"{', '.join(names)}"
                )
        pairs.append((names.index(a), names.index(b)))
    model = WideDeep(int(f["numeric"]), list(f["cardinalities"]), pairs, info.output_dim, p)
    initialize(model, p.init)
    # a linear model may start at zero; only the deep part needs symmetry breaking
    with torch.no_grad():
        for emb in [*model.wide_embeddings, *model.cross_embeddings]:
            emb.weight.zero_()
    return model
