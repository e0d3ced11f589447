"""The signal probe: it finds a planted signal, reports none in noise, and never looks ahead or past train."""

import numpy as np
import pytest

from cryptorl.audit.backtest import backtest
from cryptorl.audit.policies import ProbePolicy
from cryptorl.audit.probe import (SIGNAL_T_STAT, fit_probe, multi_horizon_probe, probe_positions, score_probe,
                                  spearman, trading_probe)
from cryptorl.config import EnvConfig
from cryptorl.envs import MarketData
from cryptorl.errors import ConfigError

N_BARS, N_FEATURES, SIGNAL_COLUMN, STRENGTH = 5200, 55, 7, 0.003
TRAIN, TEST = (63, 4400), (4480, N_BARS)  # the smoke profile's sizes; eval would sit in between
FEATURES = np.random.default_rng(0).standard_normal((N_BARS, N_FEATURES))  # (T, F)
NOISE = 0.01 * np.random.default_rng(1).standard_normal(N_BARS)  # (T,) 1 % hourly volatility


def close_of(log_returns: np.ndarray) -> np.ndarray:
    """Prices whose next-bar log-return at bar t is log_returns[t] (the last one is never used)."""
    return 100 * np.exp(np.concatenate([[0.0], np.cumsum(log_returns[:-1])]))


def market_of(features: np.ndarray, close: np.ndarray) -> MarketData:
    return MarketData.from_arrays(features, close, *TRAIN)


PLANTED = market_of(FEATURES, close_of(NOISE + STRENGTH * FEATURES[:, SIGNAL_COLUMN]))  # correlation ≈ 0.29
PURE_NOISE = market_of(FEATURES, close_of(NOISE))


def test_a_planted_signal_is_detected_on_test():
    probe = fit_probe(PLANTED)
    score = score_probe(probe, PLANTED.with_slice(*TEST))
    assert np.argmax(np.abs(probe.coef)) == SIGNAL_COLUMN and probe.coef[SIGNAL_COLUMN] > 0
    assert score.n_test == TEST[1] - TEST[0] - 1 and score.ic > 0.1 and score.ic_tstat > 3 and score.horizon == 1
    assert score.signal and score.hit_rate > 0.53


def test_pure_noise_shows_no_signal():
    score = score_probe(fit_probe(PURE_NOISE), PURE_NOISE.with_slice(*TEST))
    assert abs(score.ic_tstat) < SIGNAL_T_STAT and not score.signal
    assert abs(score.hit_rate - 0.5) < 0.05


def test_t_stat_is_the_correlation_t_of_the_spearman_ic():
    score = score_probe(fit_probe(PLANTED), PLANTED.with_slice(*TEST))
    n = score.n_test
    assert score.ic_tstat == pytest.approx(score.ic * np.sqrt(n - 2) / np.sqrt(1 - score.ic ** 2))
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 20.0, 40.0])) == pytest.approx(0.9487, abs=1e-4)
    assert spearman(np.ones(4), np.arange(4.0)) == 0.0  # a constant forecast has no rank correlation


@pytest.mark.parametrize("horizon", [1, 24])
def test_coefficients_ignore_every_bar_after_train(horizon):
    """Scramble the features and prices of every eval/test bar: the fit must not move by one bit."""
    rng = np.random.default_rng(2)
    features, log_returns = FEATURES.copy(), NOISE + STRENGTH * FEATURES[:, SIGNAL_COLUMN]
    features[TRAIN[1]:] = rng.standard_normal((N_BARS - TRAIN[1], N_FEATURES))
    log_returns[TRAIN[1] - 1:] = rng.normal(0.0, 0.05, N_BARS - TRAIN[1] + 1)  # close[t] for t >= train stop
    original, scrambled = (fit_probe(market, horizon) for market in (PLANTED, market_of(features, close_of(log_returns))))
    np.testing.assert_array_equal(scrambled.coef, original.coef)
    np.testing.assert_array_equal(scrambled.mean, original.mean)
    assert scrambled.intercept == original.intercept


def test_forecast_at_a_test_bar_is_unchanged_when_later_bars_are_removed_or_perturbed():
    t = 4700
    close = close_of(NOISE + STRENGTH * FEATURES[:, SIGNAL_COLUMN])
    perturbed_features, crashed = FEATURES.copy(), close.copy()
    perturbed_features[t + 1:] += 3.0
    crashed[t + 1:] *= 0.5
    full = forecasts(market_of(FEATURES, close))
    np.testing.assert_array_equal(forecasts(market_of(FEATURES[: t + 1], close[: t + 1])), full[: t + 1])
    np.testing.assert_array_equal(forecasts(market_of(perturbed_features, crashed))[: t + 1], full[: t + 1])


