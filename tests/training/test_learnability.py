"""The training stack learns a planted signal it is known to be able to use (the learnability harness)."""

import dataclasses

import numpy as np
import pytest
import torch

from cryptorl.audit.metrics import compute_metrics
from cryptorl.audit.verdict import RULES
from cryptorl.config import get_profile
from cryptorl.envs.synthetic import PlantedSignalConfig, planted_signal_market
from cryptorl.errors import ConfigError
from cryptorl.learnability import LEARNABILITY_MARKET, run_learnability

FIRED_IF = {rule.measurement: rule.fires for rule in RULES}


def test_the_smoke_defaults_learn_a_planted_signal_judged_by_the_real_audit(tmp_path):
    # The shipped smoke profile end to end: MAE pretraining, TQC from the encoder cache with the seed head,
    # the compact replay, the callbacks, then the audit's own backtest, diagnostics and rules on held-out bars.
    profile = dataclasses.replace(get_profile("smoke"), seed=0)
    assert profile.train.use_encoder_cache and profile.train.head == "seed"
    result = run_learnability(dataclasses.replace(profile, train=dataclasses.replace(profile.train, device="cpu")),
                              LEARNABILITY_MARKET, tmp_path)
    assert result.oracle_sharpe > 5
    assert result.oracle_fraction >= 0.5, result
    assert result.oracle_correlation > 0.5
    # Every rule but cost_blind passes through the audit's real measurements. cost_blind is not beaten yet:
    # the agent trades about as much at w_cost 2 as at 0 (issue 9 stays open on it), so the full verdict is
    # degenerate, for that reason alone.
    fired = {name for name, value in result.measurements.items() if value is not None and name in FIRED_IF
             and FIRED_IF[name](value)}
    assert fired <= {"turnover_ratio_w2_w0"}, result.reasons


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


def test_the_synthetic_market_is_causal_and_seeded():
    config = PlantedSignalConfig(n_bars=2000, signal_noise=0.5, seed=1)
    full, short = planted_signal_market(config), planted_signal_market(dataclasses.replace(config, n_bars=2000))
    assert torch.equal(full.market.source, short.market.source)
    other = planted_signal_market(dataclasses.replace(config, seed=2))
    assert not torch.equal(full.market.source, other.market.source)
    (_, train_stop), (eval_start, eval_stop), (test_start, test_stop) = full.slices.values()
    assert eval_start - train_stop == test_start - eval_stop == 64 and test_stop == 2000


def test_bad_synthetic_settings_are_one_line():
    with pytest.raises(ConfigError, match="synthetic n_bars=100: use at least 640 bars"):
        planted_signal_market(PlantedSignalConfig(n_bars=100))
    with pytest.raises(ConfigError, match="signal_noise >= 0"):
        planted_signal_market(PlantedSignalConfig(signal_noise=-1.0))
