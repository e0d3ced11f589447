"""Per-bar series of one audit: what the audit stage stores as `series.parquet` and the stitcher reads.

One row per decision bar of the test slice (UTC timestamps), at the headline w_cost (the real fee):
- `log_return`: log(close[t+1] / close[t]), the return earned by the position held over bar t -> t+1;
- `position.<policy>`: that position, for the trained agent and every baseline;
- `net.<policy>`: position × log_return − fee × |Δposition|, the backtest's own net return (the first bar
  pays the entry from flat, cryptorl/audit/metrics.py).

The columns are the whole contract between the audit and the walk-forward evaluation, so the names live here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptorl.audit.backtest import BacktestResult
from cryptorl.errors import DataError

LOG_RETURN = "log_return"
POSITION = "position."
NET = "net."


def position_column(policy: str) -> str:
    return f"{POSITION}{policy}"


def net_column(policy: str) -> str:
    return f"{NET}{policy}"


def audit_series(results: dict[str, BacktestResult], w_cost: float) -> pd.DataFrame:
    """The (T, 1 + 2P) series of `results` (all backtests of the same slice) at `w_cost`, on UTC timestamps."""
    first = next(iter(results.values()))
    if first.timestamps is None:
        raise DataError(
            "the audited market has no timestamps: build it with MarketData.from_frames "
            "from a frame with a UTC DatetimeIndex"
        )
    index = pd.DatetimeIndex(pd.to_datetime(first.timestamps, utc=True), name="timestamp")
    columns = {LOG_RETURN: first.log_returns.astype(np.float64)}
    for policy, result in results.items():
        run = result.runs[w_cost]
        columns[position_column(policy)] = run.positions.astype(np.float64)
        columns[net_column(policy)] = run.net_returns
    return pd.DataFrame(columns, index=index)


def policies_of(frame: pd.DataFrame) -> list[str]:
    """The policies a series holds positions of, in column order."""
    return [column[len(POSITION) :] for column in frame.columns if column.startswith(POSITION)]
