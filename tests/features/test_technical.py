"""The 50 technical features: names, warm-up, finiteness on gap-filled bars, meaning, and causality to the bit."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from cryptorl.config import DEFAULT_DATA_PATH
from cryptorl.errors import DataError
from cryptorl.features import FEATURE_DOCS, FEATURE_NAMES, WARMUP_BARS, check_truncation_invariance, technical_features

REGIME_COLUMNS = ("ret_1", "ret_24", "rv_24", "rv_168", "vol_z_24")  # what the HMM reads by name


def assert_truncation_invariant(fn: Callable[[pd.DataFrame], pd.DataFrame], frame: pd.DataFrame,
                                cut_points: list[int]) -> None:
    """Fail unless fn(frame[:t+1]) equals fn(frame) bit for bit on rows 0..t at every cut t."""
    differing = check_truncation_invariance(fn, frame, cut_points)
    assert not differing, f"columns depend on bars after the cut (look-ahead): {differing}"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """The bundled BTC/USDT 1h bars, outages filled with flat zero-volume bars as the loader does."""
    raw = pd.read_parquet(DEFAULT_DATA_PATH).set_index("timestamp")
    filled = raw.reindex(pd.date_range(raw.index[0], raw.index[-1], freq="1h", name="timestamp"))
    close = filled["close"].ffill()
    for name in ("open", "high", "low", "close"):
        filled[name] = filled[name].fillna(close)
    filled["volume"] = filled["volume"].fillna(0.0)
    return filled


@pytest.fixture(scope="module")
def features(bars: pd.DataFrame) -> pd.DataFrame:
    return technical_features(bars)


def test_exactly_fifty_documented_float_columns_on_the_input_index(bars, features):
    assert len(FEATURE_NAMES) == 50 and len(set(FEATURE_NAMES)) == 50
    assert set(REGIME_COLUMNS) <= set(FEATURE_NAMES)
    assert all(FEATURE_DOCS[name].strip() for name in FEATURE_NAMES)
    assert tuple(features.columns) == FEATURE_NAMES
    assert (features.dtypes == np.float64).all()
    assert features.index.equals(bars.index)


def test_gap_filled_flat_bars_are_present_in_the_fixture(bars):
    flat = (bars["high"] == bars["low"]) & (bars["volume"] == 0)
    assert len(bars) == 55_868 and flat.sum() >= 128  # 128 filled outage hours + zero-volume maintenance bars


def test_nan_on_exactly_the_warmup_rows_and_finite_after(features):
    values = features.to_numpy()  # (T, 50)
    assert 0 < WARMUP_BARS <= 200
    assert np.isnan(values[:WARMUP_BARS]).all()
    assert np.isfinite(values[WARMUP_BARS:]).all()


def test_long_flat_stretch_stays_finite():
    index = pd.date_range("2024-01-01", periods=600, freq="1h", tz="UTC", name="timestamp")
    close = pd.Series(np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 600))) * 100.0, index=index)
    close.iloc[300:400] = close.iloc[299]  # a 100-bar outage: every window of 72 bars or less is flat
    bars = pd.DataFrame({"open": close.shift(1).fillna(close), "close": close, "volume": 5.0}, index=index)
    bars["high"] = bars[["open", "close"]].max(axis=1) * 1.001
    bars["low"] = bars[["open", "close"]].min(axis=1) * 0.999
    bars.loc[close.index[300:400], ["open", "high", "low", "volume"]] = [close.iloc[299]] * 3 + [0.0]
    values = technical_features(bars).to_numpy()[WARMUP_BARS:]
    assert np.isfinite(values).all()


def test_regime_columns_mean_what_their_names_say(bars, features):
    log_close = np.log(bars["close"].to_numpy())
    t = 30_000
    assert features["ret_1"].iloc[t] == pytest.approx(log_close[t] - log_close[t - 1], rel=1e-12)
    assert features["ret_24"].iloc[t] == pytest.approx(log_close[t] - log_close[t - 24], rel=1e-12)
    returns = np.diff(log_close)[t - 168:t]  # the 168 one-bar returns ending at bar t
    assert features["rv_168"].iloc[t] == pytest.approx(np.std(returns, ddof=1), rel=1e-9)
    assert features["rv_24"].iloc[t] == pytest.approx(np.std(returns[-24:], ddof=1), rel=1e-9)
    log_volume = np.log1p(bars["volume"].to_numpy())[t - 23:t + 1]
    z = (log_volume[-1] - log_volume.mean()) / log_volume.std(ddof=1)
    assert features["vol_z_24"].iloc[t] == pytest.approx(z, rel=1e-9)


def test_features_are_scale_free(bars, features):
    window = bars.iloc[:2_000]
    rescaled = window.assign(**{name: window[name] * 1_000.0 for name in ("open", "high", "low", "close")})
    np.testing.assert_allclose(technical_features(rescaled).to_numpy(), features.iloc[:2_000].to_numpy(),
                               rtol=1e-7, atol=1e-9)


def test_bounded_features_stay_in_their_ranges(features):
    body = features.iloc[WARMUP_BARS:]
    for name in ("rsi_14", "rsi_48", "candle_body", "hour_sin", "dow_cos"):
        assert body[name].between(-1.0, 1.0).all(), name
    for name in ("stoch_k_14", "candle_upper", "candle_lower"):
        assert body[name].between(0.0, 1.0).all(), name
    assert (body["dist_max_168"] <= 0).all() and (body["dist_min_168"] >= 0).all()


def test_calendar_columns_at_monday_midnight_and_six_am(bars):
    monday = pd.Timestamp("2023-01-02 00:00", tz="UTC")  # a Monday
    row = technical_features(bars.loc[:monday]).iloc[-1]
    assert (row["hour_sin"], row["hour_cos"], row["dow_sin"], row["dow_cos"]) == pytest.approx((0, 1, 0, 1), abs=1e-12)
    six_am = technical_features(bars.loc[:monday + pd.Timedelta(hours=6)]).iloc[-1]
    assert (six_am["hour_sin"], six_am["hour_cos"]) == pytest.approx((1, 0), abs=1e-12)


def test_truncation_invariant_to_the_bit_on_bundled_data(bars):
    cuts = [WARMUP_BARS - 1, WARMUP_BARS, 300, 5_000, 20_000, 40_000, len(bars) - 1]
    assert_truncation_invariant(technical_features, bars, cuts)


def _with_next_bar_return(ohlcv: pd.DataFrame) -> pd.DataFrame:
    """A planted leak: the next bar's return, the classic look-ahead bug."""
    leaked = np.log(ohlcv["close"]).diff().shift(-1).rename("next_ret")
    return technical_features(ohlcv).join(leaked)


