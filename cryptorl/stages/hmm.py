"""Stage `fit_hmm`: Gaussian HMM on the train slice, forward-filtered context over the segment span.

The filter runs over the whole contiguous span (train → eval → test), so the context at every bar is
P(state | bars ≤ t) with a warmed-up filter, and never sees a later bar. Stored under
`segments/<n>/hmm/<fingerprint>/`: `model.bin` (reloadable), `context.parquet` (T_span, 5), `report.json`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from cryptorl.config import RegimeConfig
from cryptorl.hashing import code_version, fingerprint
from cryptorl.regime import fit_regime_model
from cryptorl.stages.split import SegmentArtifacts, load_segment
from cryptorl.storage import ArtifactRef, ArtifactStore

CODE_MODULES = ("regime.py", "stages/hmm.py")


@dataclass(frozen=True)
class RegimeArtifacts:
    segment: int
    model: ArtifactRef
    context: ArtifactRef
    report: ArtifactRef


def fit_hmm(store: ArtifactStore, split: SegmentArtifacts, config: RegimeConfig, seed: int) -> RegimeArtifacts:
    segment = load_segment(store, split)
    model = fit_regime_model(segment.slice_frame("train")[segment.feature_names], seed=seed, config=config)
    context = model.context(segment.frame[segment.feature_names])  # (T_span, 5), forward filter only

    key = fingerprint(split.features.sha256, config, seed, code_version(*CODE_MODULES))
    prefix = f"segments/{split.segment}/hmm/{key[:16]}"
    report = {
        "segment": split.segment,
        "log_likelihood": model.log_likelihood,
        "converged": model.converged,
        "inits": [dataclasses.asdict(init) for init in model.inits],
        "occupancy": _occupancy(context, segment.slices),
    }
    return RegimeArtifacts(
        segment=split.segment,
        model=store.write_bytes(f"{prefix}/model.bin", model.to_bytes()),
        context=store.write_frame(f"{prefix}/context.parquet", context),
        report=store.write_json(f"{prefix}/report.json", report),
    )


def load_regime_context(store: ArtifactStore, regime: RegimeArtifacts) -> pd.DataFrame:
    return store.read_frame(regime.context)


def _occupancy(context: pd.DataFrame, slices: dict[str, tuple[int, int]]) -> dict[str, list[float]]:
    """Mean filtered probability of each state per slice: does the test period visit other regimes?"""
    state_columns = [c for c in context.columns if c.startswith("p_state_")]
    return {
        name: context.iloc[start:stop][state_columns].mean().round(4).tolist() for name, (start, stop) in slices.items()
    }
