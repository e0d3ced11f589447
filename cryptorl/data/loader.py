"""Read OHLCV files (parquet, CSV, Binance kline CSV, freqtrade JSON) from a path or fsspec URL.

The format comes from the extension (`.parquet`/`.pq`, `.csv`, `.json`), after an optional compression
suffix (`.csv.gz`, `.json.bz2`, ...) that fsspec decompresses. A CSV whose first cell is a number has
no header: with 12 columns it is a Binance kline dump (open_time first), with 6 it is timestamp, open,
high, low, close, volume. The loader only reads: it never writes, caches or repairs a file.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass

import fsspec
import pandas as pd
from fsspec.utils import infer_compression

from cryptorl.data.gaps import fill_gaps
from cryptorl.data.validation import NAIVE_TIMESTAMPS, parse_bar, validate_ohlcv
from cryptorl.errors import ConfigError, DataError

# https://github.com/binance/binance-public-data#klines: headerless, open_time in ms (µs from 2025).
BINANCE_KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
# freqtrade's `download-data` JSON rows, and headerless 6-column CSVs.
PLAIN_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".json": "json"}


@dataclass(frozen=True)
class LoadReport:
    """What the loader found and did; `summary()` is the line the CLI and the audit print."""

    source: str
    rows: int  # after gap filling
    first: pd.Timestamp
    last: pd.Timestamp
    gaps_filled: int
    bars_filled: int
    zero_volume_bars: int  # in the file itself; the filled bars are not counted
    bar: str = "1h"
    naive_timestamps: bool = False  # the times carried no zone and were read as UTC

    def summary(self) -> str:
        naive = (
            "; its timestamps carry no time zone and were read as UTC (convert local times to UTC first)"
            if self.naive_timestamps
            else ""
        )
        return (
            f"{self.source}: {self.rows:,} bars of {self.bar} {self.first:%Y-%m-%d %H:%M} .. "
            f"{self.last:%Y-%m-%d %H:%M} UTC, {_count(self.gaps_filled, 'gap')} filled "
            f"({_count(self.bars_filled, 'flat bar')}), {_count(self.zero_volume_bars, 'zero-volume bar')}{naive}"
        )


def load_ohlcv(path_or_url: str | os.PathLike[str], *, bar: str = "1h", max_gap_fill_bars: int = 48) -> pd.DataFrame:
    """The canonical, gap-filled OHLCV frame of a file (see `load_ohlcv_with_report`)."""
    return load_ohlcv_with_report(path_or_url, bar=bar, max_gap_fill_bars=max_gap_fill_bars)[0]


def load_ohlcv_with_report(
    path_or_url: str | os.PathLike[str], *, bar: str = "1h", max_gap_fill_bars: int = 48
) -> tuple[pd.DataFrame, LoadReport]:
    """Read, validate and gap-fill an OHLCV file; `DataError` with one line for anything wrong.

    Returns a frame indexed by a UTC `DatetimeIndex` named `timestamp`, float64 columns
    `open high low close volume`, sorted and on the `bar` grid, and a report of the filled gaps.
    """
    source = os.fspath(path_or_url)
    if max_gap_fill_bars < 0:
        raise ConfigError(
            f"invalid config data.max_gap_fill_bars={max_gap_fill_bars}: use 0 to refuse every gap, "
            "or a positive number of bars"
        )
    frame = validate_ohlcv(read_raw(source), source, bar=bar)
    filled = fill_gaps(frame, parse_bar(bar), max_gap_fill_bars, source)
    report = LoadReport(
        source=source,
        rows=len(filled.frame),
        first=filled.frame.index[0],
        last=filled.frame.index[-1],
        gaps_filled=filled.gaps,
        bars_filled=filled.bars,
        zero_volume_bars=int((frame["volume"] == 0).sum()),
        bar=bar,
        naive_timestamps=frame.attrs[NAIVE_TIMESTAMPS],
    )
    return filled.frame, report


def read_raw(source: str) -> pd.DataFrame:
    """The file's table as its reader returns it (not yet validated)."""
    return parse_raw(_read_bytes(source), source)


