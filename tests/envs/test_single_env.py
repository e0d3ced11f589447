import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from cryptorl.envs import BAR_INDEX, MARKET, POSITION, W_COST, CryptoTradingEnv, EnvConfig, MarketData
from cryptorl.errors import ConfigError, DataError

# The identity execution rule (the position is the action): the levers' own tests are in test_execution.py.
CONFIG = EnvConfig(episode_length=20, fee=0.001, reward_scale=100.0, w_cost_low=0.5, w_cost_high=2.0, no_trade_band=0.0)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return MarketData.random(400, n_features=7, seed=3).with_slice(100, 300)


def _frames(n_bars: int = 120) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    index = pd.date_range("2021-01-01", periods=n_bars, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.standard_normal((n_bars, 3)), index=index, columns=["ret_1", "ret_24", "rv_24"])
    context = pd.DataFrame(rng.random((n_bars, 2)), index=index, columns=["p_state_0", "p_state_1"])
    close = pd.Series(np.linspace(100.0, 110.0, n_bars), index=index, name="close")
    return features, context, close


@pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")  # unbounded features and w_cost
@pytest.mark.parametrize("include_bar_index", [False, True])
def test_passes_gymnasium_env_checker(market, include_bar_index):
    env = CryptoTradingEnv(market, CONFIG, include_bar_index=include_bar_index)
    check_env(env, skip_render_check=True)
    assert (BAR_INDEX in env.observation_space.spaces) is include_bar_index


def test_reward_observation_and_time_limit_follow_the_contract(market):
    env = CryptoTradingEnv(market, CONFIG, include_bar_index=True)
    source, log_returns = market.source.numpy(), market.log_returns.numpy()
    obs, _ = env.reset(options={"start": 150, "w_cost": 1.5})
    np.testing.assert_array_equal(obs[MARKET], source[150 - 63:151])
    actions, held = [0.5, -1.0, 2.0], 0.0  # 2.0 is clipped to the 1.0 the position space allows
    for step, action in enumerate(actions):
        bar = 150 + step
        obs, reward, terminated, truncated, info = env.step(np.array([action], dtype=np.float32))
        position = min(action, 1.0)
        expected = (position * log_returns[bar] - 1.5 * 0.001 * abs(position - held)) * 100.0
        assert reward == pytest.approx(expected, rel=1e-6)
        assert info["pnl"] == pytest.approx(position * log_returns[bar]) and not terminated and not truncated
        assert obs[POSITION][0] == position and obs[W_COST][0] == 1.5 and obs[BAR_INDEX][0] == bar + 1
        held = position
    for _ in range(CONFIG.episode_length - len(actions) - 1):
        assert not env.step(np.zeros(1, np.float32))[3]
    assert env.step(np.zeros(1, np.float32))[3]  # truncated after exactly episode_length steps


def test_log_returns_come_from_close():
    features, context, close = _frames()
    market = MarketData.from_frames(features, context, close, 70, 120)
    assert market.log_returns[80].item() == pytest.approx(np.log(close.iloc[81] / close.iloc[80]))
    assert market.log_returns[-1].item() == 0.0 and market.columns[-1] == "p_state_1"


def test_random_starts_and_w_costs_stay_in_range(market):
    env = CryptoTradingEnv(market, CONFIG, include_bar_index=True)
    env.reset(seed=0)
    env.set_w_cost_range(3.0, 4.0)  # what the MORL curriculum does between episodes
    draws = [env.reset()[0] for _ in range(200)]
    starts = np.array([obs[BAR_INDEX][0] for obs in draws])
    w_costs = np.array([obs[W_COST][0] for obs in draws])
    # The last decision bar (start + length - 1) must leave t + 1 inside the slice: start <= 300 - 1 - 20.
    assert starts.min() >= 100 and starts.max() <= 279 and len(np.unique(starts)) > 50
    assert w_costs.min() >= 3.0 and w_costs.max() <= 4.0


def test_a_slice_shorter_than_an_episode_is_one_whole_episode(market):
    env = CryptoTradingEnv(market.with_slice(200, 210), CONFIG, include_bar_index=True)
    obs, _ = env.reset(seed=1)
    bars = [obs[BAR_INDEX][0]]
    truncated = False
    while not truncated:
        obs, _, _, truncated, _ = env.step(np.zeros(1, np.float32))
        bars.append(obs[BAR_INDEX][0])
    assert bars == list(range(200, 210))  # decisions at 200..208, the final observation at 209 = stop - 1


def test_bad_options_and_config_are_refused(market):
    env = CryptoTradingEnv(market, CONFIG)
    with pytest.raises(ConfigError, match=r"start bar 295 is outside \[100, 279\]"):
        env.reset(options={"start": 295})
    with pytest.raises(ConfigError, match=r"w_cost range \[2.0, 1.0\]"):
        env.set_w_cost_range(2.0, 1.0)
    with pytest.raises(ConfigError, match="env.episode_length"):
        EnvConfig(episode_length=0).validate()
    with pytest.raises(ConfigError, match="env.fee"):
        EnvConfig(fee=-0.1).validate()


def test_nan_in_the_used_span_names_timestamp_and_column():
    features, context, close = _frames()
    features.iloc[10, 1] = np.nan  # 60 bars before the slice start 70: inside its first window (bars 7..70)
    with pytest.raises(DataError, match=r"row 10 \(2021-01-01 10:00:00\+00:00\), column 'ret_24'"):
        MarketData.from_frames(features, context, close, 70, 120)
    assert MarketData.from_frames(features, context, close, 75, 120).start == 75  # bar 10 is before every window


def test_non_positive_close_and_bad_bounds_are_refused():
    features, context, close = _frames()
    close.iloc[90] = 0.0
    with pytest.raises(DataError, match=r"log-return at row 89 .* column 'close' must be positive"):
        MarketData.from_frames(features, context, close, 70, 120)
    with pytest.raises(DataError, match=r"slice \[10, 120\) .* need start >= 63"):
        MarketData.from_frames(*_frames(), 10, 120)
    with pytest.raises(DataError, match="context and features have different bar indexes"):
        features, context, close = _frames()
        MarketData.from_frames(features, context.iloc[1:], close, 70, 120)
