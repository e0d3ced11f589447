"""Backtests of baselines (against hand computations) and of a tiny trained TQC in both encoder modes."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from cryptorl.audit import BacktestMetrics, backtest, backtest_many, make_policy, metrics_table
from cryptorl.config import EnvConfig
from cryptorl.envs import MarketData
from cryptorl.errors import ConfigError
from cryptorl.models import attach_encoder_cache
from cryptorl.training.tqc import encoder_cache_for, load_trained_model, train_tqc
from tests.tiny import TINY_TRAIN, tiny_encoder

N_BARS, START = 900, 155  # a 744-step test slice: one month of hourly bars
CLOSE = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, N_BARS)))  # (T,)
LABELS = np.arange(N_BARS) * np.timedelta64(1, "h") + np.datetime64("2023-01-01T00")
ENV = EnvConfig(episode_length=32, fee=0.001, reward_scale=100.0, no_trade_band=0.0)  # identity execution
W_COSTS = (0.0, 0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def market() -> MarketData:
    features = np.random.default_rng(1).standard_normal((N_BARS, 55))
    return MarketData.from_arrays(features, CLOSE, START, N_BARS, row_labels=LABELS)


@pytest.fixture(scope="module")
def log_returns() -> np.ndarray:
    return np.log(CLOSE[START + 1:] / CLOSE[START:-1])  # (744,) next-bar returns of the decision bars


def run(spec: str, market: MarketData, w_costs=W_COSTS, **kwargs):
    return backtest(make_policy(spec, market=market, **kwargs), market, ENV, w_costs, include_market=True)


def test_layout_covers_the_slice_with_timestamps(market, log_returns):
    result = run("flat", market)
    np.testing.assert_array_equal(result.bars, np.arange(START, N_BARS - 1))  # the last decision bar is stop - 2
    np.testing.assert_array_equal(result.timestamps, LABELS[START: N_BARS - 1])
    np.testing.assert_allclose(result.log_returns, log_returns)
    assert list(result.runs) == list(W_COSTS) and (result.fee, result.reward_scale) == (0.001, 100.0)
    assert run("flat", dataclasses.replace(market, row_labels=None)).timestamps is None


def test_buy_and_hold_pays_one_entry_fee_at_every_w_cost(market, log_returns):
    for run_ in run("buy_and_hold", market).runs.values():
        assert run_.metrics.net_log_return == pytest.approx(log_returns.sum() - 0.001)
        assert run_.metrics.exposure == 1.0 and run_.metrics.turnover == pytest.approx(1 / 744)
        assert run_.equity[-1] == pytest.approx(CLOSE[-1] / CLOSE[START] * (1 - 0.001), rel=1e-5)


def test_flat_is_zero_everywhere(market):
    for run_ in run("flat", market).runs.values():
        assert not run_.positions.any() and not run_.net_returns.any() and not run_.rewards.any()
        assert (run_.metrics.net_log_return, run_.metrics.cost, run_.metrics.exposure) == (0.0, 0.0, 0.0)
        assert dataclasses.astuple(run_.reward_stats) == (0.0, 0.0, 0.0, 0.0)


def test_constant_half_position(market, log_returns):
    result = run("constant:0.5", market)
    for run_ in result.runs.values():
        assert run_.metrics.exposure == 0.5 and run_.metrics.turnover == pytest.approx(0.5 / 744)
        assert run_.metrics.net_log_return == pytest.approx(0.5 * log_returns.sum() - 0.5 * 0.001)
    # The money metrics pay the real fee whatever w_cost was; only the env's reward sees w_cost.
    assert len({run_.metrics for run_ in result.runs.values()}) == 1
    assert result.runs[0.0].rewards[0] > result.runs[2.0].rewards[0]


def test_momentum_positions_match_a_hand_computation(market):
    result = run("momentum", market)
    bars = np.arange(START, N_BARS - 1)
    by_hand = np.sign(np.log(CLOSE[bars] / CLOSE[bars - 24]))
    for run_ in result.runs.values():
        np.testing.assert_array_equal(run_.positions, by_hand)


def test_env_rewards_are_the_reward_formula_on_the_held_positions(market, log_returns):
    result = run("random", market, seed=4)
    for w_cost, run_ in result.runs.items():
        held = run_.positions.astype(np.float64)  # (T,)
        changes = np.abs(np.diff(held, prepend=0.0))
        np.testing.assert_array_equal(run_.reward_pnl, held * log_returns)
        np.testing.assert_array_equal(run_.reward_cost, w_cost * 0.001 * changes)
        expected = ((held * log_returns - w_cost * 0.001 * changes) * 100.0).astype(np.float32)
        np.testing.assert_array_equal(run_.rewards, expected)
        np.testing.assert_allclose(run_.net_returns, held * log_returns - 0.001 * changes, atol=1e-15)
        stats = run_.reward_stats
        assert stats.min < stats.mean < stats.max and stats.std == pytest.approx(run_.rewards.std())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_market_gives_the_same_backtest(market):
    on_cpu, on_cuda = run("momentum", market), run("momentum", market.to("cuda"))
    for w_cost, run_ in on_cpu.runs.items():
        np.testing.assert_array_equal(on_cuda.runs[w_cost].rewards, run_.rewards)
        assert on_cuda.runs[w_cost].metrics == run_.metrics


def test_bad_w_costs_are_refused(market):
    with pytest.raises(ConfigError, match=r"w_costs \(0.5, -1.0\) must be distinct and >= 0"):
        run("flat", market, w_costs=(0.5, -1.0))


def test_metrics_table_is_json_safe_with_every_metric(market):
    policies = {spec: make_policy(spec, market=market) for spec in ("flat", "buy_and_hold", "momentum")}
    rows = metrics_table(backtest_many(policies, market, ENV, (0.0, 1.0), include_market=True))
    assert [(row["policy"], row["w_cost"]) for row in rows] == [
        (name, w) for name in policies for w in (0.0, 1.0)]
    metric_names = {field.name for field in dataclasses.fields(BacktestMetrics)}
    assert metric_names | {"reward_mean", "reward_std", "reward_min", "reward_max"} <= rows[0].keys()
    assert json.loads(json.dumps(rows, allow_nan=False)) == rows


@pytest.fixture(scope="module", params=[True, False], ids=["encoder-cache", "market-window"])
def trained(request, market, tmp_path_factory):
    """A tiny TQC (~1 s), loaded as the audit loads it; with its encoder cache attached in cache mode."""
    encoder = tiny_encoder()
    config = dataclasses.replace(TINY_TRAIN, use_encoder_cache=request.param)
    result = train_tqc(market.with_slice(100, 300), market.with_slice(300, 400), encoder, config, ENV, seed=3,
                       work_dir=tmp_path_factory.mktemp("tqc"), progress=False)
    model = load_trained_model(result.model_path, device="cpu")
    if config.use_encoder_cache:
        attach_encoder_cache(model.policy, encoder_cache_for(encoder, market, torch.device("cpu")))
    return model, config.use_encoder_cache


def test_trained_model_backtests_at_every_w_cost(market, trained):
    model, cached = trained
    result = backtest(make_policy("trained", market=market, model=model), market, ENV, include_market=not cached)
    assert list(result.runs) == list(W_COSTS)  # 744 bars x 4 w_costs
    for run_ in result.runs.values():
        assert run_.positions.shape == (744,) and np.all(np.abs(run_.positions) <= 1)
        assert run_.metrics.n_bars == 744 and np.isfinite(dataclasses.astuple(run_.metrics)).all()
        assert run_.reward_stats.std > 0 and run_.reward_stats.min < run_.reward_stats.max


def test_a_market_window_model_needs_the_window(market, trained):
    model, cached = trained
    if cached:
        pytest.skip("an encoder-cache model reads no market window")
    with pytest.raises(ConfigError, match=r"keys \['market'\].*include_market=True"):
        backtest(make_policy("trained", market=market, model=model), market, ENV, include_market=False)
