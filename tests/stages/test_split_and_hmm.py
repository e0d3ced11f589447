"""Stage-level look-ahead check: bars after a segment's test slice cannot change anything it stores."""

import numpy as np
import pandas as pd
import pytest

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile
from cryptorl.errors import DataError
from cryptorl.storage import ArtifactStore

PROFILE = get_profile("smoke")


def run_stages(store: ArtifactStore, data_path: str) -> tuple[stages.SegmentData, pd.DataFrame]:
    split = stages.split_segment(store, stages.source_ref(data_path), 0, PROFILE.data, PROFILE.features, PROFILE.wfo)
    regime = stages.fit_hmm(store, split, PROFILE.regime, PROFILE.seed)
    return stages.load_segment(store, split), stages.load_regime_context(store, regime)


@pytest.fixture(scope="module")
def full_and_truncated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    store = ArtifactStore(f"file://{tmp}/store")
    full = run_stages(store, str(DEFAULT_DATA_PATH))
    raw = pd.read_parquet(DEFAULT_DATA_PATH)
    test_last = pd.Timestamp(full[0].meta["slices"]["test"]["last"])
    truncated_path = tmp / "truncated.parquet"
    raw[raw["timestamp"] <= test_last].to_parquet(truncated_path)
    return full, run_stages(store, str(truncated_path))


def test_segment_split_ignores_all_later_bars(full_and_truncated):
    (full, _), (truncated, _) = full_and_truncated
    assert full.slices == truncated.slices
    assert full.meta["scaler"] == truncated.meta["scaler"]
    pd.testing.assert_frame_equal(full.frame, truncated.frame, check_exact=True)


def test_regime_context_ignores_all_later_bars(full_and_truncated):
    (_, full_context), (_, truncated_context) = full_and_truncated
    assert np.array_equal(full_context.to_numpy(), truncated_context.to_numpy(), equal_nan=True)


def test_segment_span_has_full_windows_and_no_nan(full_and_truncated):
    (segment, context), _ = full_and_truncated
    train_start, _ = segment.slices["train"]
    assert train_start == 63  # the first train bar sees a full 64-bar window
    assert segment.frame[segment.feature_names].notna().all().all() and context.notna().all().all()
    assert segment.frame[segment.feature_names].abs().max().max() <= PROFILE.features.scaler_clip


def test_segment_before_feature_warmup_is_refused(tmp_path):
    raw = pd.read_parquet(DEFAULT_DATA_PATH)
    late = tmp_path / "late.parquet"
    raw[raw["timestamp"] >= "2017-12-30"].to_parquet(late)
    with pytest.raises(DataError, match=r"features need 200 warm-up bars.*set wfo.first_train_start to"):
        stages.split_segment(ArtifactStore("memory://late"), stages.source_ref(str(late)), 0, PROFILE.data,
                             PROFILE.features, PROFILE.wfo)
