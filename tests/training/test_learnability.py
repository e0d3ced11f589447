"""The training stack learns a planted signal it is known to be able to use (the learnability harness)."""

import dataclasses
import statistics

import numpy as np
import pytest
import torch

from cryptorl.audit.metrics import compute_metrics
from cryptorl.audit.verdict import judge
from cryptorl.config import get_profile
from cryptorl.envs.synthetic import PlantedSignalConfig, planted_signal_market
from cryptorl.errors import ConfigError
from cryptorl.learnability import LEARNABILITY_MARKET, LearnabilityResult, run_learnability


# A learning claim is the median of LEARNING_SEEDS, each seed seeding both the market and the stack, like
# benchmarks/learnability.py, at LEARNING_TIMESTEPS: the smoke profile's model trained twice as long as smoke
# itself. With the fee levers that ship (no-trade band 0.3, smoothness 5) the smoke budget is too short: at 4,096
# steps seeds 0, 1, 2 reached -0.28, 0.33 and 0.65 of the oracle (either lever alone: 0.73 / 0.49 / 0.74 with the
# band, 0.74 / 0.69 / 0.74 with the smoothness). At 8,192 steps, measured on a 2-core AMD EPYC (AVX2 kernels,
# one torch thread; oracle fraction / correlation with the oracle), seeds 0..5: 0.66 / 0.75, 0.69 / 0.76,
# 0.74 / 0.72, 0.62 / 0.45, 0.53 / 0.61, 0.79 / 0.69, all healthy. Seeds 0, 1, 2's medians (0.69 / 0.75) sit
# 0.19 and 0.25 above the thresholds; the median leaves room for one of them to turn out like seed 4.
# The verdict is not asserted: at this budget the cost-awareness and critic-spread measurements sit near their
# rules' thresholds, so one seed can be healthy on one machine and degenerate on another (issue 17).
LEARNING_SEEDS = (0, 1, 2)
LEARNING_TIMESTEPS = 8_192
# The three-seed fixture took 160-210 s beside the other xdist worker: above half of the default 300 s limit.
pytestmark = pytest.mark.timeout(600)
MIN_MEDIAN_ORACLE_FRACTION = 0.5
MIN_MEDIAN_ORACLE_CORRELATION = 0.5


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> list[LearnabilityResult]:
    """The shipped smoke profile at LEARNING_TIMESTEPS end to end, once per seed: MAE pretraining, TQC from the
    encoder cache with the flatten head, the compact replay, the callbacks, then the audit's own backtest,
    diagnostics and rules."""
    profile = get_profile("smoke")
    assert profile.train.use_encoder_cache and profile.train.head == "flatten"
    profile = dataclasses.replace(profile, train=dataclasses.replace(profile.train, device="cpu",
                                                                     total_timesteps=LEARNING_TIMESTEPS))
    return [run_learnability(dataclasses.replace(profile, seed=seed), dataclasses.replace(LEARNABILITY_MARKET, seed=seed),
                             tmp_path_factory.mktemp(f"seed-{seed}")) for seed in LEARNING_SEEDS]


def test_the_shipped_defaults_learn_a_planted_signal(smoke_runs):
    assert all(run.oracle_sharpe > 5 for run in smoke_runs)  # each market has an edge worth learning
    fractions = [run.oracle_fraction for run in smoke_runs]
    correlations = [run.oracle_correlation for run in smoke_runs]
    assert statistics.median(fractions) >= MIN_MEDIAN_ORACLE_FRACTION, fractions
    assert statistics.median(correlations) >= MIN_MEDIAN_ORACLE_CORRELATION, correlations


def test_the_audit_judges_each_smoke_agent_by_its_own_measurements(smoke_runs):
    for run in smoke_runs:
        assert judge(run.measurements).verdict == run.verdict
        assert run.measurements["position_std_over_test"] == pytest.approx(run.position_std)


