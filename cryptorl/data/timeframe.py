"""Coarser bars from finer ones, causally: a 4h or daily strategy from the same hourly file.

A coarse bar labelled t aggregates the fine bars t, t + bar, ... up to t + timeframe (open of the first, high
and low over all, close of the last, summed volume), on a grid aligned to the Unix epoch (4h bars open at
00:00, 04:00, ... UTC; daily bars at midnight UTC). Only complete coarse bars are kept: the first may start
mid-way in the file and the newest may still be forming, and either would invent a bar. A coarse bar depends
on its own fine bars only, so a feature at coarse bar t still uses prices up to t's close and nothing later.
"""

from __future__ import annotations

import os

import pandas as pd

from cryptorl.config import DataConfig
from cryptorl.data.loader import load_ohlcv
from cryptorl.data.validation import duration_alias, parse_bar
from cryptorl.errors import ConfigError, DataError

HOURS_PER_YEAR = 24 * 365  # crypto trades around the clock


def resample_ohlcv(frame: pd.DataFrame, bar: pd.Timedelta, timeframe: pd.Timedelta, source: str) -> pd.DataFrame:
    """`frame` (validated, gap-filled bars of duration `bar`) as complete bars of `timeframe`."""
    if timeframe == bar:
        return frame
    per_bar = timeframe / bar
    if timeframe < bar or per_bar != int(per_bar):
        raise ConfigError(
            f"invalid config data.timeframe={duration_alias(timeframe)!r}: use a whole multiple of the "
            f"data's bar {duration_alias(bar)} (e.g. 4h or 1D)"
        )
    groups = frame.resample(timeframe, origin="epoch", label="left", closed="left")
    coarse = groups.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    coarse = coarse[groups.size() == int(per_bar)]
    if coarse.empty:
        raise DataError(
            f"{source}: its {len(frame):,} bars of {duration_alias(bar)} make no complete "
            f"{duration_alias(timeframe)} bar: pass a longer file or set data.timeframe to the file's bar"
        )
    return coarse.rename_axis(frame.index.name)


def load_bars(path_or_url: str | os.PathLike[str], config: DataConfig) -> pd.DataFrame:
    """The bars a run works on: the file read at `config.bar` (validated, outages filled), then resampled to
    `config.timeframe`."""
    frame = load_ohlcv(path_or_url, bar=config.bar, max_gap_fill_bars=config.max_gap_fill_bars)
    return resample_ohlcv(frame, parse_bar(config.bar), parse_bar(config.timeframe), os.fspath(path_or_url))


def bars_per_year(timeframe: pd.Timedelta) -> float:
    """Bars of `timeframe` in a 365-day year of continuous trading (8760 hourly bars): the annualisation."""
    return HOURS_PER_YEAR * pd.Timedelta(hours=1) / timeframe