def forecasts(market: MarketData) -> np.ndarray:
    """The probe policy's forecast per bar of the span, fitted on the span's train slice."""
    return ProbePolicy(fit_probe(market), market, fee=0.001).forecast


def test_too_short_a_slice_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"the test slice has 2 decision bars with a 1-bar target, too few .* \(need 3\): "
                                          r"lengthen wfo.test"):
        score_probe(fit_probe(PLANTED), PLANTED.with_slice(4480, 4483))


def test_in_a_backtest_the_probe_pays_the_fee_only_where_its_forecast_beats_it():
    """At w_cost 0 it is sign(forecast); the position changes only at bars where |forecast| > w_cost * fee."""
    test, env = PLANTED.with_slice(*TEST), EnvConfig(episode_length=32, fee=0.001, no_trade_band=0.0)
    policy = ProbePolicy(fit_probe(PLANTED), test, env.fee)
    result = backtest(policy, test, env, (0.0, 1.0, 2.0), include_market=False)
    forecast = policy.forecast[result.bars]  # (T,)
    np.testing.assert_array_equal(result.runs[0.0].positions, np.sign(forecast))
    for w_cost, run in result.runs.items():
        moved = np.diff(run.positions, prepend=0.0) != 0
        assert np.all(np.abs(forecast[moved]) > w_cost * env.fee), f"w_cost {w_cost}"
    turnovers = [run.metrics.turnover for run in result.runs.values()]
    assert turnovers[0] > turnovers[1] > turnovers[2] > 0


# A slow signal over a longer span: x is an AR(1) feature with a 50-bar memory that tilts every return it
# persists over, weakly per bar (IC about 0.06 against 1 % noise) and strongly over a day (about 0.2).
SLOW_BARS, SLOW_TRAIN, SLOW_TEST = 20_000, (63, 10_000), (10_080, 20_000)
_rng = np.random.default_rng(5)
SLOW = np.zeros(SLOW_BARS)
for _t in range(1, SLOW_BARS):
    SLOW[_t] = 0.98 * SLOW[_t - 1] + 0.2 * _rng.standard_normal()
SLOW_FEATURES = _rng.standard_normal((SLOW_BARS, N_FEATURES))
SLOW_FEATURES[:, SIGNAL_COLUMN] = SLOW
SLOW_MARKET = MarketData.from_arrays(SLOW_FEATURES, close_of(0.01 * _rng.standard_normal(SLOW_BARS) + 0.0006 * SLOW),
                                     *SLOW_TRAIN)


def test_a_slow_signal_shows_more_at_the_long_horizon_and_the_probe_trades_its_best_train_horizon():
    probe = multi_horizon_probe(SLOW_MARKET, SLOW_MARKET.with_slice(*SLOW_TEST), fee=0.001)
    one, day = probe.horizons[1], probe.horizons[24]
    assert day.ic > 2 * one.ic > 0 and day.signal and day.n_effective == day.n_test / 24
    assert day.ic_tstat == pytest.approx(day.ic * np.sqrt(day.n_test / 24 - 2) / np.sqrt(1 - day.ic ** 2))
    assert day.n_test == SLOW_TEST[1] - SLOW_TEST[0] - 24
    best = max(probe.horizons, key=lambda h: probe.horizons[h].train_sharpe)
    assert probe.trading_horizon == best == trading_probe(SLOW_MARKET, 0.001).horizon
    assert probe.edge_horizons == [h for h, score in probe.horizons.items() if score.signal and score.net_sharpe > 0]
    assert probe.to_json()["horizons"]["24"]["net_sharpe"] == day.net_sharpe and probe.to_json()["trading_horizon"] == best


def test_probe_positions_trade_only_past_the_fee_and_hold_in_between():
    forecast = np.array([0.0005, 0.002, 0.0001, -0.0015, -0.0002, 0.0009])
    np.testing.assert_array_equal(probe_positions(forecast, 0.001), [0.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    np.testing.assert_array_equal(probe_positions(forecast, 0.0), np.sign(forecast))


def test_the_traded_probe_is_the_probe_policy_backtested_at_w_cost_1():
    test, env = SLOW_MARKET.with_slice(*SLOW_TEST), EnvConfig(episode_length=32, fee=0.001, no_trade_band=0.0)
    probe = trading_probe(SLOW_MARKET, env.fee)
    result = backtest(ProbePolicy(probe, test, env.fee), test, env, (1.0,), include_market=False)
    assert score_probe(probe, test, env.fee).net_sharpe == pytest.approx(result.runs[1.0].metrics.sharpe, rel=1e-9)
