"""Signal probe: do the agent's own inputs at bar t linearly forecast the returns ahead of bar t at all?

A ridge regression from `MarketData.source[t]` (the 50 scaled technical features + 5 HMM columns of bar
t, exactly what the agent's window ends with) to the forward log-return over the next h bars,
log(close[t+h] / close[t]), fit on the decision bars of the TRAIN slice only and scored on the TEST slice,
for each horizon h of `PROBE_HORIZONS` (1, 4 and 24 bars). It bounds what an agent can be expected to learn:
with no detectable linear signal at any horizon, a policy that "ignores its inputs" may simply have nothing
to read; and it tells whether an edge outlasts the fee at all (a one-bar edge rarely does at 10 bp).

Causality: the forecast at bar t is a fixed linear function of source[t] alone, and source[t] depends on
bars <= t (causal features, forward-filtered HMM). Train decision bars are start..stop-1-h, so every target
close[t+h] lies in the train slice too; eval and test bars never touch the coefficients.

Scores on test, per horizon: Spearman IC (rank correlation of forecast and forward return), its t-stat
IC·√(n_eff-2)/√(1-IC²) with n_eff = n / h (h-bar targets of consecutive bars overlap in h - 1 bars, so only
about n / h of them are independent), the hit rate of sign(forecast) vs sign(return), and the net Sharpe at
the real fee of trading it: sign(forecast) whenever |forecast| beats the fee, else hold (`probe_positions`,
what `ProbePolicy` does). The probe baseline trades the horizon whose net Sharpe was best on train.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptorl.audit.metrics import BacktestMetrics, compute_metrics
from cryptorl.envs import MarketData
from cryptorl.errors import ConfigError

# With standardized inputs X'X/n is their correlation matrix, so a penalty of 1 shrinks each principal
# direction of variance v by v / (v + 1): the near-collinear combinations of the 50 technical features
# (v << 1, where least squares fits noise) are cut to almost nothing, the dominant ones (v >> 1) barely
# move. Fixed, not tuned on eval: tuning would make the coefficients depend on eval bars, and an eval IC's
# standard error (1/√n ≈ 0.04 on a 1-month slice) exceeds the differences between sane penalties.
RIDGE_PENALTY = 1.0
SIGNAL_T_STAT = 2.0  # a signal is IC > 0 with t >= 2 (one-sided, ≈ 2 % false alarms on pure noise)
MIN_BARS = 3  # the t-stat needs n - 2 > 0
PROBE_HORIZONS = (1, 4, 24)  # bars ahead: the next bar, a few hours, a day of 1h bars


@dataclass(frozen=True)
class RidgeProbe:
    """forecast = intercept + ((source - mean) / scale) @ coef, per bar: the log-return over the next `horizon` bars."""

    mean: np.ndarray  # (F,) train mean of each input column
    scale: np.ndarray  # (F,) train std of each input column (1 where a column is constant on train)
    coef: np.ndarray  # (F,) ridge coefficients on the standardized columns
    intercept: float  # train mean of the h-bar forward log-return: the drift
    horizon: int = 1

    def forecast(self, source: np.ndarray) -> np.ndarray:
        """Next-bar log-return forecasts (n,) from input rows (n, F); row i uses row i only."""
        standardized = (np.asarray(source, np.float64) - self.mean) / self.scale  # (n, F)
        # A per-row sum, not a BLAS matmul (its blocking depends on n): a bar's forecast is then bit-identical
        # however many bars are forecast together, which the truncation-invariance test checks.
        return self.intercept + (standardized * self.coef).sum(axis=1)


@dataclass(frozen=True)
class ProbeScore:
    """How the probe's forecasts at one horizon did on the test slice; plain numbers (JSON-safe)."""

    ic: float  # Spearman rank correlation of forecast and h-bar forward log-return
    ic_tstat: float  # ic * sqrt(n_effective - 2) / sqrt(1 - ic²)
    hit_rate: float  # fraction of bars where sign(forecast) == sign(return), bars with a zero return excluded
    n_test: int  # scored decision bars
    signal: bool  # ic > 0 and ic_tstat >= SIGNAL_T_STAT
    horizon: int = 1
    n_effective: float = 0.0  # n_test / horizon: the independent targets among overlapping ones
    net_sharpe: float = 0.0  # trading the forecast (`probe_positions`) on test at the real fee, annualised
    turnover: float = 0.0  # ... its mean |Δposition| per bar
    train_sharpe: float = 0.0  # the same on the train slice (in sample): what picks the traded horizon

    @property
    def edge_above_fee(self) -> bool:
        """A detectable signal that, traded at the real fee, made money on test."""
        return self.signal and self.net_sharpe > 0


@dataclass(frozen=True)
class MultiHorizonProbe:
    """The probe at every horizon, and the horizon the probe baseline trades."""

    horizons: dict[int, ProbeScore]
    trading_horizon: int  # best train net Sharpe

    @property
    def edge_horizons(self) -> list[int]:
        return [horizon for horizon, score in self.horizons.items() if score.edge_above_fee]

    def to_json(self) -> dict:
        return {
            "horizons": {str(h): dataclasses.asdict(score) for h, score in self.horizons.items()},
            "trading_horizon": self.trading_horizon,
            "edge_horizons": self.edge_horizons,
        }


