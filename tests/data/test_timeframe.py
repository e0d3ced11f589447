"""Coarser bars from the hourly file: causal, complete, epoch-aligned, annualised by their own count."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, DataConfig, get_profile, with_overrides
from cryptorl.data import bars_per_year, load_bars, resample_ohlcv
from cryptorl.envs import MarketData
from cryptorl.errors import ConfigError, DataError
from cryptorl.storage import ArtifactStore

HOUR = pd.Timedelta(hours=1)


def hourly(n: int, start: str = "2021-03-01 02:00") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="h", tz="UTC", name="timestamp")
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame({"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close,
                         "volume": np.ones(n)}, index=index)


def test_a_4h_bar_aggregates_its_own_four_hours_on_the_epoch_grid():
    frame = hourly(14)  # 02:00 .. 15:00: the first 4h bar (00:00) and the last one (16:00) are incomplete
    coarse = resample_ohlcv(frame, HOUR, 4 * HOUR, "test")
    assert list(coarse.index.strftime("%H:%M")) == ["04:00", "08:00", "12:00"]
    first = frame.loc["2021-03-01 04:00":"2021-03-01 07:00"]
    assert coarse.iloc[0].to_dict() == {"open": first["open"].iloc[0], "high": first["high"].max(),
                                        "low": first["low"].min(), "close": first["close"].iloc[-1], "volume": 4.0}


def test_coarse_bars_never_see_later_hours():
    frame = hourly(200)
    full = resample_ohlcv(frame, HOUR, 4 * HOUR, "test")
    for cut in (50, 51, 53, 120):
        prefix = resample_ohlcv(frame.iloc[:cut], HOUR, 4 * HOUR, "test")
        pd.testing.assert_frame_equal(prefix, full.loc[prefix.index])  # every complete bar is final
        assert prefix.index[-1] + 4 * HOUR <= frame.index[cut - 1] + HOUR  # only complete bars


def test_the_bundled_file_as_4h_and_daily_bars():
    four = load_bars(DEFAULT_DATA_PATH, DataConfig(timeframe="4h"))
    daily = load_bars(DEFAULT_DATA_PATH, DataConfig(timeframe="1D"))
    hours = load_bars(DEFAULT_DATA_PATH, DataConfig())
    assert len(four) == 13_967 and len(daily) == 2_327 and (four.index.hour % 4 == 0).all()
    assert four["close"].equals(hours["close"].loc[four.index + 3 * HOUR].set_axis(four.index))
    assert bars_per_year(4 * HOUR) == 2_190 and bars_per_year(24 * HOUR) == 365


def test_a_timeframe_must_be_a_multiple_of_the_bar():
    with pytest.raises(ConfigError, match=r"invalid config data.timeframe='90min': use a whole multiple of "
                                          r"data.bar='1h'"):
        DataConfig(timeframe="90min").validate()
    with pytest.raises(DataError, match=r"make no complete 1D bar: pass a longer file"):
        resample_ohlcv(hourly(20), HOUR, 24 * HOUR, "short.csv")


def test_a_4h_segment_splits_and_its_market_is_annualised_by_4h_bars(tmp_path):
    profile = with_overrides(get_profile("smoke"), {"data.timeframe": "4h"})
    store = ArtifactStore(f"file://{tmp_path}")
    split = stages.split_segment(store, stages.source_ref(str(DEFAULT_DATA_PATH)), 0, profile.data, profile.features,
                                 profile.wfo)
    segment = stages.load_segment(store, split)
    assert (segment.frame.index[1] - segment.frame.index[0]) == 4 * HOUR
    train = segment.meta["slices"]["train"]
    assert 1_050 < train["stop"] - train["start"] < 1_110  # 6 months of 4h bars
    market = MarketData.from_frames(segment.frame[segment.feature_names], segment.frame[segment.feature_names[:5]],
                                    segment.frame["close"], 63, len(segment.frame))
    assert market.bars_per_year == 2_190
    assert dataclasses.replace(market, start=64).epoch_bar == market.epoch_bar
