"""The one place CryptoRL seeds its random number generators (CleanRL style: seed once, up front)."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global RNG and torch (CPU and every CUDA device).

    Same seed on CPU gives bit-identical runs. On GPU some kernels stay non-deterministic; we do not
    force `torch.use_deterministic_algorithms` because it slows training and fails on some ops.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
