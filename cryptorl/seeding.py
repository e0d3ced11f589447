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


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, so the same config runs on a laptop and on the GPU server."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
