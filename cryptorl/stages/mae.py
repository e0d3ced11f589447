"""Stage `pretrain_mae`: CryptoMAE on the segment's train slice, early-stopped on its eval slice.

Stored under `segments/<n>/mae/<fingerprint>/`: `checkpoint.pt` (weights + MAEConfig + feature columns +
scaler identity), `history.json` (loss curve, eval loss vs the naive baseline, time) and `tensorboard/`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryptorl.config import MAEConfig
from cryptorl.hashing import code_version, fingerprint
from cryptorl.models import CryptoMAE, load_mae
from cryptorl.models import pretrain_mae as pretrain
from cryptorl.models.checkpoint import save_mae
from cryptorl.seeding import resolve_device
from cryptorl.stages.split import SegmentArtifacts, SegmentData, load_segment
from cryptorl.storage import ArtifactRef, ArtifactStore

CODE_MODULES = ("models/foundation.py", "models/pretrain.py", "models/checkpoint.py", "seeding.py", "stages/mae.py")


@dataclass(frozen=True)
class MAEArtifacts:
    segment: int
    checkpoint: ArtifactRef
    history: ArtifactRef
    tensorboard: str  # URI prefix of the TensorBoard event files


def pretrain_mae(store: ArtifactStore, split: SegmentArtifacts, config: MAEConfig, seed: int) -> MAEArtifacts:
    segment = load_segment(store, split)
    key = fingerprint(split.features.sha256, config, seed, code_version(*CODE_MODULES))
    prefix = f"segments/{split.segment}/mae/{key[:16]}"
    with tempfile.TemporaryDirectory() as tmp:
        result = pretrain(
            slice_windows_source(segment, "train", config.window),
            slice_windows_source(segment, "eval", config.window),
            config,
            seed=seed,
            tensorboard_dir=f"{tmp}/tensorboard",
            device=resolve_device(),
        )
        save_mae(
            result.model,
            f"{tmp}/checkpoint.pt",
            columns=segment.feature_names,
            scaler_fingerprint=segment.meta["scaler_fingerprint"],
        )
        checkpoint = store.write_bytes(f"{prefix}/checkpoint.pt", Path(f"{tmp}/checkpoint.pt").read_bytes())
        store.upload_dir(f"{tmp}/tensorboard", f"{prefix}/tensorboard")
    history = {
        "segment": split.segment,
        "best_eval_loss": result.best_eval_loss,
        "baseline_eval_loss": result.baseline_eval_loss,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "history": result.history,
    }
    return MAEArtifacts(
        split.segment,
        checkpoint,
        store.write_json(f"{prefix}/history.json", history),
        store.uri(f"{prefix}/tensorboard"),
    )


def load_segment_encoder(mae: MAEArtifacts, expected: MAEConfig) -> CryptoMAE:
    """The pretrained encoder, its dimensions checked against the config this run expects."""
    return load_mae(mae.checkpoint.uri, expected=expected)


def slice_windows_source(segment: SegmentData, name: str, window: int) -> np.ndarray:
    """(window - 1 + n_bars, 50) float32 rows whose windows end exactly at the slice's bars.

    The rows before the slice are history (the span's pre-train bars, or the purge gap), never bars of
    another slice: the purge is at least one window long.
    """
    start, stop = segment.slices[name]
    return segment.frame[segment.feature_names].to_numpy(np.float32)[start - (window - 1) : stop]