def decision_rows(market: MarketData, name: str, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, F), forward log-returns over `horizon` bars (n,)) of the slice's decision bars whose target
    lies in the slice: start..stop-1-horizon."""
    n = market.stop - market.start - horizon
    if n < MIN_BARS:
        raise ConfigError(
            f"the {name} slice has {n} decision bars with a {horizon}-bar target, too few to fit or "
            f"score the probe and best_constant baselines (need {MIN_BARS}): lengthen wfo.{name}"
        )
    log_returns = market.log_returns[market.start : market.stop - 1].cpu().numpy()  # (n + horizon - 1,)
    targets = np.lib.stride_tricks.sliding_window_view(log_returns, horizon).sum(axis=1)  # (n,) Σ r[t: t + h]
    rows = slice(market.start, market.start + n)
    return market.source[rows].cpu().numpy().astype(np.float64), targets


def fit_probe(train: MarketData, horizon: int = 1, penalty: float = RIDGE_PENALTY) -> RidgeProbe:
    """Ridge fit on the decision bars of `train`'s slice: min (1/n)|y - Xβ|² + penalty |β|², X standardized."""
    inputs, returns = decision_rows(train, "train", horizon)  # (n, F), (n,)
    mean, std = inputs.mean(axis=0), inputs.std(axis=0)
    scale = np.where(std > 0, std, 1.0)  # a constant column standardizes to 0 and gets no weight
    x = (inputs - mean) / scale  # (n, F)
    y = returns - returns.mean()  # (n,)
    n, n_features = x.shape
    coef = np.linalg.solve(x.T @ x / n + penalty * np.eye(n_features), x.T @ y / n)  # (F,)
    return RidgeProbe(mean, scale, coef, float(returns.mean()), horizon)


def score_probe(probe: RidgeProbe, test: MarketData, fee: float = 0.0, train: MarketData | None = None) -> ProbeScore:
    """IC, its t-stat and the hit rate of the probe's forecasts over `test`'s decision bars, and the net Sharpe
    at `fee` of trading them there (and on `train`, when given)."""
    inputs, returns = decision_rows(test, "test", probe.horizon)
    forecast = probe.forecast(inputs)  # (n,)
    ic = spearman(forecast, returns)
    n, n_effective = len(returns), len(returns) / probe.horizon
    t_stat = ic * math.sqrt(max(n_effective - 2, 0.0)) / math.sqrt(max(1.0 - ic**2, 1e-12))  # finite at |ic| = 1
    called = returns != 0
    hit_rate = float(np.mean(np.sign(forecast[called]) == np.sign(returns[called]))) if called.any() else 0.0
    traded = traded_metrics(probe, test, fee)
    return ProbeScore(
        ic,
        t_stat,
        hit_rate,
        n,
        bool(ic > 0 and t_stat >= SIGNAL_T_STAT),
        probe.horizon,
        n_effective,
        traded.sharpe,
        traded.turnover,
        traded_metrics(probe, train, fee).sharpe if train is not None else 0.0,
    )


def probe_positions(forecast: np.ndarray, band: float) -> np.ndarray:
    """(n,) the probe's positions from flat: sign(forecast) where |forecast| > band, else the position held.

    An h-bar forecast f earns (p - q)·f over the bars it covers when the position moves from q to p, and the
    move costs fee·|p - q| once: worth it when |f| > fee (the band), whatever h is.
    """
    confident = pd.Series(np.where(np.abs(forecast) > band, np.sign(forecast), np.nan))
    return confident.ffill().fillna(0.0).to_numpy()


def traded_metrics(probe: RidgeProbe, market: MarketData, fee: float) -> BacktestMetrics:
    """Net metrics at `fee` of trading `probe` over every decision bar of `market`'s slice, from flat."""
    rows = slice(market.start, market.stop - 1)
    forecast = probe.forecast(market.source[rows].cpu().numpy())  # (T,)
    return compute_metrics(
        probe_positions(forecast, fee), market.log_returns[rows].cpu().numpy(), fee, market.bars_per_year
    )


def multi_horizon_probe(
    train: MarketData, test: MarketData, fee: float, horizons: tuple[int, ...] = PROBE_HORIZONS
) -> MultiHorizonProbe:
    """The probe fit on `train` and scored on `test` at every horizon; it trades the best one on train."""
    scores = {h: score_probe(fit_probe(train, h), test, fee, train) for h in horizons}
    return MultiHorizonProbe(scores, max(scores, key=lambda h: scores[h].train_sharpe))


def trading_probe(train: MarketData, fee: float, horizons: tuple[int, ...] = PROBE_HORIZONS) -> RidgeProbe:
    """The probe the `probe` baseline trades: fit on `train` at the horizon whose train net Sharpe is best."""
    probes = [fit_probe(train, h) for h in horizons]
    return max(probes, key=lambda probe: traded_metrics(probe, train, fee).sharpe)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); 0.0 when either side is constant, as the metrics' rule."""
    ranks_a, ranks_b = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if np.ptp(ranks_a) == 0 or np.ptp(ranks_b) == 0:
        return 0.0
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])
