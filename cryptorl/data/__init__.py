"""OHLCV loading and validation: every stage reads market data through `load_ohlcv`.

See `validation` for what a valid frame is, `gaps` for the gap policy and `loader` for the formats read.
"""

from cryptorl.data.append import AppendReport, append_bars
from cryptorl.data.loader import LoadReport, dataset_name, load_ohlcv, load_ohlcv_with_report
from cryptorl.data.validation import COLUMNS, validate_ohlcv

__all__ = ["COLUMNS", "AppendReport", "LoadReport", "append_bars", "dataset_name", "load_ohlcv", "load_ohlcv_with_report",
           "validate_ohlcv"]