def parse_raw(raw: bytes, source: str) -> pd.DataFrame:
    """The table of a file's (decompressed) bytes, read by the reader of `source`'s format."""
    file_format = _format_of(source)
    if not raw.strip():
        raise DataError(f"{source}: the file is empty; fix: pass a file that holds OHLCV bars")
    try:
        return _READERS[file_format](raw)
    except DataError as exc:  # a reader's own complaint, which does not know the source
        raise DataError(f"{source}: {exc}") from None
    except (ValueError, OSError) as exc:  # pandas, pyarrow and json parse errors
        raise DataError(
            f"{source}: cannot parse as {file_format} ({_one_line(exc)}); "
            f"fix: check that the file is a valid {file_format} file"
        ) from None


def dataset_name(source: str | os.PathLike[str]) -> str:
    """A data source's stable name, e.g. `btcusdt-1h` for `s3://bucket/BTCUSDT-1h.parquet.gz`.

    The content of a dataset grows every week (`cryptorl data append`) but its name does not: trials
    and the champion registry are kept per name (`trials/<name>/`, `registry/<name>/`).
    """
    name = str(source).split("?")[0].rstrip("/").rsplit("/", 1)[-1].lower()
    if infer_compression(name) is not None:
        name = name.rsplit(".", 1)[0]
    stem = os.path.splitext(name)[0]
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-") or "dataset"


def _format_of(source: str) -> str:
    name = source.lower().split("?")[0]
    if infer_compression(name) is not None:
        name = name.rsplit(".", 1)[0]
    extension = os.path.splitext(name)[1]
    if extension not in _FORMATS:
        raise DataError(
            f"{source}: unknown data format {extension or '(no extension)'!r}; "
            "fix: use .parquet/.pq, .csv or .json (optionally compressed, e.g. .csv.gz)"
        )
    return _FORMATS[extension]


def _read_bytes(source: str) -> bytes:
    try:
        with fsspec.open(source, "rb", compression="infer") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        if exc.__cause__ is not None:  # fsspec's http says "not found" for a connection it could not open
            raise DataError(
                f"{source}: cannot connect ({_one_line(exc.__cause__)}); fix: check the URL and that "
                "its server is up and reachable"
            ) from None
        raise DataError(f"{source}: file not found; fix: check the path or URL") from None
    except Exception as exc:
        # Any backend's failure (permissions, network, S3 credentials, unknown protocol) means the same here.
        raise DataError(
            f"{source}: cannot read ({_one_line(exc)}); fix: check the path or URL and your access to it"
        ) from None


def _read_parquet(raw: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(raw))


CSV_HEADER = "csv_header"  # attrs key of a CSV table: whether the file had a header row (append keeps it so)


def _read_csv(raw: bytes) -> pd.DataFrame:
    first_line = raw.lstrip().split(b"\n", 1)[0]
    if b";" in first_line and b"," not in first_line:
        raise DataError(
            "its columns are separated by ';', not ','; fix: save the file comma-separated "
            "(e.g. pandas.read_csv(path, sep=';').to_csv(path, index=False))"
        )
    if not first_line.split(b",", 1)[0].strip().isdigit():
        table = pd.read_csv(io.BytesIO(raw))
        table.attrs[CSV_HEADER] = True
        return table
    table = pd.read_csv(io.BytesIO(raw), header=None)
    layouts = {len(BINANCE_KLINE_COLUMNS): BINANCE_KLINE_COLUMNS, len(PLAIN_COLUMNS): PLAIN_COLUMNS}
    if table.shape[1] not in layouts:
        raise DataError(
            f"no header row and {table.shape[1]} columns; fix: add a header row "
            f"({', '.join(PLAIN_COLUMNS)}) or use Binance's 12-column kline layout"
        )
    table = table.set_axis(list(layouts[table.shape[1]]), axis=1)
    table.attrs[CSV_HEADER] = False
    return table


def _read_json(raw: bytes) -> pd.DataFrame:
    rows = json.loads(raw)
    if not isinstance(rows, list):
        raise DataError(
            "JSON is not a list of bars; fix: use freqtrade's format, "
            "a list of [epoch_ms, open, high, low, close, volume]"
        )
    return pd.DataFrame(rows, columns=list(PLAIN_COLUMNS) if rows and isinstance(rows[0], list) else None)


_READERS = {"parquet": _read_parquet, "csv": _read_csv, "json": _read_json}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
