"""Stage-level look-ahead check: bars after a segment's train slice cannot change what it fits or stores for train,
and bars after its test slice cannot change anything it stores."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile
from cryptorl.errors import DataError
from cryptorl.storage import ArtifactStore

PROFILE = get_profile("smoke")


@dataclass(frozen=True)
class StageRun:
    """What `split_segment` and `fit_hmm` stored for segment 0 of one data file."""

    segment: stages.SegmentData
    context: pd.DataFrame  # (T_span, 5)
    hmm_model_sha256: str


def run_stages(store: ArtifactStore, data_path: Path) -> StageRun:
    split = stages.split_segment(store, stages.source_ref(str(data_path)), 0, PROFILE.data, PROFILE.features,
                                 PROFILE.wfo)
    regime = stages.fit_hmm(store, split, PROFILE.regime, PROFILE.seed)
    return StageRun(stages.load_segment(store, split), stages.load_regime_context(store, regime), regime.model.sha256)


def perturb_after(raw: pd.DataFrame, last_kept: pd.Timestamp, seed: int = 3) -> pd.DataFrame:
    """Valid OHLCV whose bars after `last_kept` follow another random path: new returns, ranges and volumes."""
    changed = raw.copy()
    later = (changed["timestamp"] > last_kept).to_numpy()
    rng = np.random.default_rng(seed)
    drift = np.exp(np.cumsum(rng.normal(0.0, 0.01, later.sum())))  # (n_later,) a new price path, positive
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] = changed.loc[later, column].to_numpy() * drift
    changed.loc[later, "volume"] = changed.loc[later, "volume"].to_numpy() * rng.uniform(0.5, 2.0, later.sum())
    return changed


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, StageRun]:
    """Segment 0 of the bundled data, of it cut at the last test bar, and of it with every bar after train changed.

    The changed copy keeps all bars beyond the test slice too, so a stage that read past its slices or fit
    on eval/test rows would store different train-side results.
    """
    tmp = tmp_path_factory.mktemp("data")
    store = ArtifactStore(f"file://{tmp}/store")
    full = run_stages(store, DEFAULT_DATA_PATH)
    raw = pd.read_parquet(DEFAULT_DATA_PATH)
    slices = full.segment.meta["slices"]
    raw[raw["timestamp"] <= pd.Timestamp(slices["test"]["last"])].to_parquet(tmp / "truncated.parquet")
    perturb_after(raw, pd.Timestamp(slices["train"]["last"])).to_parquet(tmp / "perturbed.parquet")
    return {"full": full, "truncated": run_stages(store, tmp / "truncated.parquet"),
            "perturbed": run_stages(store, tmp / "perturbed.parquet")}


def test_segment_split_ignores_all_later_bars(runs):
    full, truncated, perturbed = runs["full"].segment, runs["truncated"].segment, runs["perturbed"].segment
    assert full.slices == truncated.slices == perturbed.slices
    pd.testing.assert_frame_equal(full.frame, truncated.frame, check_exact=True)
    assert full.meta["scaler"] == perturbed.meta["scaler"]  # fit on train rows only, bit for bit
    train_stop = full.slices["train"][1]
    pd.testing.assert_frame_equal(full.frame.iloc[:train_stop], perturbed.frame.iloc[:train_stop], check_exact=True)
    for name in ("eval", "test"):  # the perturbation did reach the later slices
        assert not full.slice_frame(name).equals(perturbed.slice_frame(name))


def test_regime_context_ignores_all_later_bars(runs):
    full, truncated, perturbed = runs["full"], runs["truncated"], runs["perturbed"]
    assert np.array_equal(full.context.to_numpy(), truncated.context.to_numpy(), equal_nan=True)
    assert full.hmm_model_sha256 == perturbed.hmm_model_sha256  # HMM parameters fit on train only
    train_stop = full.segment.slices["train"][1]
    assert np.array_equal(full.context.iloc[:train_stop].to_numpy(), perturbed.context.iloc[:train_stop].to_numpy())
    test_start, test_stop = full.segment.slices["test"]
    assert not np.array_equal(full.context.iloc[test_start:test_stop].to_numpy(),
                              perturbed.context.iloc[test_start:test_stop].to_numpy())


def test_segment_span_has_full_windows_and_no_nan(runs):
    segment, context = runs["full"].segment, runs["full"].context
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
