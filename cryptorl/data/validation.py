"""Normalise a raw OHLCV table into the canonical frame, refusing anything inconsistent.

The canonical frame is what every later stage (features, HMM, environments, cache keys) relies on: a
UTC `DatetimeIndex` named `timestamp` (nanosecond unit), strictly increasing, on the `bar` grid, and
float64 columns exactly `open high low close volume` with finite, positive prices, non-negative volume
and `low <= open, close <= high`.

Nothing is repaired silently except spelling: column names match case-insensitively, tz-aware timestamps
are converted to UTC, naive ones are taken as UTC (and the frame says so: `NAIVE_TIMESTAMPS` in its
`attrs`, which the load report prints, since local times would be shifted), and epoch numbers are read as
seconds, milliseconds, microseconds or nanoseconds by their magnitude (per value, because Binance switched
its spot klines from ms to µs in 2025, so a concatenation of monthly files mixes both).

The bar size is a fact of the data: the most common step between consecutive timestamps must be `bar`. A
4-hour or daily file read as hourly would otherwise pass the grid check and have most of its bars invented by
the gap filling. Every other problem raises `DataError` with one line: the file, the first offending row
(counted from 1 in file order, a CSV header not counted) and its timestamp, the column, how many rows share
the problem, and the fix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cryptorl.errors import ConfigError, DataError

COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = COLUMNS[:4]
# Accepted names of the bar-open time column, in order of preference.
TIMESTAMP_COLUMNS = ("timestamp", "date", "datetime", "time", "open_time")

NAIVE_TIMESTAMPS = "naive_timestamps"  # attrs key: the file's times carried no zone and were read as UTC
_NS_PER_EPOCH_UNIT = (10**9, 10**6, 10**3, 1)  # s, ms, µs, ns
_EPOCH_UNIT_LIMITS = (1e11, 1e14, 1e17)  # below 1e11 seconds is before year 5138, likewise for each unit
_FIX_ROW = "correct or drop that bar upstream; the loader never guesses prices"


def parse_bar(bar: str) -> pd.Timedelta:
    """The bar duration of `bar` (a pandas offset alias such as "1h", "15min", "1D")."""
    try:
        duration = pd.Timedelta(bar)
    except ValueError:
        duration = pd.NaT
    if pd.isna(duration) or duration <= pd.Timedelta(0):
        raise ConfigError(
            f"invalid config data.bar={bar!r}: use a positive fixed duration such as '1h', '15min' or '1D'"
        )
    return duration


def format_timestamp(ts: pd.Timestamp) -> str:
    """'2017-08-17 04:00 UTC'; seconds and fractions only when present (they matter in grid errors)."""
    text = str(ts.tz_convert("UTC").tz_localize(None))
    return (text[:-3] if len(text) == 19 and text.endswith(":00") else text) + " UTC"


def validate_ohlcv(frame: pd.DataFrame, source: str, *, bar: str = "1h") -> pd.DataFrame:
    """The canonical OHLCV frame of a raw table (see the module docstring), or `DataError` naming the problem.

    `frame` may carry its timestamps in a column (any name of `TIMESTAMP_COLUMNS`, any case) or as a
    `DatetimeIndex`; extra columns are dropped. Rows are never reordered, dropped or invented here.
    """
    bar_duration = parse_bar(bar)  # a bad config fails before the data is judged
    if len(frame) == 0:
        raise DataError(f"{source}: no rows; fix: pass a file that holds OHLCV bars")
    stamps_raw, columns = _locate_columns(frame, source)
    stamps = _parse_timestamps(stamps_raw, source)
    values = {name: _numeric_column(frame[columns[name]], name, source, stamps) for name in COLUMNS}  # each (T,)
    _check_time_order(stamps, source, bar_duration, bar)
    _check_bar_size(stamps, source, bar_duration, bar)
    _check_prices(values, source, stamps)
    canonical = pd.DataFrame(values, index=pd.DatetimeIndex(stamps, name="timestamp"))
    canonical.attrs[NAIVE_TIMESTAMPS] = _naive(stamps_raw)
    return canonical


def timestamp_column(frame: pd.DataFrame) -> str | None:
    """The frame's own name of its bar-open time column (any name of TIMESTAMP_COLUMNS, any case); None when
    the times are its DatetimeIndex."""
    by_lower = {str(name).strip().lower(): str(name) for name in frame.columns}
    return next((by_lower[name] for name in TIMESTAMP_COLUMNS if name in by_lower), None)


def epoch_unit_ns(value: float) -> int:
    """Nanoseconds per unit of an epoch number, by its magnitude (s, ms, µs or ns)."""
    return int(
        np.select([abs(value) < limit for limit in _EPOCH_UNIT_LIMITS], _NS_PER_EPOCH_UNIT[:-1], _NS_PER_EPOCH_UNIT[-1])
    )


def _locate_columns(frame: pd.DataFrame, source: str) -> tuple[pd.Series, dict[str, str]]:
    """The raw timestamps and the frame's own name of each OHLCV column, matched case-insensitively."""
    by_lower: dict[str, str] = {}
    for name in map(str, frame.columns):
        key = name.strip().lower()
        if key in by_lower:
            raise DataError(
                f"{source}: columns {by_lower[key]!r} and {name!r} both read as {key!r}; fix: keep only one of them"
            )
        by_lower[key] = name
    found = ", ".join(map(str, frame.columns)) or "none"
    missing = [name for name in COLUMNS if name not in by_lower]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} (found: {found}); "
            f"fix: name the columns {', '.join(COLUMNS)} (any case)"
        )
    stamp_name = next((by_lower[name] for name in TIMESTAMP_COLUMNS if name in by_lower), None)
    if stamp_name is not None:
        stamps = frame[stamp_name]
    elif isinstance(frame.index, pd.DatetimeIndex):
        stamps = frame.index.to_series(index=frame.index)
    else:
        raise DataError(
            f"{source}: missing timestamp column (found: {found}); "
            f"fix: name the bar-open time column one of {', '.join(TIMESTAMP_COLUMNS)}"
        )
    return stamps, {name: by_lower[name] for name in COLUMNS}


