"""OHLCV loading and validation: every stage reads market data through `load_bars` (the file at its bar, then
the run's timeframe).

See `validation` for what a valid frame is, `gaps` for the gap policy, `loader` for the formats read and
`timeframe` for the causal resampling to coarser bars.
"""

from cryptorl.data.append import AppendReport, append_bars
from cryptorl.data.loader import LoadReport, dataset_name, load_ohlcv, load_ohlcv_with_report
from cryptorl.data.timeframe import bars_per_year, load_bars, resample_ohlcv
from cryptorl.data.validation import COLUMNS, validate_ohlcv

__all__ = [
    "COLUMNS",
    "AppendReport",
    "LoadReport",
    "append_bars",
    "bars_per_year",
    "dataset_name",
    "load_bars",
    "load_ohlcv",
    "load_ohlcv_with_report",
    "resample_ohlcv",
    "validate_ohlcv",
]
