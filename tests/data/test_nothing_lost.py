"""Nothing invented, nothing lost: the bar size is checked on load, and `data append` keeps every column, the
file's layout and mode, refuses history, and survives concurrent appends."""

from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd
import pytest

from cli.main import main
from cryptorl.config import DEFAULT_DATA_PATH
from cryptorl.data import append_bars, load_ohlcv, load_ohlcv_with_report, resample_ohlcv
from cryptorl.data.loader import BINANCE_KLINE_COLUMNS
from cryptorl.errors import ConfigError, DataError

HOUR = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    return load_ohlcv(DEFAULT_DATA_PATH).iloc[:3000]


@pytest.mark.parametrize("timeframe, alias", [(4 * HOUR, "4h"), (24 * HOUR, "1D")])
def test_a_coarser_file_read_as_hourly_is_refused_not_filled(hourly, tmp_path, timeframe, alias):
    path = tmp_path / f"btc-{alias}.parquet"
    coarse = resample_ohlcv(hourly, HOUR, timeframe, "test")
    coarse.reset_index().to_parquet(path, index=False)
    with pytest.raises(DataError, match=rf"btc-{alias}.parquet: its bars are {alias} apart \({len(coarse) - 1:,} of "
                                        rf"{len(coarse) - 1:,} steps\), not data.bar=1h; fix: read it as {alias} bars"):
        load_ohlcv(path)
    assert len(load_ohlcv(path, bar=alias)) == len(coarse)  # read as what it is, it loads with nothing invented


def test_an_hourly_file_with_outages_is_still_hourly(hourly, tmp_path):
    path = tmp_path / "holed.parquet"
    hourly.drop(hourly.index[100:140]).reset_index().to_parquet(path, index=False)
    frame, report = load_ohlcv_with_report(path)
    assert report.gaps_filled == 1 and report.bars_filled == 40 and len(frame) == len(hourly)


def test_naive_timestamps_are_read_as_utc_and_said_so(hourly, tmp_path):
    path = tmp_path / "local.csv"
    hourly.iloc[:100].reset_index().assign(timestamp=lambda f: f.timestamp.dt.tz_localize(None)).to_csv(path, index=False)
    _, report = load_ohlcv_with_report(path)
    assert report.naive_timestamps and "read as UTC" in report.summary()
    path_utc = tmp_path / "utc.csv"
    hourly.iloc[:100].reset_index().to_csv(path_utc, index=False)
    assert not load_ohlcv_with_report(path_utc)[1].naive_timestamps


def test_validate_refuses_a_negative_gap_limit_and_reads_the_bar_size(hourly, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"invalid config data.max_gap_fill_bars=-5: use 0"):
        load_ohlcv(DEFAULT_DATA_PATH, max_gap_fill_bars=-5)
    with pytest.raises(SystemExit):
        main(["data", "validate", str(DEFAULT_DATA_PATH), "--max-gap-fill-bars", "-5"])
    assert "'-5' is not a whole number >= 0" in capsys.readouterr().err
    path = tmp_path / "btc-4h.parquet"
    resample_ohlcv(hourly, HOUR, 4 * HOUR, "t").reset_index().to_parquet(path, index=False)
    assert main(["data", "validate", str(path), "--bar", "4h"]) == 0 and " bars of 4h " in capsys.readouterr().out


def test_a_semicolon_csv_is_told_about_its_separator(hourly, tmp_path):
    path = tmp_path / "semi.csv"
    hourly.iloc[:10].reset_index().to_csv(path, index=False, sep=";")
    with pytest.raises(DataError, match=r"semi.csv: its columns are separated by ';', not ','; fix: save the file "
                                        "comma-separated"):
        load_ohlcv(path)


# -- data append ---------------------------------------------------------------------------------------------

@pytest.fixture
def rich(hourly, tmp_path):
    """A parquet dataset with extra columns (trades, quote_volume), and the next 50 bars with them too."""
    table = hourly.reset_index().assign(trades=np.arange(len(hourly)), quote_volume=hourly["volume"].to_numpy() * 7)
    dataset, new = tmp_path / "rich.parquet", tmp_path / "rich-new.parquet"
    table.iloc[:200].to_parquet(dataset, index=False)
    table.iloc[180:250].to_parquet(new, index=False)
    return dataset, new, table


def test_append_keeps_every_column_and_its_types(rich):
    dataset, new, table = rich
    assert append_bars(str(new), str(dataset)).added == 50
    pd.testing.assert_frame_equal(pd.read_parquet(dataset), table.iloc[:250].reset_index(drop=True))


def test_columns_the_new_bars_lack_or_add_are_refused_unless_asked(rich, tmp_path):
    dataset, new, table = rich
    lacking = tmp_path / "lacking.parquet"
    table.drop(columns="trades").iloc[200:220].to_parquet(lacking, index=False)
    with pytest.raises(DataError, match=r"lacking.parquet: lacks column\(s\) trades that .*rich.parquet has"):
        append_bars(str(lacking), str(dataset))
    adding = tmp_path / "adding.parquet"
    table.assign(taker=1.5).iloc[200:220].to_parquet(adding, index=False)
    with pytest.raises(DataError, match=r"adding.parquet: has column\(s\) taker that .*lacks; fix: drop them, or "
                                        r"pass --new-columns"):
        append_bars(str(adding), str(dataset))
    report = append_bars(str(adding), str(dataset), new_columns=True)
    stored = pd.read_parquet(dataset)
    assert report.new_columns == ("taker",) and stored["taker"].isna().sum() == 200 and (stored["taker"][200:] == 1.5).all()


