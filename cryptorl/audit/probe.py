"""Signal probe: do the agent's own inputs at bar t linearly forecast bar t's next log-return at all?

A ridge regression from `MarketData.source[t]` (the 50 scaled technical features + 5 HMM columns of bar
t, exactly what the agent's window ends with) to `log_returns[t]` = log(close[t+1] / close[t]), fit on the
decision bars of the TRAIN slice only and scored on the TEST slice. It bounds what an agent can be expected
to learn: with no detectable linear signal, a policy that "ignores its inputs" may simply have nothing to read.

Causality: the forecast at bar t is a fixed linear function of source[t] alone, and source[t] depends on
bars <= t (causal features, forward-filtered HMM). Train decision bars are start..stop-2, so every target
close[t+1] lies in the train slice too; eval and test bars never touch the coefficients.

Scores on test: Spearman IC (rank correlation of forecast and return), its t-stat IC·√(n-2)/√(1-IC²), and
the hit rate of sign(forecast) vs sign(return). The target is one bar ahead, so consecutive targets share
no bar: no overlap correction (Newey-West) is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

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


@dataclass(frozen=True)
class RidgeProbe:
    """forecast = intercept + ((source - mean) / scale) @ coef, per bar."""

    mean: np.ndarray  # (F,) train mean of each input column
    scale: np.ndarray  # (F,) train std of each input column (1 where a column is constant on train)
    coef: np.ndarray  # (F,) ridge coefficients on the standardized columns
    intercept: float  # train mean of the next-bar log-return: the drift

    def forecast(self, source: np.ndarray) -> np.ndarray:
        """Next-bar log-return forecasts (n,) from input rows (n, F); row i uses row i only."""
        standardized = (np.asarray(source, np.float64) - self.mean) / self.scale  # (n, F)
        # A per-row sum, not a BLAS matmul (its blocking depends on n): a bar's forecast is then bit-identical
        # however many bars are forecast together, which the truncation-invariance test checks.
        return self.intercept + (standardized * self.coef).sum(axis=1)


@dataclass(frozen=True)
class ProbeScore:
    """How the probe's forecasts did on the test slice; plain numbers (JSON-safe)."""

    ic: float  # Spearman rank correlation of forecast and next-bar log-return
    ic_tstat: float  # ic * sqrt(n - 2) / sqrt(1 - ic²)
    hit_rate: float  # fraction of bars where sign(forecast) == sign(return), bars with a zero return excluded
    n_test: int  # scored decision bars
    signal: bool  # ic > 0 and ic_tstat >= SIGNAL_T_STAT


def decision_rows(market: MarketData, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, F), next-bar log-returns (n,)) of the slice's decision bars start..stop-2."""
    n = market.stop - 1 - market.start
    if n < MIN_BARS:
        raise ConfigError(f"the {name} slice has {n} decision bars, too few to fit or score the probe and "
                          f"best_constant baselines (need {MIN_BARS}): lengthen wfo.{name}")
    rows = slice(market.start, market.stop - 1)
    return market.source[rows].cpu().numpy().astype(np.float64), market.log_returns[rows].cpu().numpy()


def fit_probe(train: MarketData, penalty: float = RIDGE_PENALTY) -> RidgeProbe:
    """Ridge fit on the decision bars of `train`'s slice: min (1/n)|y - Xβ|² + penalty |β|², X standardized."""
    inputs, returns = decision_rows(train, "train")  # (n, F), (n,)
    mean, std = inputs.mean(axis=0), inputs.std(axis=0)
    scale = np.where(std > 0, std, 1.0)  # a constant column standardizes to 0 and gets no weight
    x = (inputs - mean) / scale  # (n, F)
    y = returns - returns.mean()  # (n,)
    n, n_features = x.shape
    coef = np.linalg.solve(x.T @ x / n + penalty * np.eye(n_features), x.T @ y / n)  # (F,)
    return RidgeProbe(mean, scale, coef, float(returns.mean()))


def score_probe(probe: RidgeProbe, test: MarketData) -> ProbeScore:
    """IC, its t-stat and the hit rate of the probe's forecasts over `test`'s decision bars."""
    inputs, returns = decision_rows(test, "test")
    forecast = probe.forecast(inputs)  # (n,)
    ic = spearman(forecast, returns)
    n = len(returns)
    t_stat = ic * math.sqrt(n - 2) / math.sqrt(max(1.0 - ic ** 2, 1e-12))  # finite (JSON-safe) even at |ic| = 1
    called = returns != 0
    hit_rate = float(np.mean(np.sign(forecast[called]) == np.sign(returns[called]))) if called.any() else 0.0
    return ProbeScore(ic, t_stat, hit_rate, n, bool(ic > 0 and t_stat >= SIGNAL_T_STAT))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); 0.0 when either side is constant, as the metrics' rule."""
    ranks_a, ranks_b = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if np.ptp(ranks_a) == 0 or np.ptp(ranks_b) == 0:
        return 0.0
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])
