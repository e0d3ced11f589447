"""Real tiny models for the registry, promotion and signal tests: three smoke agents trained once per session.

Segments with 5-day test slices (a re-scoring backtest is 120 bars): segment 0 with seed 0, segment 1 with
seeds 0 and 1, trained and audited by the library stages directly (no Prefect): 256 TQC steps, one short MAE
epoch. Agents that small are mostly collapsed or degenerate, and which one depends on the machine's kernels,
so each also gets a copy of its real audit report with the verdict set to healthy and nothing else changed:
the promotion rule's healthy branch, by construction (the unhealthy branch edits a copy the same way).

A registry lives in the store of the artifacts it points at, so each test copies the artifacts into a store
of its own (`Trained.challengers`) and starts from an empty registry.
"""

from __future__ import annotations

import dataclasses
import io
import math
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from cryptorl import stages
from cryptorl.audit.verdict import HEALTHY
from cryptorl.config import DEFAULT_DATA_PATH, Profile, get_profile, with_overrides
from cryptorl.data import load_ohlcv
from cryptorl.champion.promotion import Challenger
from cryptorl.storage import ArtifactRef, ArtifactStore
from cryptorl.training.callbacks import CHECKPOINT_EXCLUDE
from cryptorl.training.tqc import load_trained_model

# No promotion floor: what 256 steps earn is noise, and these tests are about the rest of the rule;
# tests/registry/test_floor.py sets the floor on agents pinned to a known position. No no-trade band: 256 steps
# leave the targets inside the band around flat, every seed's positions 0 and their Sharpe ratios equal.
OVERRIDES = {"mae.max_epochs": "1", "mae.steps_per_epoch": "5", "train.total_timesteps": "256",
             "train.checkpoints": "1", "train.eval_steps": "16", "wfo.test": "5D", "wfo.step": "5D",
             "promotion.floor": "none", "env.no_trade_band": "0"}
DATA_END = pd.Timestamp("2018-08-19", tz="UTC")  # segment 1's test slice ends 2018-08-16 07:00: ~3 later days
RUNS = ((0, 0), (1, 0), (1, 1))  # (segment, seed)


@dataclass(frozen=True)
class Trained:
    root: Path
    store_url: str  # where the agents were trained
    data: str  # the data file: the bundled bars up to DATA_END
    profile: Profile
    ohlcv: pd.DataFrame
    real: dict[tuple[int, int], Challenger]  # (segment, seed) -> with its real audit verdict
    healthy: dict[tuple[int, int], Challenger]  # ... with a copy of that report saying healthy

    def challengers(self, store_url: str, dataset: str = "btcusdt-1h") -> dict[tuple[int, int], Challenger]:
        """The healthy challengers with every artifact copied into `store_url` and the data copied to
        `<dataset>.parquet`."""
        data = self.root / "data" / f"{dataset}.parquet"
        data.parent.mkdir(exist_ok=True)
        shutil.copyfile(self.data, data)
        source, target = ArtifactStore(self.store_url), ArtifactStore(store_url)
        return {run: dataclasses.replace(_copied(challenger, source, target), data=stages.source_ref(str(data)))
                for run, challenger in self.healthy.items()}


def pinned(challenger: Challenger, position: float, store_url: str) -> Challenger:
    """`challenger` (already in `store_url`) whose agent holds `position` whatever it sees: the actor's mean layer
    outputs atanh(position). Its net Sharpe on a slice then follows the market's sign, by construction."""
    store = ArtifactStore(store_url)
    model = load_trained_model(io.BytesIO(store.read_bytes(challenger.tqc.model)), device="cpu")
    with torch.no_grad():
        model.actor.mu.weight.zero_()
        model.actor.mu.bias.fill_(math.atanh(position))
    saved = io.BytesIO()
    model.save(saved, exclude=list(CHECKPOINT_EXCLUDE))
    ref = store.write_bytes(f"pinned/{uuid.uuid4().hex}/model.zip", saved.getvalue())
    return dataclasses.replace(challenger, tqc=dataclasses.replace(challenger.tqc, model=ref))


def _copied(value: Any, source: ArtifactStore, target: ArtifactStore) -> Any:
    """`value` with every ArtifactRef in it (nested dataclasses too) copied from `source` into `target`."""
    if isinstance(value, ArtifactRef) and value.uri.startswith(source.url):
        return target.write_bytes(source.key_of(value), source.read_bytes(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, (type, Profile)):
        return dataclasses.replace(value, **{f.name: _copied(getattr(value, f.name), source, target)
                                             for f in dataclasses.fields(value)})
    return value


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    root = tmp_path_factory.mktemp("registry")
    frame = pd.read_parquet(DEFAULT_DATA_PATH)
    data = str(root / "BTCUSDT-1h.parquet")
    frame[frame["timestamp"] < DATA_END].to_parquet(data, index=False)
    profile = with_overrides(get_profile("smoke"), OVERRIDES)
    store = ArtifactStore(f"file://{root / 'store'}")
    source = stages.source_ref(data)
    real, healthy = {}, {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRYPTORL_WORK_DIR", str(root / "work"))
        for segment, seed in RUNS:
            split = stages.split_segment(store, source, segment, profile.data, profile.features, profile.wfo)
            regime = stages.fit_hmm(store, split, profile.regime, seed)
            mae = stages.pretrain_mae(store, split, profile.mae, seed)
            tqc = stages.train_tqc(store, split, regime, mae, profile.mae, profile.train, profile.env, seed,
                                   progress=False)
            audit = stages.audit_segment(store, split, regime, mae, tqc, profile.mae, profile.train, profile.env,
                                         seed)
            real[segment, seed] = Challenger(source, profile, seed, split, regime, mae, tqc, audit)
            report = store.read_json(audit.report) | {"verdict": HEALTHY}
            healthy[segment, seed] = dataclasses.replace(real[segment, seed], audit=dataclasses.replace(
                audit, verdict=HEALTHY, report=store.write_json(f"healthy/{segment}-{seed}/report.json", report)))
    return Trained(root, store.url, data, profile, load_ohlcv(data), real, healthy)


@pytest.fixture
def s3_store(moto_endpoint):
    """A store in a bucket of moto's S3 server on 127.0.0.1 (no network)."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="registry")
    return "s3://registry/store"
