"""Merge newer bars into a stored OHLCV dataset (`cryptorl data append NEW --into DATASET`).

Retraining reads the dataset again, so growing it must never change a bar it already holds: a silently
revised bar would change every feature computed after it. Overlapping bars must therefore agree, new bars
are merged in time order, and the merged whole must pass the same validation and gap policy as
`load_ohlcv`. The dataset is rewritten atomically (temp + rename locally, one PUT on object storage);
with nothing new it is not rewritten at all, so its content hash, and every cached result keyed on it,
stay valid.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from cryptorl.data.gaps import fill_gaps
from cryptorl.data.loader import read_raw
from cryptorl.data.validation import COLUMNS, format_timestamp, parse_bar, validate_ohlcv
from cryptorl.errors import DataError
from cryptorl.storage import write_url

# Bars re-exported by an exchange carry the same decimal prices; only float round-off may differ.
_AGREEMENT_RTOL = 1e-9
_WRITERS = (".parquet", ".pq", ".csv")


@dataclass(frozen=True)
class AppendReport:
    """What `append_bars` did; `summary()` is the line the CLI prints."""

    target: str
    added: int
    overlapping: int  # bars present in both files (all of them agree)
    rows: int  # stored bars after the merge (outages not filled: the file keeps what the exchange sent)
    first: pd.Timestamp
    last: pd.Timestamp

    def summary(self) -> str:
        span = f"{self.rows:,} bars {self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M} UTC"
        if self.added == 0:
            return f"{self.target}: up to date, 0 bars added ({self.overlapping:,} overlapping bars agree); {span}"
        return f"{self.target}: {self.added:,} bars added ({self.overlapping:,} overlapping bars agree); now {span}"


def append_bars(new_source: str, target: str, *, bar: str = "1h", max_gap_fill_bars: int = 48) -> AppendReport:
    """Merge the bars of `new_source` into the dataset `target` (path or fsspec URL) and rewrite it atomically.

    Raises `DataError` naming the first conflicting timestamp when an overlapping bar differs, and the
    usual validation errors for either file or for a gap the merge would leave.
    """
    writer = _writer_for(target)  # refuse an unwritable format before reading anything
    stored = validate_ohlcv(read_raw(target), target, bar=bar)  # (T, 5)
    new = validate_ohlcv(read_raw(new_source), new_source, bar=bar)  # (N, 5)
    overlap = stored.index.intersection(new.index)
    _check_agreement(stored.loc[overlap], new.loc[overlap], new_source, target)
    added = new.drop(index=overlap)
    merged = pd.concat([stored, added]).sort_index()  # (T + N', 5)
    fill_gaps(merged, parse_bar(bar), max_gap_fill_bars, f"{target} + {new_source}")  # same gap policy as loading
    if len(added):
        write_url(target, writer(merged))
    return AppendReport(target=target, added=len(added), overlapping=len(overlap), rows=len(merged),
                        first=merged.index[0], last=merged.index[-1])


def _check_agreement(stored: pd.DataFrame, new: pd.DataFrame, new_source: str, target: str) -> None:
    """Every overlapping bar must hold the same values in both files (both frames: (K, 5), same index)."""
    stored_values, new_values = stored.to_numpy(), new.to_numpy()  # (K, 5)
    differs = ~np.isclose(new_values, stored_values, rtol=_AGREEMENT_RTOL, atol=0.0)  # (K, 5)
    bad_rows = np.flatnonzero(differs.any(axis=1))
    if bad_rows.size == 0:
        return
    row = int(bad_rows[0])
    column = int(np.argmax(differs[row]))
    raise DataError(f"{new_source}: bar {format_timestamp(stored.index[row])} conflicts with {target} in column "
                    f"'{COLUMNS[column]}' ({new_values[row, column]!r} vs stored {stored_values[row, column]!r}; "
                    f"{bad_rows.size:,} conflicting bars); fix: append only bars after "
                    f"{format_timestamp(stored.index[-1])}, or rebuild the dataset from one consistent download")


def _writer_for(target: str) -> Callable[[pd.DataFrame], bytes]:
    """The encoder of the dataset's own format: the stored layout is `timestamp` + OHLCV columns."""
    name = target.lower().split("?")[0]
    if name.endswith((".parquet", ".pq")):
        return _parquet_bytes
    if name.endswith(".csv"):
        return _csv_bytes
    raise DataError(f"{target}: cannot rewrite this format; fix: keep the dataset as {', '.join(_WRITERS)} "
                    "(convert it once with pandas, then append)")


def _as_table(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.reset_index()  # timestamp column (UTC) + open high low close volume, RangeIndex


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    _as_table(frame).to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return _as_table(frame).to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ").encode()
