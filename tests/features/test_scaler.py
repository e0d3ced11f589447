"""RobustScaler: train-only statistics, clipping, NaN pass-through, round-trip, fingerprint, row-wise transform."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from cryptorl.errors import CheckpointError, DataError
from cryptorl.features import RobustScaler, check_truncation_invariance


@pytest.fixture
def frame() -> pd.DataFrame:
    """1,000 rows of fat-tailed columns with different scales and a few NaN."""
    rng = np.random.default_rng(7)
    index = pd.date_range("2020-01-01", periods=1_000, freq="1h", tz="UTC", name="timestamp")
    data = pd.DataFrame({"a": rng.standard_t(3, 1_000) * 0.01, "b": rng.normal(5.0, 2.0, 1_000),
                         "c": rng.lognormal(0.0, 1.0, 1_000)}, index=index)
    data.iloc[::97, 1] = np.nan
    return data


def test_statistics_come_from_the_train_rows_only(frame):
    """Each column's quantiles over all its finite train rows, and nothing a later row could move.

    Which rows are train is `split_segment`'s choice; tests/stages/test_split_and_hmm.py proves it fits there.
    """
    train = frame.iloc[:600]
    scaler = RobustScaler.fit(train)
    q25, median, q75 = np.nanpercentile(train.to_numpy(), [25, 50, 75], axis=0)
    assert scaler.columns == ("a", "b", "c")
    np.testing.assert_array_equal(scaler.median, median)
    np.testing.assert_array_equal(scaler.scale, q75 - q25)
    changed_later = frame.copy()
    changed_later.iloc[600:] = changed_later.iloc[600:] * 1_000.0  # only the non-train rows differ
    leaked = RobustScaler.fit(changed_later)  # a fit that saw them is told apart by every parameter
    assert all(np.not_equal(leaked.median, scaler.median)) and all(np.not_equal(leaked.scale, scaler.scale))
    assert leaked.fingerprint() != scaler.fingerprint() != RobustScaler.fit(frame).fingerprint()


def test_transform_centres_scales_and_clips(frame):
    scaler = RobustScaler.fit(frame.iloc[:600], clip=2.0)
    extreme = frame.iloc[600:].copy()
    extreme.iloc[0] = 1e9
    extreme.iloc[1] = -1e9
    scaled = scaler.transform(extreme)
    assert scaled.index.equals(extreme.index) and tuple(scaled.columns) == scaler.columns
    assert np.nanmax(np.abs(scaled.to_numpy())) == 2.0
    assert (scaled.iloc[0] == 2.0).all() and (scaled.iloc[1] == -2.0).all()
    row = 5
    expected = (extreme.iloc[row, 0] - scaler.median[0]) / scaler.scale[0]
    assert scaled.iloc[row, 0] == pytest.approx(np.clip(expected, -2.0, 2.0), rel=1e-12)


def test_nan_stays_nan(frame):
    scaled = RobustScaler.fit(frame).transform(frame)
    np.testing.assert_array_equal(np.isnan(scaled.to_numpy()), np.isnan(frame.to_numpy()))


def test_zero_iqr_falls_back_to_std_then_to_one():
    spiky = np.zeros(100)
    spiky[::10] = 3.0  # 90 % zeros: IQR 0, std 0.9
    train = pd.DataFrame({"spiky": spiky, "constant": 4.0})
    scaler = RobustScaler.fit(train)
    assert scaler.scale == pytest.approx((np.std(spiky), 1.0))
    assert np.isfinite(scaler.transform(train).to_numpy()).all()


def test_round_trip_through_json_keeps_the_scaler_and_its_fingerprint(frame):
    scaler = RobustScaler.fit(frame, clip=3.5)
    restored = RobustScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert restored == scaler and restored.fingerprint() == scaler.fingerprint()
    assert len(scaler.fingerprint()) == 64
    np.testing.assert_array_equal(restored.transform(frame).to_numpy(), scaler.transform(frame).to_numpy())
    assert RobustScaler.from_dict({**scaler.to_dict(), "clip": 4.0}).fingerprint() != scaler.fingerprint()


def test_transform_is_row_wise_hence_causal(frame):
    scaler = RobustScaler.fit(frame.iloc[:600])
    assert check_truncation_invariance(scaler.transform, frame, [0, 599, 600, 999]) == []
    np.testing.assert_array_equal(scaler.transform(frame.iloc[[700]]).to_numpy(),
                                  scaler.transform(frame).iloc[[700]].to_numpy())


def test_transform_refuses_missing_columns(frame):
    scaler = RobustScaler.fit(frame)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['c'\]"):
        scaler.transform(frame.drop(columns="c"))


def test_fit_refuses_an_all_nan_column(frame):
    with pytest.raises(DataError, match="'b' is all NaN on 10 rows: fit on rows after the feature warm-up"):
        RobustScaler.fit(frame.iloc[:10].assign(b=np.nan))


def test_fit_refuses_an_infinite_value(frame):
    broken = frame.copy()
    broken.iloc[42, 2] = np.inf
    with pytest.raises(DataError, match=re.escape(f"'c' is infinite at {frame.index[42]}")):
        RobustScaler.fit(broken)


def test_from_dict_refuses_missing_keys_and_mismatched_lengths(frame):
    saved = RobustScaler.fit(frame).to_dict()
    with pytest.raises(CheckpointError, match=r"lack key\(s\) \['scale'\]"):
        RobustScaler.from_dict({key: value for key, value in saved.items() if key != "scale"})
    with pytest.raises(CheckpointError, match="mismatched lengths"):
        RobustScaler.from_dict({**saved, "median": saved["median"][:2]})
