"""Does the frozen encoder still model the market out of sample? Masked reconstruction on the test slice.

The same measure as pretraining's eval loss (masked MSE under a seeded mask) against the same naive
baseline (each masked bar predicted by its window's visible mean). An encoder that does not beat the
baseline on the test slice hands the policy embeddings with no temporal structure in them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryptorl.errors import DataError
from cryptorl.models.foundation import CryptoMAE, gather_windows, random_bar_mask, valid_window_ends
from cryptorl.models.pretrain import evaluate, naive_baseline_loss


@dataclass(frozen=True)
class MAEDiagnostics:
    n_windows: int  # fully valid test windows, each scored once
    loss: float  # masked MSE of the encoder
    baseline_loss: float  # masked MSE of the window-mean baseline under the same mask
    loss_to_baseline: float  # loss / baseline_loss: < 1 beats the baseline (0.0 when the baseline is 0)


def mae_diagnostics(encoder: CryptoMAE, test_features: np.ndarray, seed: int, batch_size: int = 256) -> MAEDiagnostics:
    """Masked reconstruction loss of `encoder` on every full window of `test_features` (T, input_dim)."""
    config = encoder.config
    if test_features.ndim != 2 or test_features.shape[1] != config.input_dim:
        raise DataError(f"mae_diagnostics: test features have shape {test_features.shape}, expected "
                        f"(T, {config.input_dim}): pass the test slice's scaled technical columns only")
    ends = valid_window_ends(test_features, config.window)  # (N,)
    if len(ends) == 0:
        raise DataError(f"mae_diagnostics: the test slice ({len(test_features)} rows) has no {config.window} "
                        "consecutive rows without NaN: lengthen the test slice or fix its NaN rows")
    device = next(encoder.parameters()).device
    series = torch.as_tensor(np.nan_to_num(test_features), dtype=torch.float32, device=device)  # (T, F)
    windows = gather_windows(series, torch.as_tensor(ends, device=device), config.window)  # (N, W, F)
    mask = random_bar_mask(len(windows), config, generator=torch.Generator().manual_seed(seed), device=device)
    loss = evaluate(encoder, windows, mask, batch_size)
    baseline = naive_baseline_loss(windows, mask)
    return MAEDiagnostics(len(windows), loss, baseline, loss / baseline if baseline > 0 else 0.0)
