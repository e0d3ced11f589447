"""Does the frozen encoder still model the market out of sample? Masked reconstruction on the test slice.

The same measure as pretraining's eval loss (masked MSE under a seeded mask) against the same naive
baseline (each masked bar predicted by its window's visible mean). An encoder that does not beat the
baseline on the test slice hands the policy embeddings with no temporal structure in them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryptorl.models.foundation import CryptoMAE, gather_windows, random_bar_mask
from cryptorl.models.pretrain import evaluate, naive_baseline_loss, window_source


@dataclass(frozen=True)
class MAEDiagnostics:
    n_windows: int  # fully valid test windows, each scored once
    loss: float  # masked MSE of the encoder
    baseline_loss: float  # masked MSE of the window-mean baseline under the same mask
    loss_to_baseline: float  # loss / baseline_loss: < 1 beats the baseline (0.0 when the baseline is 0)


def mae_diagnostics(encoder: CryptoMAE, test_features: np.ndarray, seed: int, batch_size: int = 256) -> MAEDiagnostics:
    """Masked reconstruction loss of `encoder` on every full window of `test_features` (T, input_dim)."""
    config = encoder.config
    device = next(encoder.parameters()).device
    series, ends = window_source(test_features, config, "mae_diagnostics test slice", device)  # (T, F), (N,)
    windows = gather_windows(series, ends, config.window)  # (N, W, F)
    mask = random_bar_mask(len(windows), config, generator=torch.Generator().manual_seed(seed), device=device)
    loss = evaluate(encoder, windows, mask, batch_size)
    baseline = naive_baseline_loss(windows, mask)
    return MAEDiagnostics(len(windows), loss, baseline, loss / baseline if baseline > 0 else 0.0)