def _normalised_by_full_series(ohlcv: pd.DataFrame) -> pd.DataFrame:
    """A planted leak: a z-score by whole-series statistics (they include the future)."""
    features = technical_features(ohlcv)
    return (features - features.mean()) / features.std()


@pytest.mark.parametrize("leaky", [_with_next_bar_return, _normalised_by_full_series])
def test_planted_leak_is_caught(bars, leaky):
    with pytest.raises(AssertionError, match="look-ahead"):
        assert_truncation_invariant(leaky, bars.iloc[:3_000], [1_000, 2_000])


def test_check_names_only_the_leaky_column(bars):
    assert check_truncation_invariance(_with_next_bar_return, bars.iloc[:3_000], [1_000]) == ["next_ret"]


def test_check_refuses_a_cut_outside_the_frame(bars):
    with pytest.raises(DataError, match="cut point 500 is outside the frame of 400 rows"):
        check_truncation_invariance(technical_features, bars.iloc[:400], [500])


def test_missing_column_is_refused(bars):
    with pytest.raises(DataError, match=r"lacks column\(s\) \['volume'\]"):
        technical_features(bars.drop(columns="volume"))


def test_non_datetime_index_is_refused(bars):
    with pytest.raises(DataError, match="indexed by RangeIndex.*set_index"):
        technical_features(bars.iloc[:300].reset_index())


def test_non_positive_price_is_refused_with_its_timestamp(bars):
    broken = bars.iloc[:300].copy()
    broken.iloc[123, broken.columns.get_loc("low")] = 0.0
    with pytest.raises(DataError, match=re.escape(f"'low' has a non-positive or NaN price at {broken.index[123]}")):
        technical_features(broken)
