"""Stationary block bootstrap (Politis & Romano 1994) confidence intervals for Sharpe ratios.

A resample of T bars is built from blocks: it starts at a uniformly random bar, and each next bar either
continues the current block (the following bar, wrapping around the end) or, with probability
p = 1 / mean_block, starts a new block at a uniformly random bar. Block lengths are thus geometric with
mean `mean_block`, and the resampled series is stationary. Keeping runs of consecutive bars keeps the short-
range dependence of the returns (volatility clustering, trades held for hours) that an iid bootstrap destroys.

Pairing: every series is resampled with the same blocks (the same bar indices), so the interval of a Sharpe
difference vs buy & hold accounts for both series moving with the same market.

Only sums over bars are needed for a Sharpe ratio (Σx, Σx²), so each block is summed from prefix sums of the
series wrapped once: O(T / mean_block) per resample instead of O(T), exactly the same resampling
distribution. Intervals are percentile intervals of the resampled Sharpe ratios. Evaluation only: resampling
mixes past and future bars on purpose, nothing here feeds a decision.

Default block length: the mean block is 24 bars (one day of hourly bars). Measured on the bundled BTC/USDT
hourly returns (last 20,000 bars): the autocorrelation of returns is |ρ| < 0.03 at every lag up to 200
(Politis & White's automatic block length for them is 1 bar), so the Sharpe ratio's leading variance term
(that of the mean) needs no long blocks; the dependence lies in the volatility (ρ of |r| 0.28 at lag 1,
0.17 at lag 24), which enters the Sharpe ratio's variance only through its SR²(κ − 1)/4 term, below 0.1 %
of it at hourly Sharpe ratios of ~0.01. One day keeps the intraday volatility cycle and the dependence of a
policy's returns on positions held for hours inside a block, while a one-month smoke slice (~700 bars)
still holds ~30 blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cryptorl.errors import ConfigError

MEAN_BLOCK_BARS = 24
N_RESAMPLES = 2000
CONFIDENCE = 0.95
CHUNK_RESAMPLES = 500  # resamples drawn at once: bounds memory at (K series x chunk x blocks) float64


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float


def resample_blocks(
    n_bars: int, n_resamples: int, mean_block: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Block starts and lengths of `n_resamples` stationary-bootstrap resamples of `n_bars` bars, each (B, M).

    The lengths of a row sum to exactly `n_bars`: geometric lengths are drawn until they cover the series, and
    the block that crosses the end is cut there (trailing blocks have length 0). M is large enough that a row
    falls short with probability below 1e-12; rows that do are drawn again.
    """
    if n_bars < 2 or n_resamples < 1 or mean_block < 1:
        raise ConfigError(
            f"stationary bootstrap of {n_bars} bars, {n_resamples} resamples, mean block "
            f"{mean_block}: need at least 2 bars, 1 resample and a mean block of at least 1 bar"
        )
    p = 1.0 / mean_block
    expected = n_bars * p
    n_blocks = math.ceil(expected + 8.0 * math.sqrt(expected) + 8.0) + 1  # mean + 8 sd of the block count
    starts = rng.integers(0, n_bars, size=(n_resamples, n_blocks))  # (B, M)
    lengths = rng.geometric(p, size=(n_resamples, n_blocks))  # (B, M), each >= 1
    short = lengths.sum(axis=1) < n_bars
    if short.any():  # (practically never) draw those rows again
        starts[short], lengths[short] = resample_blocks(n_bars, int(short.sum()), mean_block, rng)
        return starts, lengths
    ends = np.minimum(np.cumsum(lengths, axis=1), n_bars)  # (B, M)
    lengths = np.diff(ends, axis=1, prepend=0)  # cut at n_bars
    return starts, lengths


def bootstrap_sharpe(
    series: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    mean_block: float = MEAN_BLOCK_BARS,
    seed: int = 0,
    bars_per_year: float = 1.0,
) -> np.ndarray:
    """Sharpe ratios (B, K) of every series (K, T) over the same `n_resamples` stationary-bootstrap resamples.

    Sharpe = mean / std (ddof=1) × sqrt(bars_per_year), as cryptorl/audit/metrics.py; a resample with no
    dispersion gives 0.0, as there. Seeded: the same seed gives the same resamples.
    """
    series = np.atleast_2d(np.asarray(series, dtype=np.float64))  # (K, T)
    n_series, n_bars = series.shape
    rng = np.random.default_rng(seed)
    wrapped = np.concatenate([series, series], axis=1)  # (K, 2T): a block may run past the end and wrap
    zeros = np.zeros((n_series, 1))
    sums = np.concatenate([zeros, np.cumsum(wrapped, axis=1)], axis=1)  # (K, 2T + 1)
    squares = np.concatenate([zeros, np.cumsum(wrapped**2, axis=1)], axis=1)  # (K, 2T + 1)
    sharpe = np.empty((n_resamples, n_series))
    for first in range(0, n_resamples, CHUNK_RESAMPLES):
        count = min(CHUNK_RESAMPLES, n_resamples - first)
        starts, lengths = resample_blocks(n_bars, count, mean_block, rng)  # (b, M) each
        total = (sums[:, starts + lengths] - sums[:, starts]).sum(axis=2)  # (K, b)
        total_squares = (squares[:, starts + lengths] - squares[:, starts]).sum(axis=2)  # (K, b)
        mean = total / n_bars
        variance = np.maximum(total_squares - n_bars * mean**2, 0.0) / (n_bars - 1)
        std = np.sqrt(variance)
        ratio = np.divide(mean, std, out=np.zeros_like(mean), where=std > 1e-12 * (np.abs(mean) + 1e-300))
        sharpe[first : first + count] = ratio.T * math.sqrt(bars_per_year)
    return sharpe


def percentile_interval(estimate: float, samples: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """`estimate` with the (1 − confidence)/2 and (1 + confidence)/2 quantiles of `samples` (B,)."""
    low, high = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(estimate), float(low), float(high))
