"""CryptoMAE: a masked autoencoder over 64-bar windows of the 50 scaled technical features.

Pretrained once per WFO segment on the train slice, then frozen: the agent only calls `encode`.

Masking design: masked bars are replaced by a learned mask token *after* the input projection
(SimMIM/BERT style) rather than dropped MAE style. The frozen encoder always sees all 64 bars at
inference, so training on full-length sequences keeps positions and attention statistics identical
between pretraining and use; with only 64 tokens the compute MAE saves by dropping bars is negligible.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cryptorl.config import MAEConfig
from cryptorl.errors import DataError

# Dimensions a checkpoint must agree on; everything else in MAEConfig is a training knob.
DIMENSION_FIELDS = ("d_model", "n_heads", "n_layers", "dim_feedforward", "input_dim", "window")


class CryptoMAE(nn.Module):
    """Transformer encoder + one-layer decoder reconstructing masked bars of a (B, W, F) window."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config.validate()
        d = config.d_model
        self.input_proj = nn.Linear(config.input_dim, d)
        # Learned positions initialised to sinusoids: at unit scale they give attention a notion of distance
        # from step 0 (with 0.02-scale random init a small MAE sat at the window-mean baseline for hundreds
        # of steps before discovering that neighbouring bars predict a masked one); learning then adapts them.
        self.positions = nn.Parameter(sinusoidal_positions(config.window, d))  # (1, W, d)
        self.mask_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.encoder = Encoder(EncoderLayer(config), config.n_layers)
        # Light decoder: the encoder must carry the information; one layer only routes it to the masked bars.
        self.decoder = EncoderLayer(config)
        self.reconstruct = nn.Linear(d, config.input_dim)

    def _embed(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        if x.ndim != 3 or tuple(x.shape[1:]) != (c.window, c.input_dim):
            raise DataError(
                f"CryptoMAE input has shape {tuple(x.shape)}, expected (B, {c.window}, {c.input_dim}): "
                f"pass windows of the {c.input_dim} technical features only (no HMM columns)"
            )
        h = self.input_proj(x)  # (B, W, d)
        if mask is not None:
            h = torch.where(mask.unsqueeze(-1), self.mask_token, h)
        return h + self.positions

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of unmasked windows: (B, W, F) -> (B, W, d_model). What the frozen agent sees."""
        return self.encoder(self._embed(x, None))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, W, F) of `x` whose bars where `mask` (B, W) is True are hidden."""
        latent = self.encoder(self._embed(x, mask))  # (B, W, d)
        return self.reconstruct(self.decoder(latent))

    def loss(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE on the masked bars only: reconstructing visible bars is copying, not learning."""
        return masked_mse(self(x, mask), x, mask)


class SelfAttention(nn.Module):
    """Multi-head self-attention over (B, W, d): nn.MultiheadAttention's parameters, names and initialisation.

    Why not nn.MultiheadAttention: in training it works sequence-first and copies q, k, v and its output
    between layouts, over 10 % of a cpu-profile pretraining step. Here the QKV projection is split
    into per-head strided views that scaled_dot_product_attention reads in place, and its output already
    lies in memory as (B, W, heads, head_dim), so merging the heads is a view.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        # nn.MultiheadAttention._reset_parameters, after out_proj's own init: the same random draws in order.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, window, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, W, 3d)
        # Unbinding dim 2 (not a leading one) makes backward stack the three grads straight into (B, W, 3d).
        q, k, v = (
            part.transpose(1, 2)
            for part in qkv.view(batch, window, 3, self.n_heads, d // self.n_heads).unbind(2)  # each (B, H, W, hd)
        )
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, window, d))  # (B, W, d)


class EncoderLayer(nn.Module):
    """Pre-norm Transformer layer: nn.TransformerEncoderLayer(norm_first=True, activation="gelu",
    batch_first=True) with the same parameter names and random draws, so checkpoints load unchanged
    and a seed gives the same initial weights; the attention is `SelfAttention`. Without dropout it
    trains to the same numbers as torch's layer; with dropout the masks are drawn in another memory
    order, so the same seed gives other (equally distributed) masks than torch's layer would."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        d = config.d_model
        self.self_attn = SelfAttention(d, config.n_heads, config.dropout)
        self.linear1 = nn.Linear(d, config.dim_feedforward)
        self.linear2 = nn.Linear(config.dim_feedforward, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, W, d) -> (B, W, d); dropout after attention, inside and after the feed-forward, as torch's."""
        x = x + F.dropout(self.self_attn(self.norm1(x)), self.dropout, self.training)
        hidden = F.dropout(F.gelu(self.linear1(self.norm2(x))), self.dropout, self.training)  # (B, W, ff)
        return x + F.dropout(self.linear2(hidden), self.dropout, self.training)


class Encoder(nn.Module):
    """`n_layers` copies of `layer` then a LayerNorm: nn.TransformerEncoder's names (layers.i, norm).

    The copies start from identical weights, as nn.TransformerEncoder's deep copies did.
    """

    def __init__(self, layer: EncoderLayer, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(n_layers))
        self.norm = nn.LayerNorm(layer.norm1.normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


def sinusoidal_positions(window: int, d_model: int) -> torch.Tensor:
    """The Transformer paper's position encoding, (1, window, d_model)."""
    position = torch.arange(window, dtype=torch.float32).unsqueeze(1)  # (W, 1)
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(window, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table.unsqueeze(0)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the bars where `mask` (B, W) is True; (B, W, F) inputs."""
    per_bar = (prediction - target).pow(2).mean(dim=-1)  # (B, W)
    return per_bar[mask].mean()


def random_bar_mask(
    batch: int, config: MAEConfig, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(batch, window) bool mask with exactly `config.n_masked` True bars per row, chosen uniformly."""
    noise = torch.rand(batch, config.window, generator=generator)  # CPU so a seeded generator works anywhere
    masked = noise.argsort(dim=1)[:, : config.n_masked]  # the bars of lowest noise: a uniform random subset
    return torch.zeros(batch, config.window, dtype=torch.bool).scatter_(1, masked, True).to(device)


def valid_window_ends(values: np.ndarray, window: int) -> np.ndarray:
    """Indices t whose window (bars t-window+1 .. t) of `values` (T, F) is entirely finite."""
    bad = ~np.isfinite(values).all(axis=1)  # (T,)
    bad_before = np.concatenate([[0], np.cumsum(bad)])  # bad rows in values[:t]
    ends = np.arange(window - 1, len(values))
    return ends[bad_before[ends + 1] - bad_before[ends + 1 - window] == 0]


def gather_windows(series: torch.Tensor, ends: torch.Tensor, window: int) -> torch.Tensor:
    """Windows (N, window, F) of `series` (T, F) ending at each bar of `ends` (N,)."""
    offsets = torch.arange(1 - window, 1, device=ends.device)  # (window,)
    return series[ends.unsqueeze(1) + offsets]