def test_a_binance_kline_csv_stays_headerless_with_its_twelve_columns(hourly, tmp_path):
    ms = hourly.index.asi8 // 10**6
    klines = pd.DataFrame({"open_time": ms, **{c: hourly[c].to_numpy() for c in ("open", "high", "low", "close",
                                                                                  "volume")},
                           "close_time": ms + 3_599_999, "quote_volume": hourly["volume"].to_numpy() * 3,
                           "count": np.arange(len(hourly)), "taker_buy_volume": 1.0, "taker_buy_quote_volume": 2.0,
                           "ignore": 0})[list(BINANCE_KLINE_COLUMNS)]
    dataset, new = tmp_path / "BTCUSDT-1h.csv", tmp_path / "BTCUSDT-1h-next.csv"
    klines.iloc[:100].to_csv(dataset, index=False, header=False)
    klines.iloc[100:130].to_csv(new, index=False, header=False)
    assert append_bars(str(new), str(dataset)).added == 30
    expected = tmp_path / "expected.csv"
    klines.iloc[:130].to_csv(expected, index=False, header=False)
    assert dataset.read_text() == expected.read_text()  # no header gained, no column lost, same formatting


def test_text_and_datetime_timestamps_are_written_the_dataset_s_way(hourly, tmp_path):
    table = hourly.reset_index()
    for name, stamps in (("text.csv", table.timestamp.dt.strftime("%Y-%m-%d %H:%M:%S")),
                         ("zoned.parquet", table.timestamp.dt.tz_convert("Europe/Berlin"))):
        dataset = tmp_path / name
        new = tmp_path / "new.parquet"
        writer = (lambda f, p: f.to_csv(p, index=False)) if name.endswith(".csv") else (
            lambda f, p: f.to_parquet(p, index=False))
        writer(table.assign(timestamp=stamps).iloc[:100], dataset)
        table.iloc[100:120].to_parquet(new, index=False)  # UTC datetimes
        append_bars(str(new), str(dataset))
        expected = tmp_path / f"expected-{name}"
        writer(table.assign(timestamp=stamps).iloc[:120], expected)
        assert dataset.read_bytes() == expected.read_bytes(), name


def test_older_bars_are_refused_not_prepended(hourly, tmp_path):
    dataset, older = tmp_path / "d.parquet", tmp_path / "older.parquet"
    hourly.iloc[100:200].reset_index().to_parquet(dataset, index=False)
    hourly.iloc[50:150].reset_index().to_parquet(older, index=False)
    before = dataset.read_bytes()
    with pytest.raises(DataError, match=r"older.parquet: 50 bar\(s\) from \S+ \S+ UTC are older than .*d.parquet's "
                                        r"last bar .* and not in it; fix: append only bars after it"):
        append_bars(str(older), str(dataset))
    assert dataset.read_bytes() == before


def test_append_keeps_the_file_mode(hourly, tmp_path):
    dataset, new = tmp_path / "shared.parquet", tmp_path / "new.parquet"
    hourly.iloc[:100].reset_index().to_parquet(dataset, index=False)
    hourly.iloc[100:110].reset_index().to_parquet(new, index=False)
    os.chmod(dataset, 0o644)
    append_bars(str(new), str(dataset))
    assert oct(dataset.stat().st_mode & 0o777) == "0o644"


def test_two_appends_at_once_lose_nothing(hourly, tmp_path):
    """Each round: two threads append two different later batches at once; the dataset ends with all bars."""
    table = hourly.reset_index()
    for round_ in range(20):
        dataset = tmp_path / f"race-{round_}.parquet"
        table.iloc[:1000].to_parquet(dataset, index=False)
        batches = [tmp_path / f"batch-{round_}-{k}.parquet" for k in (0, 1)]
        table.iloc[1000:1100].to_parquet(batches[0], index=False)
        table.iloc[1000:1200].to_parquet(batches[1], index=False)  # overlaps the first batch, agreeing
        start, reports = threading.Barrier(2), []

        def append(batch):
            start.wait()
            reports.append(append_bars(str(batch), str(dataset)))

        threads = [threading.Thread(target=append, args=(batch,)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(pd.read_parquet(dataset)) == 1200, round_
        assert sorted(report.added for report in reports) in ([0, 200], [100, 100])  # whoever went first


def test_a_refused_http_connection_is_not_a_missing_file():
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError, match=rf"http://127.0.0.1:{port}/btc.csv: cannot connect \(.*\); fix: check the "
                                        "URL and that its server is up"):
        load_ohlcv(f"http://127.0.0.1:{port}/btc.csv")
