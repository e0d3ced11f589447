"""Backtest metrics against hand computations on a 5-bar series, and their edge cases."""

import dataclasses
import math

import numpy as np
import pytest

from cryptorl.audit.metrics import compute_metrics, equity_curve, net_returns, probabilistic_sharpe_ratio

# Positions held over bars 0..4, the next-bar log-returns, a 10 bp fee, a "year" of 10 bars.
POSITIONS = np.array([1.0, 1.0, -0.5, 0.0, 0.5])
RETURNS = np.array([0.01, -0.02, 0.03, 0.01, -0.01])
FEE, YEAR = 0.001, 10
# By hand: |Δposition| from flat = 1, 0, 1.5, 0.5, 0.5; gross = p * r; net = gross - fee * |Δp|.
GROSS = [0.01, -0.02, -0.015, 0.0, -0.005]
COSTS = [0.001, 0.0, 0.0015, 0.0005, 0.0005]
NET = [0.009, -0.02, -0.0165, -0.0005, -0.0055]
MEAN = -0.0335 / 5
DEVIATIONS = [0.0157, -0.0133, -0.0098, 0.0062, 0.0012]  # NET - MEAN
STD = math.sqrt(sum(d ** 2 for d in DEVIATIONS) / 4)  # ddof=1


@pytest.fixture(scope="module")
def metrics():
    return compute_metrics(POSITIONS, RETURNS, FEE, bars_per_year=YEAR)


def test_returns_and_costs(metrics):
    np.testing.assert_allclose(net_returns(POSITIONS, RETURNS, FEE), NET, atol=1e-15)
    assert metrics.n_bars == 5
    assert metrics.gross_log_return == pytest.approx(sum(GROSS))
    assert metrics.cost == pytest.approx(sum(COSTS)) == pytest.approx(0.0035)
    assert metrics.net_log_return == pytest.approx(-0.0335)
    assert metrics.annualized_return == pytest.approx(math.exp(MEAN * YEAR) - 1)


def test_sharpe_and_sortino(metrics):
    assert STD == pytest.approx(0.0118248, rel=1e-5)
    assert metrics.sharpe == pytest.approx(MEAN / STD * math.sqrt(YEAR))
    downside = math.sqrt((0.02 ** 2 + 0.0165 ** 2 + 0.0005 ** 2 + 0.0055 ** 2) / 5)  # losing bars, over all 5
    assert metrics.sortino == pytest.approx(MEAN / downside * math.sqrt(YEAR))


def test_equity_and_drawdown(metrics):
    np.testing.assert_allclose(equity_curve(np.array(NET)), np.exp([0.009, -0.011, -0.0275, -0.028, -0.0335]))
    # The peak is after bar 0 (equity e^0.009); the trough is the last bar.
    assert metrics.max_drawdown == pytest.approx(1 - math.exp(-0.0335 - 0.009))
    assert metrics.calmar == pytest.approx(metrics.annualized_return / metrics.max_drawdown)


def test_turnover_exposure_and_hit_rate(metrics):
    assert metrics.turnover == pytest.approx(3.5 / 5)
    assert metrics.annual_turnover == pytest.approx(3.5 / 5 * YEAR)
    assert metrics.exposure == pytest.approx(3.0 / 5)
    assert (metrics.long_fraction, metrics.short_fraction, metrics.flat_fraction) == (0.6, 0.2, 0.2)
    assert metrics.hit_rate == 0.25  # invested bars 0, 1, 2, 4: only bar 0 earns


def test_psr_matches_bailey_lopez_de_prado_by_hand(metrics):
    sharpe = MEAN / STD  # per bar
    m2, m3, m4 = (sum(d ** k for d in DEVIATIONS) / 5 for k in (2, 3, 4))
    skew, kurtosis = m3 / m2 ** 1.5, m4 / m2 ** 2
    z = sharpe * math.sqrt(4) / math.sqrt(1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe ** 2)
    assert metrics.psr == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))))
    assert 0 < metrics.psr < 0.5  # a losing series


def test_psr_grows_with_evidence_of_a_positive_sharpe():
    returns = np.random.default_rng(0).normal(0.001, 0.01, 20_000)
    assert probabilistic_sharpe_ratio(returns[:100]) < probabilistic_sharpe_ratio(returns) > 0.99


def test_all_flat_is_zero_everywhere_not_nan():
    metrics = compute_metrics(np.zeros(5), RETURNS, FEE)
    values = dataclasses.asdict(metrics)
    assert values.pop("psr") == 0.5 and values.pop("flat_fraction") == 1.0 and values.pop("n_bars") == 5
    assert all(value == 0.0 for value in values.values()), values


def test_constant_returns_have_no_dispersion():
    gains = compute_metrics(np.ones(5), np.full(5, 0.001), fee=0.0)
    assert (gains.sharpe, gains.sortino, gains.max_drawdown, gains.calmar, gains.psr) == (0.0, 0.0, 0.0, 0.0, 0.5)
    assert gains.hit_rate == 1.0 and gains.net_log_return == pytest.approx(0.005)
    losses = compute_metrics(np.ones(5), np.full(5, -0.001), fee=0.0, bars_per_year=YEAR)
    assert losses.sharpe == 0.0
    assert losses.sortino == pytest.approx(-math.sqrt(YEAR))  # mean / downside deviation = -1 per bar
    assert losses.max_drawdown == pytest.approx(1 - math.exp(-0.005))
    assert losses.hit_rate == 0.0
