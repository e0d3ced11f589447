"""Grow a stored OHLCV dataset by the bars after its last one (`cryptorl data append NEW --into DATASET`).

Retraining reads the dataset again, so growing it must never change a bar it already holds: a silently
revised bar would change every feature computed after it. Overlapping bars must therefore agree, and the
merged whole must pass the same validation and gap policy as `load_ohlcv`. With nothing new the dataset is
not rewritten at all, so its content hash, and every cached result keyed on it, stay valid.

Nothing is lost either:
- Every column of the dataset is kept, in its order and with its types, and the new rows are written in the
  dataset's own conventions: parquet with its index, CSV with or without its header (Binance's headerless
  klines stay headerless), and the timestamps as the dataset writes them (datetimes in its zone, epoch numbers
  in its unit, or text in its format).
- The new bars must carry every column the dataset has. A column only they have is refused, or added with
  `new_columns` (the older rows get blanks).
- Only bars after the dataset's last one are added. An older bar is accepted only when the dataset already
  holds it, identical (a download that overlaps the end); otherwise the append is refused: history is not
  inserted into a dataset that results were computed on.
- Concurrent appends do not lose each other: the read, merge and write of one append is one
  `ArtifactStore.update` (a lock locally, a conditional PUT on S3), and the file keeps its permission bits.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptorl.data.gaps import fill_gaps
from cryptorl.data.loader import CSV_HEADER, parse_raw, read_raw
from cryptorl.data.validation import (
    COLUMNS,
    epoch_unit_ns,
    format_timestamp,
    parse_bar,
    timestamp_column,
    validate_ohlcv,
)
from cryptorl.errors import ArtifactNotFoundError, DataError
from cryptorl.storage import update_url

# Bars re-exported by an exchange carry the same decimal prices; only float round-off may differ.
_AGREEMENT_RTOL = 1e-9
_WRITERS = (".parquet", ".pq", ".csv")
# Text timestamp layouts a dataset may use; the one that reproduces its own last timestamp is kept.
_TEXT_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S+00:00",
    "%Y-%m-%dT%H:%M:%S+00:00",
    "%Y-%m-%dT%H:%M:%S.%fZ",
)


@dataclass(frozen=True)
class AppendReport:
    """What `append_bars` did; `summary()` is the line the CLI prints."""

    target: str
    added: int
    overlapping: int  # bars present in both files (all of them agree)
    rows: int  # stored bars after the merge (outages not filled: the file keeps what the exchange sent)
    first: pd.Timestamp
    last: pd.Timestamp
    new_columns: tuple[str, ...] = ()

    def summary(self) -> str:
        span = f"{self.rows:,} bars {self.first:%Y-%m-%d %H:%M} .. {self.last:%Y-%m-%d %H:%M} UTC"
        columns = f"; new columns {', '.join(self.new_columns)}" if self.new_columns else ""
        if self.added == 0:
            return f"{self.target}: up to date, 0 bars added ({self.overlapping:,} overlapping bars agree); {span}"
        return (
            f"{self.target}: {self.added:,} bars added ({self.overlapping:,} overlapping bars agree); "
            f"now {span}{columns}"
        )


def append_bars(
    new_source: str, target: str, *, bar: str = "1h", max_gap_fill_bars: int = 48, new_columns: bool = False
) -> AppendReport:
    """Add the bars of `new_source` after the last one of the dataset `target` (path or fsspec URL).

    Raises `DataError` naming the first conflicting or older timestamp, a column the new bars lack or add, and
    the usual validation errors for either file or for a gap the merge would leave (see the module docstring).
    """
    encode = _encoder_for(target)  # refuse an unwritable format before reading anything
    new_raw = read_raw(new_source)
    new = validate_ohlcv(new_raw, new_source, bar=bar)  # (N, 5)
    outcome: list[AppendReport] = []

    def grow(stored_bytes: bytes) -> bytes | None:
        stored_raw = parse_raw(stored_bytes, target)
        stored = validate_ohlcv(stored_raw, target, bar=bar)  # (T, 5)
        merged, table, report = _merged(stored_raw, stored, new_raw, new, new_source, target, new_columns)
        fill_gaps(merged, parse_bar(bar), max_gap_fill_bars, f"{target} + {new_source}")  # the loading gap policy
        outcome.append(report)  # the last attempt's (an S3 update that lost a race runs again)
        return encode(table) if report.added else None

    try:
        update_url(target, grow)
    except ArtifactNotFoundError:
        raise DataError(
            f"{target}: file not found; fix: check the path or URL (--into), or start the dataset by "
            "copying a first download there"
        ) from None
    return outcome[-1]


def _merged(
    stored_raw: pd.DataFrame,
    stored: pd.DataFrame,
    new_raw: pd.DataFrame,
    new: pd.DataFrame,
    new_source: str,
    target: str,
    new_columns: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, AppendReport]:
    """(canonical merged bars, the dataset's table grown by the new bars in its own schema, the report)."""
    overlap = stored.index.intersection(new.index)
    _check_agreement(stored.loc[overlap], new.loc[overlap], new_source, target)
    fresh = ~new.index.isin(stored.index)  # (N,) bars the dataset lacks
    _refuse_older(new.index[fresh], stored.index[-1], new_source, target)
    columns, extra = _columns_of(stored_raw, new_raw, new_source, target, new_columns)
    rows = new_raw.iloc[np.flatnonzero(fresh)]
    appended = pd.DataFrame({name: rows[source].to_numpy() for name, source in columns.items()})
    table = _grown_table(stored_raw, appended, new.index[fresh])
    merged = pd.concat([stored, new[fresh]])  # (T + N', 5), in time order: the new bars all come later
    report = AppendReport(
        target=target,
        added=int(fresh.sum()),
        overlapping=len(overlap),
        rows=len(merged),
        first=merged.index[0],
        last=merged.index[-1],
        new_columns=tuple(map(str, extra)),
    )
    return merged, table, report


def _grown_table(stored_raw: pd.DataFrame, appended: pd.DataFrame, stamps: pd.DatetimeIndex) -> pd.DataFrame:
    """The dataset's table with `appended` (its non-timestamp columns, and any extra ones) below it: the new rows
    take the dataset's column types and its way of writing timestamps."""
    stamp_name = timestamp_column(stored_raw)
    for name in stored_raw.columns:
        appended[name] = (
            _encode_stamps(stamps, stored_raw[name])
            if name == stamp_name
            else appended[name].astype(stored_raw[name].dtype)
        )
    appended = appended[[*stored_raw.columns, *(name for name in appended.columns if name not in stored_raw.columns)]]
    if stamp_name is None:  # the times are the dataset's index
        appended.index = pd.Index(_encode_stamps(stamps, stored_raw.index.to_series()), name=stored_raw.index.name)
    table = pd.concat([stored_raw, appended], ignore_index=stamp_name is not None)
    table.attrs = dict(stored_raw.attrs)
    return table


def _refuse_older(fresh: pd.DatetimeIndex, last: pd.Timestamp, new_source: str, target: str) -> None:
    older = fresh[fresh < last]
    if len(older):
        raise DataError(
            f"{new_source}: {len(older):,} bar(s) from {format_timestamp(older[0])} are older than "
            f"{target}'s last bar {format_timestamp(last)} and not in it; fix: append only bars after "
            "it (append never inserts history into a dataset; rebuild it from one download instead)"
        )


def _columns_of(
    stored_raw: pd.DataFrame, new_raw: pd.DataFrame, new_source: str, target: str, new_columns: bool
) -> tuple[dict[str, str], list[str]]:
    """({each non-timestamp column of the dataset, then each extra one: the new bars' column of that name, any
    case}, the extra columns)."""
    new_by_lower = {_lower(name): name for name in new_raw.columns if name != timestamp_column(new_raw)}
    stored_lower = {_lower(name) for name in stored_raw.columns}
    wanted = [name for name in stored_raw.columns if name != timestamp_column(stored_raw)]
    missing = [name for name in wanted if _lower(name) not in new_by_lower]
    if missing:
        raise DataError(
            f"{new_source}: lacks column(s) {', '.join(map(str, missing))} that {target} has; fix: "
            "download the new bars with the same columns as the dataset"
        )
    extra = [name for lower, name in new_by_lower.items() if lower not in stored_lower]
    if extra and not new_columns:
        raise DataError(
            f"{new_source}: has column(s) {', '.join(map(str, extra))} that {target} lacks; fix: drop "
            "them, or pass --new-columns to add them (the older rows get blanks)"
        )
    return {name: new_by_lower[_lower(name)] for name in (*wanted, *extra)}, extra


def _lower(name: object) -> str:
    return str(name).strip().lower()


def _encode_stamps(stamps: pd.DatetimeIndex, stored: pd.Series) -> pd.Index | np.ndarray:
    """`stamps` (UTC) as the dataset writes its timestamps: datetimes in its zone, epoch numbers in its unit of
    the last stored value, or text in the layout that reproduces that value."""
    if pd.api.types.is_datetime64_any_dtype(stored):
        zone = getattr(stored.dtype, "tz", None)
        return (stamps.tz_convert(zone) if zone is not None else stamps.tz_localize(None)).astype(stored.dtype)
    if pd.api.types.is_numeric_dtype(stored):
        return (stamps.asi8 // epoch_unit_ns(float(stored.iloc[-1]))).astype(stored.dtype)
    last = str(stored.iloc[-1])
    parsed = pd.Timestamp(last)
    parsed = parsed.tz_convert("UTC") if parsed.tzinfo is not None else parsed.tz_localize("UTC")
    layout = next((layout for layout in _TEXT_FORMATS if parsed.strftime(layout) == last), None)
    if layout is None:
        raise DataError(
            f"cannot write new timestamps like the dataset's {last!r}; fix: store the timestamps as "
            "ISO 8601 text, datetimes or epoch numbers"
        )
    return np.asarray(stamps.strftime(layout), dtype=object)


def _check_agreement(stored: pd.DataFrame, new: pd.DataFrame, new_source: str, target: str) -> None:
    """Every overlapping bar must hold the same values in both files (both frames: (K, 5), same index)."""
    stored_values, new_values = stored.to_numpy(), new.to_numpy()  # (K, 5)
    differs = ~np.isclose(new_values, stored_values, rtol=_AGREEMENT_RTOL, atol=0.0)  # (K, 5)
    bad_rows = np.flatnonzero(differs.any(axis=1))
    if bad_rows.size == 0:
        return
    row = int(bad_rows[0])
    column = int(np.argmax(differs[row]))
    raise DataError(
        f"{new_source}: bar {format_timestamp(stored.index[row])} conflicts with {target} in column "
        f"'{COLUMNS[column]}' ({float(new_values[row, column]):g} vs stored "
        f"{float(stored_values[row, column]):g}; {bad_rows.size:,} conflicting bars); fix: append only "
        f"bars after {format_timestamp(stored.index[-1])}, or rebuild the dataset from one consistent "
        "download"
    )


def _encoder_for(target: str) -> Callable[[pd.DataFrame], bytes]:
    """The encoder of the dataset's own format, keeping its layout (see the module docstring)."""
    name = target.lower().split("?")[0]
    if name.endswith((".parquet", ".pq")):
        return _parquet_bytes
    if name.endswith(".csv"):
        return _csv_bytes
    raise DataError(
        f"{target}: cannot rewrite this format; fix: keep the dataset as {', '.join(_WRITERS)} "
        "(convert it once with pandas, then append)"
    )


def _parquet_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, engine="pyarrow", index=not isinstance(table.index, pd.RangeIndex))
    return buffer.getvalue()


def _csv_bytes(table: pd.DataFrame) -> bytes:
    return table.to_csv(index=False, header=table.attrs.get(CSV_HEADER, True)).encode()
