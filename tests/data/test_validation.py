"""Each validation rule refuses bad input with one line naming the file, row, timestamp, column and fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptorl.data import COLUMNS, load_ohlcv, validate_ohlcv
from cryptorl.errors import ConfigError, DataError

GOOD_CSV = """timestamp,open,high,low,close,volume
2024-01-01 00:00,100,110,90,105,1.5
2024-01-01 01:00,105,120,100,115,2.0
2024-01-01 02:00,115,118,95,96,0.0
2024-01-01 03:00,96,99,94,98,3.25
"""


def _write(tmp_path: Path, text: str, name: str = "bars.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _edit(row: int, field: str, value: str) -> str:
    """GOOD_CSV with one field of data row `row` (from 1) replaced."""
    lines = GOOD_CSV.splitlines()
    cells = lines[row].split(",")
    cells[lines[0].split(",").index(field)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def test_good_csv_is_accepted_unchanged(tmp_path: Path) -> None:
    frame = load_ohlcv(_write(tmp_path, GOOD_CSV))
    assert list(frame.columns) == list(COLUMNS)
    assert frame["close"].tolist() == [105.0, 115.0, 96.0, 98.0]
    assert frame.index[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param(_edit(2, "close", "abc"),
                     r"bars\.csv: non-numeric value 'abc' in column 'close' at row 2 \(2024-01-01 01:00 UTC\); "
                     r"fix: write plain numbers",
                     id="non-numeric"),
        pytest.param(_edit(3, "volume", ""),
                     r"missing \(NaN\) value in column 'volume' at row 3 \(2024-01-01 02:00 UTC\); "
                     r"fix: correct or drop",
                     id="nan"),
        pytest.param(_edit(1, "high", "inf"), r"infinite value in column 'high' at row 1 ", id="inf"),
        pytest.param(_edit(3, "timestamp", "2024-01-01 01:00"),
                     r"duplicate timestamp \(also at row 2\) at row 3 \(2024-01-01 01:00 UTC\); fix: keep one bar",
                     id="duplicate"),
        pytest.param(_edit(2, "timestamp", "2023-12-31 23:00"),
                     r"timestamp earlier than row 1 \(2024-01-01 00:00 UTC\) at row 2 \(2023-12-31 23:00 UTC\); "
                     r"fix: sort the file", id="unsorted"),
        pytest.param(_edit(4, "timestamp", "2024-01-01 03:30"),
                     r"timestamp off the 1h bar grid at row 4 \(2024-01-01 03:30 UTC\); fix: .*set data\.bar",
                     id="off-grid"),
        pytest.param(_edit(4, "timestamp", "2024-01-01 03:00:01"),
                     r"off the 1h bar grid at row 4 \(2024-01-01 03:00:01 UTC\)", id="off-grid-by-a-second"),
        pytest.param(_edit(2, "timestamp", "next tuesday"),
                     r"unreadable timestamp 'next tuesday' in column 'timestamp' at row 2; "
                     r"fix: write bar-open times as ISO",
                     id="bad-timestamp"),
        pytest.param(_edit(2, "low", "0"), r"non-positive price 0 in column 'low' at row 2 ", id="zero-price"),
        pytest.param(_edit(1, "open", "-3"), r"non-positive price -3 in column 'open' at row 1 ", id="negative-price"),
        pytest.param(_edit(4, "volume", "-1"), r"negative volume -1 in column 'volume' at row 4 ",
                     id="negative-volume"),
        pytest.param(_edit(2, "high", "99"), r"high 99 < low 100 in columns 'high'/'low' at row 2 ",
                     id="high-below-low"),
        pytest.param(_edit(1, "open", "111"), r"open 111 outside \[low 90, high 110\] in column 'open' at row 1 ",
                     id="open-outside-range"),
        pytest.param(_edit(3, "close", "94"), r"close 94 outside \[low 95, high 118\] in column 'close' at row 3 ",
                     id="close-outside-range"),
    ],
)
def test_row_rule_names_file_row_timestamp_column_and_fix(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as caught:
        load_ohlcv(_write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_bad_rows_are_counted(tmp_path: Path) -> None:
    text = GOOD_CSV.replace(",1.5\n", ",-1\n").replace(",3.25\n", ",-2\n")
    with pytest.raises(DataError, match=r"negative volume -1 .* at row 1 \(2024-01-01 00:00 UTC\), 2 rows in all"):
        load_ohlcv(_write(tmp_path, text))


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("volume", "vol")
    with pytest.raises(DataError, match=r"missing column\(s\) volume \(found: timestamp, open, high, low, close, "
                                        r"vol\); fix: name the columns open, high, low, close, volume"):
        load_ohlcv(_write(tmp_path, text))


def test_missing_timestamp_column(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("timestamp", "when")
    with pytest.raises(DataError, match=r"missing timestamp column \(found: when, .*\); fix: .*one of timestamp, date"):
        load_ohlcv(_write(tmp_path, text))


def test_column_names_match_case_insensitively(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("timestamp,open,high,low,close,volume", "Date, Open,HIGH,Low,Close,Volume")
    frame = load_ohlcv(_write(tmp_path, text))
    assert list(frame.columns) == list(COLUMNS)
    assert frame["high"].iloc[1] == 120.0


def test_columns_that_collide_case_insensitively_are_refused(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("timestamp,open,high,low,close,volume", "timestamp,open,high,low,close,volume,Close")
    text = text.replace("\n2024", ",1\n2024").rstrip("\n") + ",1\n"
    with pytest.raises(DataError, match=r"columns 'close' and 'Close' both read as 'close'; fix: keep only one"):
        load_ohlcv(_write(tmp_path, text))


def test_empty_file_and_header_only_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty; fix:"):
        load_ohlcv(_write(tmp_path, "", "empty.csv"))
    with pytest.raises(DataError, match=r"header\.csv: no rows; fix:"):
        load_ohlcv(_write(tmp_path, GOOD_CSV.splitlines()[0] + "\n", "header.csv"))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.parquet: file not found; fix: check the path or URL"):
        load_ohlcv(tmp_path / "nope.parquet")


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bars\.txt: unknown data format '\.txt'; "
                                        r"fix: use \.parquet/\.pq, \.csv or \.json"):
        load_ohlcv(_write(tmp_path, GOOD_CSV, "bars.txt"))


def test_corrupt_parquet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bad\.parquet: cannot parse as parquet \(.+\); fix: check that the file is"):
        load_ohlcv(_write(tmp_path, "this is not parquet", "bad.parquet"))


def test_json_that_is_not_a_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bars\.json: JSON is not a list of bars; fix: use freqtrade's format"):
        load_ohlcv(_write(tmp_path, '{"open": 1}', "bars.json"))


def test_headerless_csv_of_unknown_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no header row and 3 columns; fix: add a header row"):
        load_ohlcv(_write(tmp_path, "1704067200000,1,2\n1704070800000,1,2\n"))


def test_gap_longer_than_the_limit_names_its_span_and_the_fix(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("2024-01-01 03:00", "2024-01-01 07:00")  # bars 03:00..06:00 missing
    with pytest.raises(DataError, match=r"gap of 4 missing bars \(2024-01-01 03:00 UTC \.\. 2024-01-01 06:00 UTC\) "
                                        r"exceeds data\.max_gap_fill_bars=3; fix: raise data\.max_gap_fill_bars to 4 "
                                        r"or more, or use data that starts at 2024-01-01 07:00 UTC or later"):
        load_ohlcv(_write(tmp_path, text), max_gap_fill_bars=3)


def test_zero_gap_limit_refuses_every_gap(tmp_path: Path) -> None:
    text = GOOD_CSV.replace("2024-01-01 03:00", "2024-01-01 04:00")
    with pytest.raises(DataError, match=r"gap of 1 missing bars .* exceeds data\.max_gap_fill_bars=0"):
        load_ohlcv(_write(tmp_path, text), max_gap_fill_bars=0)


def test_invalid_bar_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid config data\.bar='fortnightly': use a positive fixed duration"):
        load_ohlcv(_write(tmp_path, GOOD_CSV), bar="fortnightly")


def test_naive_timestamps_are_utc_and_aware_ones_are_converted() -> None:
    naive = pd.DataFrame({"timestamp": ["2024-01-01 00:00"], "open": [1.0], "high": [1.0], "low": [1.0],
                          "close": [1.0], "volume": [0.0]})
    aware = naive.assign(timestamp=["2024-01-01T02:00+02:00"])
    expected = pd.Timestamp("2024-01-01 00:00", tz="UTC")
    assert validate_ohlcv(naive, "naive").index[0] == expected
    assert validate_ohlcv(aware, "aware").index[0] == expected
    paris = naive.drop(columns="timestamp").set_index(pd.DatetimeIndex(["2024-01-01 01:00"]).tz_localize("Europe/Paris"))
    assert validate_ohlcv(paris, "paris").index[0] == expected


def test_validate_is_idempotent_and_drops_extra_columns() -> None:
    raw = pd.DataFrame({"Open_Time": [1704067200000, 1704070800000], "open": [1, 2], "high": [2, 3], "low": [1, 2],
                        "close": [2, 3], "volume": [5, 6], "trades": [10, 11]})
    frame = validate_ohlcv(raw, "raw")
    assert list(frame.columns) == list(COLUMNS)
    assert (frame.dtypes == np.float64).all()
    assert frame.index.name == "timestamp" and str(frame.index.dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(validate_ohlcv(frame, "again"), frame)
