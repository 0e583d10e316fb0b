"""Reusable layers: global average pooling, masked sequence pooling, attention pooling and
a mixture-of-experts block."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.models.activations import ActivationSpec, make_activation


class GlobalAvgPool(nn.Module):
    """Mean over every spatial dimension: (N, C, *spatial) → (N, C).

    Replaces a flatten + large dense layer as a CNN head (Lin et al. 2013): far fewer
    parameters, less over-fitting, and any input size works.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.dim())))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (N, L, D) over the positions where the (N, L) mask is True."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of (N, L, D) over the positions where the (N, L) mask is True."""
    return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values


class AttentionPooling(nn.Module):
    """Attention pooling over time (Bahdanau-style scoring, as in seed 004 §5.3).

    Scores each position with vᵀ·tanh(W·h + b), softmaxes the scores over the unmasked
    positions and returns the weighted sum of the hidden states: (N, L, D) → (N, D).
    Lets a text classifier focus on the few words that carry the sentiment instead of
    averaging them away. The last weights are kept in `last_weights` for inspection.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        self.last_weights = weights.detach()
        return torch.bmm(weights.unsqueeze(1), x).squeeze(1)


class _AddAuxiliaryLoss(torch.autograd.Function):
    """Identity on `x` whose backward also sends gradient 1 into `aux_loss`.

    This adds the auxiliary loss to the training objective without the engine or the
    loss function knowing about it (the trick DeepSeek-MoE uses).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, aux_loss: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.aux_shape = aux_loss.shape
        ctx.aux_dtype = aux_loss.dtype
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        return grad, torch.ones(ctx.aux_shape, dtype=ctx.aux_dtype, device=grad.device)


def load_balancing_loss(probs: torch.Tensor, top_idx: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer load-balancing loss: E · Σᵢ fᵢ·Pᵢ.

    fᵢ is the fraction of routing slots sent to expert i (from the top-k indices, no
    gradient) and Pᵢ the mean router probability of expert i. It is 1 when routing is
    uniform and grows to E when every input goes to one expert.
    """
    n_experts = probs.shape[-1]
    counts = F.one_hot(top_idx, n_experts).to(probs.dtype).sum(dim=(0, 1))
    f = counts / counts.sum()
    return n_experts * (f * probs.mean(0)).sum()


class MixtureOfExperts(nn.Module):
    """A sparsely gated mixture-of-experts layer (Shazeer 2017) with top-k routing.

    A linear router scores the experts for each input; the top-k scores are softmaxed
    into gates that sum to 1 and the output is the gate-weighted sum of those experts'
    outputs. Each expert is a dense layer (or, with `hidden`, a two-layer feed-forward
    net) from n_in to n_out. During training a load-balancing auxiliary loss
    (`load_balancing_loss` × `aux_weight`) is added to the objective through autograd,
    so no expert is starved; its last value is in `aux_loss`.

    Experts are evaluated densely (all experts on all inputs, then gated), which is the
    fastest way on CPU for the small expert counts used here; outputs equal sparse
    dispatch exactly because non-selected experts have gate 0.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        experts: int = 4,
        top_k: int = 2,
        hidden: int | None = None,
        activation: ActivationSpec | str = "relu",
        aux_weight: float = 0.01,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= experts:
            raise ValueError(f"moe.top_k must be between 1 and moe.experts={experts} (got {top_k})")
        self.n_experts, self.top_k, self.aux_weight = experts, top_k, aux_weight
        self.router = nn.Linear(n_in, experts, bias=False)
        first = hidden or n_out
        self.w1 = nn.Parameter(torch.empty(experts, first, n_in))
        self.b1 = nn.Parameter(torch.zeros(experts, first))
        if hidden:
            self.act = make_activation(activation)
            self.w2 = nn.Parameter(torch.empty(experts, n_out, hidden))
            self.b2 = nn.Parameter(torch.zeros(experts, n_out))
        else:
            self.act, self.w2, self.b2 = None, None, None
        for w, _ in self.expert_weights():
            for e in range(experts):
                nn.init.kaiming_uniform_(w.data[e], a=5**0.5)  # nn.Linear's default
        self.aux_loss = torch.zeros(())
        self.last_gates: torch.Tensor | None = None

    def expert_weights(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        """(weight, bias) stacks of shape (experts, out, in) / (experts, out), for init."""
        pairs = [(self.w1, self.b1)]
        if self.w2 is not None:
            pairs.append((self.w2, self.b2))
        return pairs

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dense (N, E) gates (zero outside the top-k, rows sum to 1), probs and top-k ids."""
        probs = torch.softmax(self.router(x), dim=-1)
        top_p, top_idx = probs.topk(self.top_k, dim=-1)
        dense = torch.zeros_like(probs).scatter(-1, top_idx, top_p / top_p.sum(-1, keepdim=True))
        return dense, probs, top_idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates, probs, top_idx = self.gates(x)
        h = torch.einsum("ni,eoi->neo", x, self.w1) + self.b1
        if self.w2 is not None:
            h = torch.einsum("neh,eoh->neo", self.act(h), self.w2) + self.b2
        out = torch.einsum("ne,neo->no", gates, h)
        self.last_gates = gates.detach()
        if self.training and self.aux_weight > 0:
            aux = load_balancing_loss(probs, top_idx)
            self.aux_loss = aux.detach()
            out = _AddAuxiliaryLoss.apply(out, self.aux_weight * aux)
        return out

    def extra_repr(self) -> str:
        return f"experts={self.n_experts}, top_k={self.top_k}, aux_weight={self.aux_weight}"


class PeriodicEmbedding(nn.Module):
    """Periodic embeddings of numeric features (Gorishniy et al. 2022, "On Embeddings for
    Numerical Features in Tabular Deep Learning", PLR): each of the first `n_numeric`
    inputs x_j becomes ReLU(W_j [sin 2πc_j x, cos 2πc_j x] + b_j) with `frequencies`
    trainable frequencies c_j ~ N(0, sigma²) and its own linear map to `dim` values;
    the remaining inputs (indicators, one-hot columns) pass through unchanged.

    An MLP on the raw value draws only piecewise-linear shapes of one feature; the
    periodic features let it fit sharp, multi-modal effects (prices by location).
    """

    def __init__(self, n_numeric: int, frequencies: int, sigma: float, dim: int) -> None:
        super().__init__()
        self.n_numeric = n_numeric
        self.frequencies = nn.Parameter(torch.randn(n_numeric, frequencies) * sigma)
        bound = 1 / math.sqrt(2 * frequencies)
        weight = torch.empty(n_numeric, 2 * frequencies, dim).uniform_(-bound, bound)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(n_numeric, dim).uniform_(-bound, bound))

    @property
    def out_features(self) -> int:
        """Width of the output for one input of `in_features` columns, less the input."""
        return self.n_numeric * self.bias.shape[1] - self.n_numeric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        numeric, rest = x[:, : self.n_numeric], x[:, self.n_numeric :]
        angles = 2 * math.pi * self.frequencies * numeric.unsqueeze(-1)
        periodic = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        embedded = torch.einsum("bnf,nfd->bnd", periodic, self.weight) + self.bias
        return torch.cat([torch.relu(embedded).flatten(1), rest], dim=1)
