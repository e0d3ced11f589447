"""Backtest metrics: pure functions of per-bar positions, next-bar log-returns and the fee.

Conventions (one backtest = T decision bars t = 0..T-1):
- `positions[t]` is the position held over bar t -> t+1 and `log_returns[t]` = log(close[t+1] / close[t]),
  so bar t earns `positions[t] * log_returns[t]` (gross) and pays `fee * |positions[t] - positions[t-1]|`
  (cost) with `positions[-1] = 0`: the backtest starts flat, so the first bar pays the entry fee.
- The net per-bar log-return is gross - cost; equity is exp(cumsum(net)) starting from 1.
- Ratios that are undefined (no dispersion, no losing bar, no drawdown, fewer than 2 bars) are 0.0, never
  NaN or inf: the audit compares and serialises them, and a flat policy must read as "no edge", not as
  a missing value. `psr` is Φ(0) = 0.5 where the Sharpe ratio is 0 by that rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cryptorl.data.timeframe import HOURS_PER_YEAR


@dataclass(frozen=True)
class BacktestMetrics:
    """Summary of one backtest; every value is a plain Python number (JSON-safe)."""

    n_bars: int
    net_log_return: float  # sum of net per-bar log-returns: log(final equity)
    gross_log_return: float  # sum of positions * log-returns, before fees
    cost: float  # sum of fee * |Δposition| (log-return units)
    annualized_return: float  # exp(mean net * bars_per_year) - 1, a compound annual growth rate
    sharpe: float  # mean / std (ddof=1) of net per-bar log-returns * sqrt(bars_per_year)
    sortino: float  # mean / downside deviation (target 0, over all bars) * sqrt(bars_per_year)
    max_drawdown: float  # largest fall of equity from its running peak (starting at 1), as a fraction >= 0
    calmar: float  # annualized_return / max_drawdown
    turnover: float  # mean |Δposition| per bar (the first bar counts the entry from flat)
    annual_turnover: float  # turnover * bars_per_year
    exposure: float  # mean |position|
    long_fraction: float  # fraction of bars with position > 0
    short_fraction: float  # ... < 0
    flat_fraction: float  # ... == 0 (exactly)
    hit_rate: float  # among bars with position != 0, the fraction where position * log-return > 0
    psr: float  # probabilistic Sharpe ratio P(true per-bar Sharpe > 0), Bailey & López de Prado (2012)


def position_changes(positions: np.ndarray) -> np.ndarray:
    """|Δposition| per bar (T,), the first from flat (the backtest starts with no position)."""
    return np.abs(np.diff(np.asarray(positions, dtype=np.float64), prepend=0.0))


def bar_returns(positions: np.ndarray, log_returns: np.ndarray, fee: float) -> tuple[np.ndarray, np.ndarray]:
    """(gross, cost) per bar, each (T,): positions * log-returns and fee * |Δposition|."""
    positions = np.asarray(positions, dtype=np.float64)
    return positions * np.asarray(log_returns, dtype=np.float64), fee * position_changes(positions)


def net_returns(positions: np.ndarray, log_returns: np.ndarray, fee: float) -> np.ndarray:
    """Net per-bar log-returns (T,): gross minus the fee on the position change."""
    gross, cost = bar_returns(positions, log_returns, fee)
    return gross - cost


def equity_curve(net: np.ndarray) -> np.ndarray:
    """Equity after each bar (T,), starting from 1 before the first bar: exp(cumsum(net log-returns))."""
    return np.exp(np.cumsum(net))


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a positive fraction; the initial equity 1 counts as a peak."""
    peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]  # (T,)
    return float(np.max(1.0 - equity / peaks, initial=0.0))


def sharpe_ratio(net: np.ndarray, bars_per_year: float = 1.0) -> float:
    """mean / std (ddof=1) * sqrt(bars_per_year); 0.0 for fewer than 2 bars or a constant series."""
    if len(net) < 2 or np.ptp(net) == 0:
        return 0.0
    return float(np.mean(net) / np.std(net, ddof=1) * math.sqrt(bars_per_year))


def sortino_ratio(net: np.ndarray, bars_per_year: float = 1.0) -> float:
    """mean / sqrt(mean(min(net, 0)²)) * sqrt(bars_per_year); 0.0 when no bar loses."""
    downside = math.sqrt(float(np.mean(np.minimum(net, 0.0) ** 2)))
    return float(np.mean(net) / downside * math.sqrt(bars_per_year)) if downside > 0 else 0.0


def probabilistic_sharpe_ratio(net: np.ndarray, benchmark: float = 0.0) -> float:
    """PSR(SR*): Φ((SR − SR*) √(n-1) / √(1 - γ₃ SR + (γ₄ - 1)/4 SR²)), SR the per-bar (not annualised) Sharpe.

    The probability that the true per-bar Sharpe ratio exceeds `benchmark` (SR*, per bar). γ₃ and γ₄ are
    the sample skewness and (non-excess) kurtosis from central moments (ddof=0), as in Bailey & López de
    Prado, "The Sharpe ratio efficient frontier" (2012). It corrects the Sharpe ratio's significance for
    the fat tails and skew of hourly returns and for a short test slice; with SR* = the expected maximum
    Sharpe ratio of N trials it is the deflated Sharpe ratio (cryptorl/evaluation/deflated.py).
    A Sharpe ratio of 0 (including the undefined cases) has a spread of 1, so PSR(0) = Φ(0) = 0.5 there;
    fewer than 2 bars carry no evidence either way: 0.5.
    """
    if len(net) < 2:
        return 0.5
    sharpe = sharpe_ratio(net)
    spread = 1.0
    if sharpe != 0.0:
        centred = net - np.mean(net)
        variance = float(np.mean(centred**2))
        skew = float(np.mean(centred**3)) / variance**1.5
        kurtosis = float(np.mean(centred**4)) / variance**2
        spread = math.sqrt(1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2)
    return _normal_cdf((sharpe - benchmark) * math.sqrt(len(net) - 1) / spread)


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def compute_metrics(
    positions: np.ndarray, log_returns: np.ndarray, fee: float, bars_per_year: float = HOURS_PER_YEAR
) -> BacktestMetrics:
    """All metrics of holding `positions` (T,) over bars with next-bar `log_returns` (T,), paying `fee`."""
    positions = np.asarray(positions, dtype=np.float64)
    log_returns = np.asarray(log_returns, dtype=np.float64)
    gross, cost = bar_returns(positions, log_returns, fee)
    net = gross - cost  # (T,)
    drawdown = max_drawdown(equity_curve(net))
    annualized = math.expm1(float(np.mean(net)) * bars_per_year)
    turnover = float(np.mean(position_changes(positions)))
    invested = positions != 0
    return BacktestMetrics(
        n_bars=len(positions),
        net_log_return=float(np.sum(net)),
        gross_log_return=float(np.sum(gross)),
        cost=float(np.sum(cost)),
        annualized_return=annualized,
        sharpe=sharpe_ratio(net, bars_per_year),
        sortino=sortino_ratio(net, bars_per_year),
        max_drawdown=drawdown,
        calmar=annualized / drawdown if drawdown > 0 else 0.0,
        turnover=turnover,
        annual_turnover=turnover * bars_per_year,
        exposure=float(np.mean(np.abs(positions))),
        long_fraction=float(np.mean(positions > 0)),
        short_fraction=float(np.mean(positions < 0)),
        flat_fraction=float(np.mean(~invested)),
        hit_rate=float(np.mean(gross[invested] > 0)) if invested.any() else 0.0,
        psr=probabilistic_sharpe_ratio(net),
    )
