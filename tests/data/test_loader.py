"""Every reader round-trips the same bars; gaps are filled per policy; the bundled file loads as documented."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from cryptorl.config import DEFAULT_DATA_PATH
from cryptorl.data import COLUMNS, LoadReport, dataset_name, load_ohlcv, load_ohlcv_with_report
from cryptorl.stages import source_ref


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """24 real bundled bars in canonical form (UTC ns index named timestamp, float64 OHLCV)."""
    raw = pd.read_parquet(DEFAULT_DATA_PATH).head(24)
    return raw.set_index(pd.DatetimeIndex(raw.pop("timestamp"), name="timestamp").as_unit("ns"))


def _epoch_ms(frame: pd.DataFrame) -> np.ndarray:
    return frame.index.as_unit("ms").asi8  # (T,)


def _binance_kline_csv(frame: pd.DataFrame, time_scale: int) -> str:
    """Headerless 12-column Binance kline rows; `time_scale` 1 for ms, 1000 for the µs of 2025+ files."""
    open_time = _epoch_ms(frame) * time_scale
    close_time = open_time + 3_600_000 * time_scale - 1
    rows = [f"{t},{r.open},{r.high},{r.low},{r.close},{r.volume},{c},1.0,10,0.5,0.5,0"
            for t, c, r in zip(open_time, close_time, frame.itertuples())]
    return "\n".join(rows) + "\n"


WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    "parquet-column": lambda f, p: f.reset_index().to_parquet(p.with_suffix(".parquet")),
    "parquet-index": lambda f, p: f.to_parquet(p.with_suffix(".pq")),
    "csv-iso": lambda f, p: f.reset_index().to_csv(p.with_suffix(".csv"), index=False),
    "csv-epoch-ms": lambda f, p: f.reset_index(drop=True).assign(open_time=_epoch_ms(f)).to_csv(
        p.with_suffix(".csv"), index=False),
    "csv-epoch-s-gz": lambda f, p: p.with_suffix(".csv.gz").write_bytes(gzip.compress(
        f.reset_index(drop=True).assign(date=_epoch_ms(f) // 1000).to_csv(index=False).encode())),
    "binance-ms": lambda f, p: p.with_suffix(".csv").write_text(_binance_kline_csv(f, 1)),
    "binance-us": lambda f, p: p.with_suffix(".csv").write_text(_binance_kline_csv(f, 1000)),
    "freqtrade-json": lambda f, p: p.with_suffix(".json").write_text(json.dumps(
        [[int(t), *row] for t, row in zip(_epoch_ms(f), f.to_numpy().tolist())])),
}


@pytest.mark.parametrize("layout", WRITERS)
def test_reader_round_trips(tmp_path: Path, bars: pd.DataFrame, layout: str) -> None:
    WRITERS[layout](bars, tmp_path / "bars")
    (path,) = tmp_path.iterdir()
    frame = load_ohlcv(path)
    pd.testing.assert_frame_equal(frame, bars, check_freq=False)


def test_mixed_ms_and_us_binance_months_concatenate(tmp_path: Path, bars: pd.DataFrame) -> None:
    path = tmp_path / "BTCUSDT-1h-2024-12_2025-01.csv"
    path.write_text(_binance_kline_csv(bars.iloc[:12], 1) + _binance_kline_csv(bars.iloc[12:], 1000))
    pd.testing.assert_frame_equal(load_ohlcv(path), bars, check_freq=False)


def test_memory_url_loads(bars: pd.DataFrame) -> None:
    url = "memory://cryptorl-tests/bars.parquet"
    with fsspec.open(url, "wb") as handle:
        bars.to_parquet(handle)
    try:
        pd.testing.assert_frame_equal(load_ohlcv(url), bars, check_freq=False)
    finally:
        fsspec.filesystem("memory").rm(url)


def test_short_gap_is_filled_with_flat_zero_volume_bars(tmp_path: Path, bars: pd.DataFrame) -> None:
    holed = bars.drop(bars.index[[5, 6, 7, 15]])  # two outages: 3 bars and 1 bar
    holed.to_parquet(tmp_path / "holed.parquet")
    frame, report = load_ohlcv_with_report(tmp_path / "holed.parquet", max_gap_fill_bars=3)
    assert (report.gaps_filled, report.bars_filled, report.rows) == (2, 4, len(bars))
    pd.testing.assert_index_equal(frame.index, bars.index)
    previous_close = bars["close"].iloc[4]
    for name in ("open", "high", "low", "close"):
        assert (frame[name].iloc[5:8] == previous_close).all()
    assert (frame["volume"].iloc[[5, 6, 7, 15]] == 0.0).all()
    pd.testing.assert_frame_equal(frame.drop(frame.index[[5, 6, 7, 15]]), holed)


def test_report_summary_is_one_line_with_singulars() -> None:
    report = LoadReport(source="x.csv", rows=1234, first=pd.Timestamp("2024-01-01", tz="UTC"),
                        last=pd.Timestamp("2024-02-21 09:00", tz="UTC"), gaps_filled=1, bars_filled=1,
                        zero_volume_bars=0)
    assert report.summary() == ("x.csv: 1,234 bars of 1h 2024-01-01 00:00 .. 2024-02-21 09:00 UTC, "
                                "1 gap filled (1 flat bar), 0 zero-volume bars")
    naive = dataclasses.replace(report, naive_timestamps=True, bar="4h")
    assert naive.summary().startswith("x.csv: 1,234 bars of 4h ") and naive.summary().endswith(
        "0 zero-volume bars; its timestamps carry no time zone and were read as UTC (convert local times to UTC first)")


def test_bundled_file_loads_with_its_28_outages_filled() -> None:
    before = sorted(DEFAULT_DATA_PATH.parent.iterdir())
    frame, report = load_ohlcv_with_report(DEFAULT_DATA_PATH)
    assert (report.rows, report.gaps_filled, report.bars_filled, report.zero_volume_bars) == (55_868, 28, 128, 4)
    assert report.summary() == (f"{DEFAULT_DATA_PATH}: 55,868 bars of 1h 2017-08-17 04:00 .. 2023-12-31 23:00 UTC, "
                                "28 gaps filled (128 flat bars), 4 zero-volume bars")
    assert list(frame.columns) == list(COLUMNS) and (frame.dtypes == np.float64).all()
    assert str(frame.index.dtype) == "datetime64[ns, UTC]" and frame.index.name == "timestamp"
    assert (np.diff(frame.index.asi8) == 3_600 * 10**9).all()
    assert len(frame) == len(load_ohlcv(DEFAULT_DATA_PATH, max_gap_fill_bars=33))
    assert sorted(DEFAULT_DATA_PATH.parent.iterdir()) == before  # the loader never writes


def test_the_cache_key_of_a_data_source_is_the_sha256_of_its_bytes_not_its_path(tmp_path: Path) -> None:
    """What every stage's cache key starts from (`split_segment` fingerprints `source_ref(...).sha256`)."""
    raw = DEFAULT_DATA_PATH.read_bytes()
    moved = tmp_path / "elsewhere" / "renamed.parquet"
    moved.parent.mkdir()
    moved.write_bytes(raw)
    assert source_ref(str(moved)).sha256 == source_ref(str(DEFAULT_DATA_PATH)).sha256 == hashlib.sha256(raw).hexdigest()
    assert source_ref(f"file://{moved}").sha256 == source_ref(str(moved)).sha256
    bars = pd.read_parquet(DEFAULT_DATA_PATH)
    bars.loc[17, "volume"] += 1e-9  # one value at the same path: a new key, so the stages recompute
    bars.to_parquet(moved)
    assert source_ref(str(moved)).sha256 != hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("source, name", [
    ("s3://bucket/prefix/BTCUSDT-1h.parquet.gz", "btcusdt-1h"),
    ("/data/BTCUSDT-1h.parquet", "btcusdt-1h"),
    ("https://host/ETH_USDT 4h.csv?token=x", "eth-usdt-4h"),
])
def test_dataset_name_is_the_stable_file_stem(source, name):
    assert dataset_name(source) == name
