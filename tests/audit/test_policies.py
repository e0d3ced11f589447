"""Baseline policies, the spec parser, and momentum's causality."""

import gymnasium as gym
import numpy as np
import pytest

from cryptorl.audit.policies import (ConstantPolicy, MomentumPolicy, ProbePolicy, RandomPolicy, TrainedPolicy,
                                     best_constant, make_policy)
from cryptorl.audit.probe import RidgeProbe
from cryptorl.envs import POSITION, W_COST, MarketData
from cryptorl.errors import ConfigError

N_BARS = 120
CLOSE = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, N_BARS)))  # (T,)


def market_of(close: np.ndarray) -> MarketData:
    return MarketData.from_arrays(np.zeros((len(close), 3)), close, start=63, stop=len(close))


@pytest.fixture(scope="module")
def market() -> MarketData:
    return market_of(CLOSE)


BARS = np.arange(N_BARS - 1)  # every bar with a next-bar return


def test_momentum_is_the_sign_of_the_past_lookback_return(market):
    positions = MomentumPolicy(market, lookback=5)({}, BARS)
    log_returns = np.log(CLOSE[1:] / CLOSE[:-1])
    by_hand = [np.sign(sum(log_returns[max(0, t - 5): t])) for t in BARS]  # log_returns[t] is bar t's future
    np.testing.assert_array_equal(positions, by_hand)
    np.testing.assert_array_equal(positions[5:], np.sign(np.log(CLOSE[5:-1] / CLOSE[:-6])))
    assert positions[0] == 0 and set(positions[5:]) == {-1.0, 1.0}


def test_momentum_never_reads_the_future(market):
    """Crash every price after bar t: positions at bars <= t must not move; the next bar's must."""
    t = 90
    crashed = CLOSE.copy()
    crashed[t + 1:] *= 0.5  # log_returns[t] drops by log 2
    before, after = MomentumPolicy(market, 24)({}, BARS), MomentumPolicy(market_of(crashed), 24)({}, BARS)
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert after[t + 1] == -1.0


def test_constant_and_random_policies():
    bars = np.array([70, 71, 90])
    np.testing.assert_array_equal(ConstantPolicy(0.5)({}, bars), [0.5, 0.5, 0.5])
    first, again = RandomPolicy(seed=7)({}, np.arange(1000)), RandomPolicy(seed=7)({}, np.arange(1000))
    np.testing.assert_array_equal(first, again)
    assert np.all(np.abs(first) <= 1) and first.std() > 0.5  # uniform on [-1, 1]: std 0.577


@pytest.mark.parametrize("spec, position", [("flat", 0.0), ("buy_and_hold", 1.0), ("constant:-0.25", -0.25),
                                            ("constant:1", 1.0)])
def test_constant_specs(market, spec, position):
    policy = make_policy(spec, market=market)
    assert isinstance(policy, ConstantPolicy) and policy.position == position


def test_probe_trades_only_when_its_forecast_beats_w_cost_times_fee():
    forecast = np.array([0.0015, 0.0005, -0.0005, -0.003])  # next-bar log-return forecasts of bars 0..3
    features = np.zeros((N_BARS, 3))
    features[:4, 0] = forecast
    identity = RidgeProbe(mean=np.zeros(3), scale=np.ones(3), coef=np.array([1.0, 0.0, 0.0]), intercept=0.0)
    policy = ProbePolicy(identity, market_of_features(features), fee=0.001)
    bars = np.arange(4)
    for w_cost, expected in [(0.0, [1, 1, -1, -1]), (1.0, [1, 0.3, 0.3, -1]), (2.0, [0.3, 0.3, 0.3, -1])]:
        observation = {POSITION: np.full((4, 1), 0.3, np.float32), W_COST: np.full((4, 1), w_cost, np.float32)}
        np.testing.assert_allclose(policy(observation, bars), expected, err_msg=f"w_cost {w_cost}")


def market_of_features(features: np.ndarray) -> MarketData:
    return MarketData.from_arrays(features, CLOSE, start=63, stop=N_BARS)


@pytest.mark.parametrize("drift, position", [(0.002, 1.0), (-0.002, -1.0), (0.0, 0.0), (2e-6, 0.0)])
def test_best_constant_follows_the_train_drift_only_when_it_beats_the_entry_fee(drift, position):
    """Drift 2e-6 over 56 train bars earns 1.1e-4 < the 0.001 entry fee: flat (Sharpe 0) beats both signs."""
    close = 100 * np.exp(drift * np.arange(N_BARS) + np.where(np.arange(N_BARS) % 2, 1e-7, 0.0))
    best = best_constant(market_of(close), fee=0.001)
    assert best.position == position and (best.train_sharpe > 0) == (position != 0)


def test_other_specs(market):
    assert isinstance(make_policy("momentum", market=market), MomentumPolicy)
    assert isinstance(make_policy("probe", market=market, train=market, fee=0.001), ProbePolicy)
    assert make_policy("best_constant", market=market, train=market, fee=0.001).position in (-1.0, 0.0, 1.0)
    assert make_policy("random", market=market, seed=3).seed == 3
    model = _FakeModel(keys=("position",))
    assert make_policy("trained", market=market, model=model).model is model


@pytest.mark.parametrize("spec, message", [
    ("constant:1.5", "constant position 1.5 is outside"), ("constant:x", "X must be a number"),
    ("constant", "unknown policy spec"), ("momentum:3", "unknown policy spec"), ("hold", "unknown policy spec"),
])
def test_bad_specs_list_the_valid_ones(market, spec, message):
    with pytest.raises(ConfigError, match=f"{message}.*trained, buy_and_hold, flat, momentum, constant:X"):
        make_policy(spec, market=market)


def test_trained_needs_a_model(market):
    with pytest.raises(ConfigError, match="'trained' needs a trained model"):
        make_policy("trained", market=market)


@pytest.mark.parametrize("spec", ["probe", "best_constant"])
def test_fitted_baselines_need_the_train_slice_and_the_fee(market, spec):
    with pytest.raises(ConfigError, match=f"'{spec}' is fitted on the train slice: pass train=.* and fee="):
        make_policy(spec, market=market, train=market)


def test_momentum_lookback_must_be_positive(market):
    with pytest.raises(ConfigError, match="lookback=0: use at least 1 bar"):
        MomentumPolicy(market, lookback=0)


def test_trained_policy_names_observation_keys_the_env_does_not_emit():
    policy = TrainedPolicy(_FakeModel(keys=("market", "position")))
    with pytest.raises(ConfigError, match=r"keys \['market'\].*include_market=True"):
        policy({"position": np.zeros((2, 1), np.float32)}, np.array([70, 70]))


class _FakeModel:
    """Just enough of an SB3 model for building a TrainedPolicy: an observation space."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.observation_space = gym.spaces.Dict({key: gym.spaces.Box(-1, 1, (1,)) for key in keys})
