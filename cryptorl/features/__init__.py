"""Causal technical features, the truncation-invariance check that proves them causal, and the train-only scaler."""

from cryptorl.features.causality import check_truncation_invariance
from cryptorl.features.scaler import RobustScaler
from cryptorl.features.technical import FEATURE_DOCS, FEATURE_NAMES, WARMUP_BARS, technical_features

__all__ = [
    "FEATURE_DOCS",
    "FEATURE_NAMES",
    "WARMUP_BARS",
    "RobustScaler",
    "check_truncation_invariance",
    "technical_features",
]
