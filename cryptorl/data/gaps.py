"""Gap policy: missing bars on the regular bar grid are exchange outages.

An outage of at most `max_gap_fill_bars` missing bars is filled with flat bars: open = high = low =
close = the previous bar's close, volume = 0. That is what the market showed while the exchange was
down (no trade, no price change), it keeps every later stage on a regular grid (windows of 64 bars
are 64 hours), and the zero volume marks the bars as synthetic for anyone who looks. A longer gap is
refused: inventing days of prices would be fiction, so the user must either allow it explicitly
(raise `data.max_gap_fill_bars`) or use data that starts after it. The bundled BTC/USDT file has 28
outages, the longest 33 bars (2018-02-08 01:00 .. 2018-02-09 09:00 UTC), so the default of 48 fills all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptorl.data.validation import PRICE_COLUMNS, format_timestamp
from cryptorl.errors import DataError


@dataclass(frozen=True)
class GapFill:
    """A gap-free frame and what it took to make it."""

    frame: pd.DataFrame
    gaps: int  # outages filled
    bars: int  # flat bars inserted


def fill_gaps(frame: pd.DataFrame, bar_duration: pd.Timedelta, max_gap_fill_bars: int, source: str) -> GapFill:
    """Fill outages of a canonical frame with flat zero-volume bars, or refuse a gap that is too long."""
    epoch_ns = frame.index.asi8  # (T,)
    missing = np.diff(epoch_ns) // bar_duration.value - 1  # (T-1,) missing bars after each bar
    _refuse_long_gaps(frame.index, missing, bar_duration, max_gap_fill_bars, source)
    n_bars = int(missing.sum())
    if n_bars == 0:
        return GapFill(frame, 0, 0)
    # Integer arithmetic: np.arange sizes its result in float64, which can drop the last bar of a ns range.
    grid_ns = epoch_ns[0] + bar_duration.value * np.arange(len(frame) + n_bars, dtype=np.int64)  # (T',)
    grid = pd.DatetimeIndex(grid_ns, tz="UTC", name="timestamp")
    filled = frame.reindex(grid)
    outage = filled["close"].isna().to_numpy()  # (T',) rows inserted by the reindex
    previous_close = filled["close"].ffill()
    for name in PRICE_COLUMNS:
        filled[name] = filled[name].where(~outage, previous_close)
    filled["volume"] = filled["volume"].fillna(0.0)
    return GapFill(filled, int(np.count_nonzero(missing)), n_bars)


def _refuse_long_gaps(
    index: pd.DatetimeIndex, missing: np.ndarray, bar_duration: pd.Timedelta, max_gap_fill_bars: int, source: str
) -> None:
    """`DataError` naming the first too-long gap, the largest one, and the two ways out."""
    too_long = np.flatnonzero(missing > max_gap_fill_bars)
    if too_long.size == 0:
        return
    first, last = int(too_long[0]), int(too_long[-1])
    span = f"{format_timestamp(index[first] + bar_duration)} .. {format_timestamp(index[first + 1] - bar_duration)}"
    others = f" ({too_long.size} such gaps, the largest {int(missing.max())} bars)" if too_long.size > 1 else ""
    raise DataError(
        f"{source}: gap of {int(missing[first])} missing bars ({span}) exceeds "
        f"data.max_gap_fill_bars={max_gap_fill_bars}{others}; fix: raise data.max_gap_fill_bars to "
        f"{int(missing.max())} or more, or use data that starts at {format_timestamp(index[last + 1])} or later"
    )
