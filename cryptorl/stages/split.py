"""Stage `split_segment`: OHLCV → 50 causal features, scaled with a train-only scaler, sliced by WFO.

Stored per segment (under `segments/<n>/split/<fingerprint>/`):
- `features.parquet`: the segment's span, from `window - 1` bars before the train start (so the first
  train bar has a full observation window) to the last test bar: 50 scaled features + raw `close`.
- `meta.json`: slice positions within that span, timestamps, the scaler's parameters and identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec
import pandas as pd

from cryptorl.config import OBSERVATION_WINDOW, DataConfig, FeatureConfig, WFOConfig
from cryptorl.data import load_bars
from cryptorl.errors import DataError
from cryptorl.features import FEATURE_NAMES, RobustScaler, technical_features
from cryptorl.hashing import code_version, fingerprint, sha256_bytes
from cryptorl.storage import ArtifactRef, ArtifactStore
from cryptorl.wfo import SLICE_NAMES, Segment, check_warmup, get_segment, span_start_bar

CODE_MODULES = ("data", "features", "wfo.py", "stages/split.py")


@dataclass(frozen=True)
class SegmentArtifacts:
    """What `split_segment` produced for one segment."""

    segment: int
    features: ArtifactRef
    meta: ArtifactRef


@dataclass(frozen=True)
class SegmentData:
    """A loaded split: the scaled span frame and where each slice lies in it."""

    segment: int
    frame: pd.DataFrame  # (T_span, 50 features + close), UTC index
    slices: dict[str, tuple[int, int]]  # name -> [start, stop) positions in `frame`
    meta: dict

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta["feature_names"])

    def slice_frame(self, name: str) -> pd.DataFrame:
        start, stop = self.slices[name]
        return self.frame.iloc[start:stop]


def source_ref(path_or_url: str) -> ArtifactRef:
    """Identify a data source by the sha256 of its bytes (the cache key never sees the path)."""
    try:
        with fsspec.open(str(path_or_url), "rb") as handle:
            return ArtifactRef(str(path_or_url), sha256_bytes(handle.read()))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read data source {path_or_url}: {exc}; check the path or URL (--data)") from None


def split_segment(
    store: ArtifactStore,
    data: ArtifactRef,
    segment: int,
    data_config: DataConfig,
    feature_config: FeatureConfig,
    wfo_config: WFOConfig,
) -> SegmentArtifacts:
    """Compute features on all bars, fit the scaler on the train slice only, store the segment span."""
    ohlcv = load_bars(data.uri, data_config)
    spec = get_segment(ohlcv.index, wfo_config, segment)
    check_warmup(ohlcv.index, spec, data.uri)
    span_start = span_start_bar(spec)

    features = technical_features(ohlcv.iloc[: spec.test.stop])  # (T, 50); causal, so the cut is harmless
    scaler = RobustScaler.fit(features.iloc[spec.train.start : spec.train.stop], clip=feature_config.scaler_clip)
    span = scaler.transform(features.iloc[span_start:])  # (T_span, 50)
    span["close"] = ohlcv["close"].iloc[span_start : spec.test.stop]

    key = fingerprint(data.sha256, data_config, feature_config, wfo_config, segment, code_version(*CODE_MODULES))
    prefix = f"segments/{segment}/split/{key[:16]}"
    meta = _segment_meta(spec, span_start, scaler, data)
    return SegmentArtifacts(
        segment=segment,
        features=store.write_frame(f"{prefix}/features.parquet", span),
        meta=store.write_json(f"{prefix}/meta.json", meta),
    )


def load_segment(store: ArtifactStore, artifacts: SegmentArtifacts) -> SegmentData:
    meta = store.read_json(artifacts.meta)
    slices = {name: (int(meta["slices"][name]["start"]), int(meta["slices"][name]["stop"])) for name in SLICE_NAMES}
    return SegmentData(artifacts.segment, store.read_frame(artifacts.features), slices, meta)


def _segment_meta(spec: Segment, span_start: int, scaler: RobustScaler, data: ArtifactRef) -> dict:
    slices = {
        name: {
            "start": spec.slice(name).start - span_start,
            "stop": spec.slice(name).stop - span_start,
            "first": spec.slice(name).first.isoformat(),
            "last": spec.slice(name).last.isoformat(),
        }
        for name in SLICE_NAMES
    }
    return {
        "segment": spec.index,
        "slices": slices,
        "feature_names": list(FEATURE_NAMES),
        "observation_window": OBSERVATION_WINDOW,
        "scaler": scaler.to_dict(),
        "scaler_fingerprint": scaler.fingerprint(),
        "data_sha256": data.sha256,
        "description": spec.describe(),
    }
