"""`cryptorl data append`: overlapping bars must agree, new bars are merged, the rewrite is atomic."""

from __future__ import annotations

import pandas as pd
import pytest

import cryptorl.storage
from cli.main import main
from cryptorl.config import DEFAULT_DATA_PATH
from cryptorl.data import append_bars, load_ohlcv
from cryptorl.errors import DataError, StorageError


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return pd.read_parquet(DEFAULT_DATA_PATH).head(400)  # the stored layout: timestamp + OHLCV, RangeIndex


@pytest.fixture
def dataset(tmp_path, bars):
    path = tmp_path / "btc.parquet"
    bars.iloc[:300].to_parquet(path, index=False)
    return path


@pytest.fixture
def new_bars(tmp_path, bars):
    """Bars 250..399: 50 overlap the dataset, 100 are new."""
    path = tmp_path / "new.parquet"
    bars.iloc[250:].to_parquet(path, index=False)
    return path


def test_new_bars_are_appended_in_the_stored_layout(dataset, new_bars, bars):
    report = append_bars(str(new_bars), str(dataset))
    assert (report.added, report.overlapping, report.rows) == (100, 50, 400)
    stored = pd.read_parquet(dataset)
    assert list(stored.columns) == list(bars.columns) and isinstance(stored.index, pd.RangeIndex)
    pd.testing.assert_frame_equal(load_ohlcv(dataset), load_ohlcv(DEFAULT_DATA_PATH).iloc[:400], check_freq=False)


def test_summary_is_one_line_with_the_bars_added(dataset, new_bars):
    summary = append_bars(str(new_bars), str(dataset)).summary()
    assert "\n" not in summary
    assert "100 bars added (50 overlapping bars agree); now 400 bars 2017-08-17 04:00 .. " in summary


def test_a_conflicting_overlap_names_the_first_timestamp_and_writes_nothing(dataset, new_bars):
    frame = pd.read_parquet(new_bars)
    frame.loc[10, "close"] += 1.0  # bar 260 of the bundled data, inside the overlap
    frame.loc[20, "volume"] += 1.0
    frame.to_parquet(new_bars, index=False)
    before = dataset.read_bytes()
    stamp = f"{frame.loc[10, 'timestamp']:%Y-%m-%d %H:%M} UTC"
    new_close, stored_close = frame.loc[10, "close"], frame.loc[10, "close"] - 1.0
    with pytest.raises(DataError, match=rf"new.parquet: bar {stamp} conflicts with .*btc.parquet in column 'close' "
                                        rf"\({new_close:g} vs stored {stored_close:g}; 2 conflicting bars\); fix: "
                                        r"append only bars after"):  # plain numbers, not np.float64(...)
        append_bars(str(new_bars), str(dataset))
    assert dataset.read_bytes() == before


def test_nothing_new_leaves_the_file_untouched(dataset, bars, tmp_path):
    old = tmp_path / "old.parquet"
    bars.iloc[100:200].to_parquet(old, index=False)
    before = dataset.stat().st_mtime_ns, dataset.read_bytes()
    report = append_bars(str(old), str(dataset))
    assert report.added == 0 and "up to date, 0 bars added (100 overlapping bars agree)" in report.summary()
    assert (dataset.stat().st_mtime_ns, dataset.read_bytes()) == before  # same bytes: cache keys stay valid


def test_a_failed_write_leaves_the_old_dataset_and_no_temporary_file(dataset, new_bars, monkeypatch):
    def crash(*_):
        raise OSError("disk full")

    before = dataset.read_bytes()
    monkeypatch.setattr(cryptorl.storage.os, "replace", crash)
    with pytest.raises(StorageError, match="cannot write .*btc.parquet.*disk full"):
        append_bars(str(new_bars), str(dataset))
    assert dataset.read_bytes() == before
    assert sorted(p.name for p in dataset.parent.iterdir()) == ["btc.parquet", "new.parquet"]


def test_a_gap_longer_than_the_fill_limit_is_refused(dataset, bars, tmp_path):
    later = tmp_path / "later.parquet"
    bars.iloc[360:].to_parquet(later, index=False)  # 60 missing hours after the dataset's last bar
    with pytest.raises(DataError, match=r"gap of 60 missing bars .* exceeds data.max_gap_fill_bars=48"):
        append_bars(str(later), str(dataset))


def test_a_csv_dataset_is_rewritten_as_csv(tmp_path, bars, new_bars):
    target = tmp_path / "btc.csv"
    bars.iloc[:300].to_csv(target, index=False)
    assert append_bars(str(new_bars), str(target)).added == 100
    assert target.read_text().splitlines()[0] == "timestamp,open,high,low,close,volume"
    assert len(load_ohlcv(target)) == 400


def test_a_format_that_cannot_be_rewritten_is_refused_before_reading(tmp_path, new_bars):
    with pytest.raises(DataError, match=r"btc.json: cannot rewrite this format; fix: keep the dataset as .parquet"):
        append_bars(str(new_bars), str(tmp_path / "btc.json"))


def test_cli_prints_one_line_or_one_error(dataset, new_bars, capsys):
    assert main(["data", "append", str(new_bars), "--into", str(dataset)]) == 0
    assert capsys.readouterr().out.strip().count("\n") == 0
    assert main(["data", "append", str(dataset.parent / "absent.parquet"), "--into", str(dataset)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cryptorl: error: ") and "absent.parquet" in err and "\n" not in err