def _parse_timestamps(raw: pd.Series, source: str) -> pd.DatetimeIndex:
    """UTC nanosecond bar-open times; epoch numbers or date strings/datetimes (naive means UTC)."""
    numeric = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_datetime64_any_dtype(raw) else None
    if numeric is not None and numeric.notna().all():
        stamps = pd.DatetimeIndex(_epoch_to_ns(numeric.to_numpy()), tz="UTC")
    else:
        stamps = pd.DatetimeIndex(pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce"))
    _require_rows(
        np.asarray(stamps.isna()),
        source,
        None,
        lambda row: f"unreadable timestamp {raw.iloc[row]!r} in column '{raw.name}'",
        "write bar-open times as ISO 8601 (2024-01-31 13:00) or epoch s/ms",
    )
    return stamps.as_unit("ns")


def _epoch_to_ns(epoch: np.ndarray) -> np.ndarray:
    """Epoch numbers in s/ms/µs/ns (chosen per value by magnitude) as int64 nanoseconds."""
    ns_per_unit = np.select(
        [np.abs(epoch) < limit for limit in _EPOCH_UNIT_LIMITS], _NS_PER_EPOCH_UNIT[:-1], _NS_PER_EPOCH_UNIT[-1]
    )
    if np.issubdtype(epoch.dtype, np.integer):
        return epoch.astype(np.int64) * ns_per_unit  # exact; float64 would round ns epochs
    return np.rint(epoch * ns_per_unit).astype(np.int64)


def _numeric_column(raw: pd.Series, name: str, source: str, stamps: pd.DatetimeIndex) -> np.ndarray:
    """A float64 column, refusing text that is not a number and NaN/inf values."""
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)  # (T,)
    _require_rows(
        np.isnan(values) & raw.notna().to_numpy(),
        source,
        stamps,
        lambda row: f"non-numeric value {raw.iloc[row]!r} in column '{name}'",
        "write plain numbers such as 4261.48 (no units, thousands separators or text)",
    )
    _require_rows(
        ~np.isfinite(values),
        source,
        stamps,
        lambda row: f"{'missing (NaN)' if np.isnan(values[row]) else 'infinite'} value in column '{name}'",
        _FIX_ROW,
    )
    return values


def _check_time_order(stamps: pd.DatetimeIndex, source: str, bar_duration: pd.Timedelta, bar: str) -> None:
    """Unique, strictly increasing, on the grid of multiples of `bar` since 1970-01-01 00:00 UTC."""
    _require_rows(
        np.asarray(stamps.duplicated()),
        source,
        stamps,
        lambda row: f"duplicate timestamp (also at row {np.argmax(stamps == stamps[row]) + 1})",
        "keep one bar per timestamp (e.g. drop_duplicates on the timestamp column upstream)",
    )
    epoch_ns = stamps.asi8  # (T,)
    earlier = np.concatenate([[False], epoch_ns[1:] < epoch_ns[:-1]])
    _require_rows(
        earlier,
        source,
        stamps,
        lambda row: f"timestamp earlier than row {row} ({format_timestamp(stamps[row - 1])})",
        "sort the file by timestamp (the loader does not reorder bars)",
    )
    _require_rows(
        epoch_ns % bar_duration.value != 0,
        source,
        stamps,
        lambda row: f"timestamp off the {bar} bar grid",
        f"use bar-open times on the {bar} grid (multiples of {bar} since 1970-01-01 UTC) "
        "or set data.bar to the file's bar",
    )


