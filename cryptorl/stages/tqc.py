"""Stage `train_tqc`: TQC on the train slice (checkpoints scored on eval), from split + HMM + MAE outputs.

Works in a local directory keyed by the stage fingerprint (`$CRYPTORL_WORK_DIR`, default
`~/.cache/cryptorl/work`), so a crashed run resumes from its latest checkpoint; on success everything is
uploaded under `segments/<n>/tqc/<fingerprint>/` (model.zip, checkpoints/, tensorboard/, summary.json)
and the local directory is removed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cryptorl.config import EnvConfig, MAEConfig, TrainConfig
from cryptorl.envs import MarketData
from cryptorl.hashing import code_version, fingerprint
from cryptorl.seeding import resolve_device
from cryptorl.stages.hmm import RegimeArtifacts, load_regime_context
from cryptorl.stages.mae import MAEArtifacts, load_segment_encoder
from cryptorl.stages.split import SegmentArtifacts, SegmentData, load_segment
from cryptorl.storage import ArtifactRef, ArtifactStore
from cryptorl.training.tqc import train_tqc as train

CODE_MODULES = ("envs", "training", "models/rl_adapter.py", "models/layers.py", "seeding.py", "stages/tqc.py")
WORK_DIR_ENV_VAR = "CRYPTORL_WORK_DIR"


@dataclass(frozen=True)
class TQCArtifacts:
    segment: int
    model: ArtifactRef
    summary: ArtifactRef
    checkpoints: str  # URI prefix: rotating ckpt_<step>.zip, best.zip, best.json
    tensorboard: str  # URI prefix of the TensorBoard event files


def train_tqc(
    store: ArtifactStore,
    split: SegmentArtifacts,
    regime: RegimeArtifacts,
    mae: MAEArtifacts,
    mae_config: MAEConfig,
    config: TrainConfig,
    env_config: EnvConfig,
    seed: int,
    progress: bool = True,
) -> TQCArtifacts:
    segment = load_segment(store, split)
    encoder = load_segment_encoder(mae, mae_config)
    market = segment_market(segment, load_regime_context(store, regime), config.device)
    key = fingerprint(
        split.features.sha256,
        regime.context.sha256,
        mae.checkpoint.sha256,
        config,
        env_config,
        seed,
        code_version(*CODE_MODULES),
    )
    work_dir = work_root() / key[:16]
    result = train(
        market.with_slice(*segment.slices["train"]),
        market.with_slice(*segment.slices["eval"]),
        encoder,
        config,
        env_config,
        seed=seed,
        work_dir=work_dir,
        progress=progress,
    )

    prefix = f"segments/{split.segment}/tqc/{key[:16]}"
    model = store.write_bytes(f"{prefix}/model.zip", result.model_path.read_bytes())
    store.upload_dir(result.checkpoint_dir, f"{prefix}/checkpoints")
    store.upload_dir(result.tensorboard_dir, f"{prefix}/tensorboard")
    summary = {
        "segment": split.segment,
        "timesteps": result.timesteps,
        "updates": result.updates,
        "seconds": round(result.seconds, 2),
        "env_steps_per_second": round(result.steps_per_second, 1),
        "resumed_from": result.resumed_from,
        "gradient_steps_per_env_step": config.gradient_steps,
        "device": str(market.device),
        "encoder_cache": config.use_encoder_cache,
    }
    artifacts = TQCArtifacts(
        split.segment,
        model,
        store.write_json(f"{prefix}/summary.json", summary),
        store.uri(f"{prefix}/checkpoints"),
        store.uri(f"{prefix}/tensorboard"),
    )
    shutil.rmtree(work_dir, ignore_errors=True)
    return artifacts


def segment_market(segment: SegmentData, context: pd.DataFrame, device: str) -> MarketData:
    """The segment span as env data: 50 scaled features + 5 HMM columns (T_span, 5) per bar, and close."""
    features = segment.frame[segment.feature_names]
    start, stop = segment.slices["train"]
    return MarketData.from_frames(features, context, segment.frame["close"], start, stop, device=resolve_device(device))


def work_root() -> Path:
    return Path(os.environ.get(WORK_DIR_ENV_VAR, Path.home() / ".cache" / "cryptorl" / "work"))
