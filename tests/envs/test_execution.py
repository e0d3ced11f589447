"""The execution rule: the position an action takes, the same in the envs, the replay, the critic and the backtest."""

import numpy as np
import pandas as pd
import pytest
import torch

from cryptorl.audit.backtest import backtest
from cryptorl.audit.policies import RandomPolicy
from cryptorl.envs import BatchCryptoEnv, EnvConfig, MarketData
from cryptorl.envs.execution import Execution
from cryptorl.errors import ConfigError

HELD = torch.tensor([0.0, 0.5, -0.8, 0.9, 1.0])
ACTION = torch.tensor([0.1, 1.3, 0.2, -0.95, 0.85])


def test_the_default_rule_is_the_clamped_action_bit_for_bit():
    actions = torch.from_numpy(np.random.default_rng(0).uniform(-1.5, 1.5, 1000).astype(np.float32))
    assert Execution().is_identity
    assert torch.equal(Execution().position(actions, torch.zeros(1000), None), actions.clamp(-1.0, 1.0))


def test_a_no_trade_band_clamps_the_held_position_into_the_band_around_the_target():
    position = Execution(band=0.25).position(ACTION, HELD, None)
    # targets 0.1, 1 (clamped), 0.2, -0.95, 0.85: held inside [t - 0.25, t + 0.25] stays, outside moves to its edge
    torch.testing.assert_close(position, torch.tensor([0.0, 0.75, -0.05, -0.7, 1.0]))


def test_partial_adjustment_moves_a_fraction_of_the_way():
    torch.testing.assert_close(Execution(rate=0.25).position(ACTION, HELD, None), HELD + 0.25 * (ACTION.clamp(-1, 1) - HELD))
    combined = Execution(band=0.25, rate=0.5).position(ACTION, HELD, None)
    torch.testing.assert_close(combined, HELD + 0.5 * (Execution(band=0.25).position(ACTION, HELD, None) - HELD))


def test_a_decision_interval_trades_on_epoch_aligned_bars_only():
    rule = Execution(interval=4, epoch_bar=2)  # row 0 is the epoch's bar 2: rows 2, 6, 10 ... decide
    bars = torch.arange(8)
    position = rule.position(torch.ones(8), torch.zeros(8), bars)
    assert position.tolist() == [0, 0, 1, 0, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="a decision interval needs the decision bars"):
        rule.position(torch.ones(8), torch.zeros(8), None)


def test_epoch_bar_counts_bars_from_the_unix_epoch():
    index = pd.date_range("2018-01-01 05:00", periods=80, freq="h", tz="UTC")
    features = pd.DataFrame(np.zeros((80, 3)), index=index)
    market = MarketData.from_frames(features, features.iloc[:, :1], pd.Series(100.0, index=index), 63, 80)
    assert market.epoch_bar == (index[0] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(hours=1)
    assert market.with_slice(64, 80).epoch_bar == market.epoch_bar


@pytest.mark.parametrize("field, value, message", [
    ("no_trade_band", -0.1, r"env.no_trade_band=-0.1: use a half-width in \[0, 2\)"),
    ("adjust_rate", 0.0, r"env.adjust_rate=0.0: use a fraction in \(0, 1\]"),
    ("decision_interval", 0, r"env.decision_interval=0: use a number of bars >= 1"),
])
def test_bad_rules_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=message):
        EnvConfig(**{field: value}).validate()


RULED = EnvConfig(episode_length=40, no_trade_band=0.3, adjust_rate=0.5, decision_interval=2)


def test_the_backtest_records_the_positions_the_rule_took_and_the_targets():
    market = MarketData.random(300, n_features=9, seed=5).with_slice(80, 250)
    result = backtest(RandomPolicy(1), market, RULED, (1.0,), include_market=False)
    run = result.runs[1.0]
    held = np.concatenate([[0.0], run.positions[:-1]]).astype(np.float32)
    expected = Execution.of(RULED, market.epoch_bar).position_numpy(run.targets, held, result.bars)
    np.testing.assert_array_equal(run.positions, expected)
    assert run.metrics.turnover < 0.25 * np.mean(np.abs(np.diff(run.targets, prepend=0.0)))  # the rule holds
    np.testing.assert_array_equal(run.positions[1::2], run.positions[:-1:2])  # odd bars never trade


def test_the_batch_env_steps_with_the_rule():
    market = MarketData.random(300, n_features=9, seed=5).with_slice(80, 250)
    env = BatchCryptoEnv(market, 3, RULED, include_bar_index=True, stagger_resets=False)
    env.reset_to(torch.tensor([100, 101, 102]), torch.ones(3))
    env._positions.copy_(torch.tensor([0.5, 0.5, -0.5]))
    env.step(np.array([[1.0], [1.0], [0.0]], np.float32))
    expected = Execution.of(RULED).position(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0.5, 0.5, -0.5]),
                                            torch.tensor([100, 101, 102]))
    torch.testing.assert_close(env.last_positions, expected)
    torch.testing.assert_close(env.last_cost, (expected - torch.tensor([0.5, 0.5, -0.5])).abs().double() * RULED.fee)