def _check_bar_size(stamps: pd.DatetimeIndex, source: str, bar_duration: pd.Timedelta, bar: str) -> None:
    """The most common step between consecutive bars is `bar`: gaps are outages, never the bar size."""
    steps, counts = np.unique(np.diff(stamps.asi8), return_counts=True)
    if steps.size == 0 or steps[np.argmax(counts)] == bar_duration.value:
        return
    typical = pd.Timedelta(int(steps[np.argmax(counts)]))
    raise DataError(
        f"{source}: its bars are {duration_alias(typical)} apart ({counts.max():,} of {counts.sum():,} "
        f"steps), not data.bar={bar}; fix: read it as {duration_alias(typical)} bars (--set data.bar="
        f"{duration_alias(typical)}, and data.timeframe), or pass a file of {bar} bars"
    )


def duration_alias(duration: pd.Timedelta) -> str:
    """'15min', '1h', '4h', '1D': the shortest alias that states `duration` exactly."""
    for unit, alias in ((pd.Timedelta(days=1), "D"), (pd.Timedelta(hours=1), "h"), (pd.Timedelta(minutes=1), "min")):
        if duration % unit == pd.Timedelta(0):
            return f"{duration // unit}{alias}"
    return f"{duration.total_seconds():g}s"


def _naive(raw: pd.Series) -> bool:
    """True when the timestamps are datetimes or text without a time zone (epoch numbers are UTC by definition)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return getattr(raw.dtype, "tz", None) is None
    if pd.to_numeric(raw, errors="coerce").notna().all():
        return False
    return pd.to_datetime(raw.iloc[:1], format="ISO8601").dt.tz is None


def _check_prices(values: dict[str, np.ndarray], source: str, stamps: pd.DatetimeIndex) -> None:
    """Positive prices, non-negative volume, and each bar's open and close inside its [low, high]."""
    for name in PRICE_COLUMNS:
        _require_rows(
            values[name] <= 0,
            source,
            stamps,
            _describe_row("non-positive price {value:g} in column '{name}'", values[name], name),
            _FIX_ROW,
        )
    _require_rows(
        values["volume"] < 0,
        source,
        stamps,
        lambda row: f"negative volume {values['volume'][row]:g} in column 'volume'",
        _FIX_ROW,
    )
    low, high = values["low"], values["high"]
    _require_rows(
        high < low,
        source,
        stamps,
        lambda row: f"high {high[row]:g} < low {low[row]:g} in columns 'high'/'low'",
        _FIX_ROW,
    )
    for name in ("open", "close"):
        _require_rows(
            (values[name] < low) | (values[name] > high),
            source,
            stamps,
            _describe_row(
                "{name} {value:g} outside [low {low:g}, high {high:g}] in column '{name}'",
                values[name],
                name,
                low,
                high,
            ),
            _FIX_ROW,
        )


def _describe_row(
    template: str, column: np.ndarray, name: str, low: np.ndarray | None = None, high: np.ndarray | None = None
) -> Callable[[int], str]:
    """How a bad row of `column` reads: `template` with the row's value (and its bar's low and high)."""

    def describe(row: int) -> str:
        bounds = {} if low is None or high is None else {"low": low[row], "high": high[row]}
        return template.format(value=column[row], name=name, **bounds)

    return describe


def _require_rows(
    bad: np.ndarray, source: str, stamps: pd.DatetimeIndex | None, describe: Callable[[int], str], fix: str
) -> None:
    """Raise `DataError` naming the first row where `bad` is True and how many rows are bad."""
    rows = np.flatnonzero(bad)
    if rows.size == 0:
        return
    row = int(rows[0])
    when = f" ({format_timestamp(stamps[row])})" if stamps is not None else ""
    count = f", {rows.size:,} rows in all" if rows.size > 1 else ""
    raise DataError(f"{source}: {describe(row)} at row {row + 1}{when}{count}; fix: {fix}")
