"""The deflated Sharpe ratio (Bailey & López de Prado, "The deflated Sharpe ratio", 2014).

Picking the best of N trials inflates its Sharpe ratio even when no trial has skill: the expected maximum
of N Sharpe ratio estimates whose true value is 0 and whose variance across trials is V is

    SR0 = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))        γ = 0.5772... (Euler-Mascheroni)

The DSR is the probabilistic Sharpe ratio against that benchmark, PSR(SR0): the probability that the true
Sharpe ratio exceeds what selection alone would have produced, corrected for the series' length, skew and
kurtosis (cryptorl/audit/metrics.py `probabilistic_sharpe_ratio`). Every Sharpe ratio here is per bar (not
annualised), as in the paper: V is the variance of the trials' per-bar Sharpe ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from cryptorl.audit.metrics import probabilistic_sharpe_ratio
from cryptorl.errors import ConfigError

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class DeflatedSharpe:
    """The DSR of one series with what it was deflated by, next to its PSR against 0."""

    n_trials: int
    sharpe_variance: float  # V: variance (ddof=1) of the trials' per-bar Sharpe ratios
    expected_max_sharpe: float  # SR0, per bar
    dsr: float  # PSR(SR0)
    psr: float  # PSR(0)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0 = √V ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))); 0.0 for a single trial (nothing was selected)."""
    if n_trials < 1 or sharpe_variance < 0:
        raise ConfigError(
            f"deflated Sharpe ratio with {n_trials} trials and Sharpe variance {sharpe_variance}: "
            "need at least 1 trial (the series itself) and a variance >= 0"
        )
    if n_trials == 1:
        return 0.0
    quantile = NormalDist().inv_cdf
    return math.sqrt(sharpe_variance) * (
        (1 - EULER_GAMMA) * quantile(1 - 1 / n_trials) + EULER_GAMMA * quantile(1 - 1 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(net: np.ndarray, n_trials: int, sharpe_variance: float) -> DeflatedSharpe:
    """PSR(SR0) of the per-bar net returns `net` (T,), SR0 from the trial count and the trials' Sharpe variance."""
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    return DeflatedSharpe(
        n_trials,
        sharpe_variance,
        benchmark,
        probabilistic_sharpe_ratio(net, benchmark),
        probabilistic_sharpe_ratio(net),
    )