def test_the_planted_signal_is_what_the_config_says():
    synthetic = planted_signal_market(PlantedSignalConfig(n_bars=40_000, edge=0.2, seed=3))
    start, stop = synthetic.slices["train"]
    returns = synthetic.market.log_returns[start: stop - 1].numpy()
    oracle = synthetic.oracle_positions("train")
    hits = np.mean(np.sign(returns) == oracle)
    assert hits == pytest.approx(0.5793, abs=0.01)  # Phi(0.2)
    flips = np.mean(oracle[1:] != oracle[:-1])
    assert flips == pytest.approx(1 / 48, rel=0.15)
    # The oracle's net Sharpe per bar is about edge minus its fees: 0.2 - 0.001 * 2 / 48 / 0.007.
    per_bar = compute_metrics(oracle, returns, 0.001, bars_per_year=1.0).sharpe
    assert per_bar == pytest.approx(0.2 - 0.001 * 2 / 48 / 0.007, abs=0.02)
    assert synthetic.market.columns[0] == "signal"
    np.testing.assert_array_equal(synthetic.market.source[:, 0].numpy(), synthetic.regime)


def test_with_a_fast_signal_the_best_turnover_falls_with_the_fee():
    synthetic = planted_signal_market(PlantedSignalConfig(n_bars=20_000, edge=0.15, fast_edge=0.25, seed=4))
    start, stop = synthetic.slices["train"]
    returns = synthetic.market.log_returns[start: stop - 1].numpy()
    fast = synthetic.market.source[start: stop - 1, 1].numpy()
    assert synthetic.market.columns[:2] == ("signal", "fast_signal") and set(np.unique(fast)) == {-1.0, 1.0}
    follow_fast, hold_regime = np.sign(0.15 * synthetic.oracle_positions("train") + 0.25 * fast), \
        synthetic.oracle_positions("train")
    free = {name: compute_metrics(p, returns, 0.0).sharpe for name, p in (("fast", follow_fast), ("regime", hold_regime))}
    paid = {name: compute_metrics(p, returns, 0.002).sharpe for name, p in (("fast", follow_fast), ("regime", hold_regime))}
    assert free["fast"] > free["regime"] and paid["fast"] < paid["regime"]  # trade z when free, hold s at w_cost 2
    plain = planted_signal_market(PlantedSignalConfig(n_bars=20_000, edge=0.15, seed=4))
    assert torch.equal(plain.market.source[:, 2:], synthetic.market.source[:, 2:])  # z is drawn last


def test_the_synthetic_market_shows_no_future_noise_and_is_seeded():
    config = PlantedSignalConfig(n_bars=8000, signal_noise=0.5, seed=1)
    synthetic = planted_signal_market(config)
    source, log_returns = synthetic.market.source.numpy(), synthetic.market.log_returns.numpy()
    # r_{t+1} minus its planted drift is the future noise: no column observed at bar t may carry it.
    future_noise = log_returns[:-1] - config.volatility * config.edge * synthetic.regime[:-1]  # (T-1,)
    correlations = [abs(np.corrcoef(source[:-1, column], future_noise)[0, 1]) for column in range(source.shape[1])
                    if source[:-1, column].std() > 0]
    assert max(correlations) < 0.05
    assert torch.equal(planted_signal_market(config).market.source, synthetic.market.source)
    assert not torch.equal(planted_signal_market(dataclasses.replace(config, seed=2)).market.source,
                           synthetic.market.source)
    (_, train_stop), (eval_start, eval_stop), (test_start, test_stop) = synthetic.slices.values()
    assert eval_start - train_stop == test_start - eval_stop == 64 and test_stop == 8000


def test_bad_synthetic_settings_are_one_line():
    with pytest.raises(ConfigError, match="synthetic n_bars=100: use at least 640 bars"):
        planted_signal_market(PlantedSignalConfig(n_bars=100))
    with pytest.raises(ConfigError, match="signal_noise >= 0"):
        planted_signal_market(PlantedSignalConfig(signal_noise=-1.0))
