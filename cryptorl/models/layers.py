"""Trainable layers on top of the frozen encoder: FiLM conditioning and the ways to summarise a window.

A summary turns the FiLM-modulated embeddings (B, W, d) into one vector (B, out_dim); the extractor
then appends position and w_cost and projects to `features_dim`. Each summary exposes `out_dim`.
"""

from __future__ import annotations

import torch
from torch import nn


class FiLMLayer(nn.Module):
    """Feature-wise linear modulation: features * γ(context) + β(context), per time step.

    γ = 1 + Linear(context) and β = Linear(context) with zero-initialised weights and biases, so at
    initialisation the layer is exactly the identity and training starts from the encoder's embeddings;
    the regime context earns its influence through gradients rather than adding noise at step 0.
    """

    def __init__(self, context_dim: int = 5, feature_dim: int = 256) -> None:
        super().__init__()
        self.to_gamma_beta = nn.Linear(context_dim, 2 * feature_dim)
        nn.init.zeros_(self.to_gamma_beta.weight)
        nn.init.zeros_(self.to_gamma_beta.bias)

    def gamma_beta(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """γ, β (B, W, d) from the context (B, W, c)."""
        delta_gamma, beta = self.to_gamma_beta(context).chunk(2, dim=-1)
        return 1.0 + delta_gamma, beta

    def forward(self, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Modulated features (B, W, d) from features (B, W, d) and context (B, W, c)."""
        gamma, beta = self.gamma_beta(context)
        return features * gamma + beta


class Summary(nn.Module):
    """A summary of the FiLM-modulated window, (B, W, d) -> (B, out_dim)."""

    out_dim: int


class FlattenSummary(Summary):
    """The original system's summary (head `flatten`): every embedding of every bar, (B, W, d) -> (B, W·d)."""

    def __init__(self, window: int, d_model: int) -> None:
        super().__init__()
        self.out_dim = window * d_model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(start_dim=1)


class MeanPoolSummary(Summary):
    """Average over time, (B, W, d) -> (B, d): the leanest summary; order-blind by design."""

    def __init__(self, window: int, d_model: int) -> None:
        super().__init__()
        self.out_dim = d_model

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=1)


class AttentionPoolSummary(Summary):
    """Learned queries attend over the W bars, then a linear bottleneck: (B, W, d) -> (B, bottleneck).

    Each query scores every bar directly (softmax over time of query · (embedding + position)) and
    averages the embeddings with those weights. Key and value projections are left out on purpose:
    with one head per query, W_k folds into the learned query and W_v into the bottleneck projection,
    so they add cost per bar (this head runs on all 64 bars of every sample) and no expressiveness.

    With the original system's flatten, position and w_cost are 2 of 16,386 inputs to the projection and start
    with a negligible share of it; behind a 64-wide bottleneck they are 2 of 66, so the policy can
    actually condition on its own position (one suspect of the constant-position collapse).
    """

    def __init__(self, window: int, d_model: int, n_queries: int = 4, bottleneck: int = 64) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * d_model**-0.5)  # (Q, d)
        self.positions = nn.Parameter(torch.zeros(1, window, d_model))  # lets a query prefer recent bars
        self.project = nn.Linear(n_queries * d_model, bottleneck)
        self.out_dim = bottleneck

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = (h + self.positions) @ self.queries.T * h.shape[-1] ** -0.5  # (B, W, Q)
        weights = scores.softmax(dim=1)  # over time
        pooled = weights.transpose(1, 2) @ h  # (B, Q, d)
        return self.project(pooled.flatten(start_dim=1))
