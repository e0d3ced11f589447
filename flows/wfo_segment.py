"""The `wfo-segment` flow: the DAG of one walk-forward segment, read top to bottom.

    split_segment ─┬─ fit_hmm ──────┐
                   └─ pretrain_mae ─┴─ train_tqc ── audit ── publish_audit (Prefect artifacts, every run)

Every task is cached on the content of its inputs; `clean=True` recomputes them all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from prefect import flow

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile, with_overrides
from cryptorl.storage import ArtifactStore
from tasks.caching import result_storage_for
from tasks.audit import audit, publish_audit
from tasks.fit_hmm import fit_hmm
from tasks.pretrain_mae import pretrain_mae
from tasks.split_segment import split_segment
from tasks.train_tqc import train_tqc


@dataclass(frozen=True)
class SegmentRun:
    """What one segment run produced (all references into the artifact store)."""

    segment: int
    profile: str
    store_url: str
    split: stages.SegmentArtifacts
    regime: stages.RegimeArtifacts
    mae: stages.MAEArtifacts
    tqc: stages.TQCArtifacts
    audit: stages.AuditArtifacts


@flow(name="wfo-segment", log_prints=True)
def wfo_segment(segment: int = 0, profile: str = "smoke", data: str | None = None, storage: str | None = None,
                clean: bool = False, timesteps: int | None = None, policy: str = "trained",
                overrides: dict[str, str] | None = None, seed: int | None = None) -> SegmentRun:
    """Run one WFO segment end to end on the artifact store `storage` (default $CRYPTORL_STORAGE or ./artifacts).

    `timesteps` overrides the profile's TQC training length; `policy` is what the audit judges (the trained
    agent, or a baseline spec such as `constant:0.85`); `overrides` are `stage.key=value` settings; `seed`
    replaces the profile's seed (every seeded stage recomputes under another seed).
    """
    overrides = {**(overrides or {}), **({"train.total_timesteps": str(timesteps)} if timesteps else {})}
    config = with_overrides(get_profile(profile), overrides)
    config = config if seed is None else replace(config, seed=seed)
    store = ArtifactStore(storage)
    options = {"result_storage": result_storage_for(store), "refresh_cache": clean}
    data_ref = stages.source_ref(data or str(DEFAULT_DATA_PATH))

    split = split_segment.with_options(**options)(store.url, data_ref, segment, config.data, config.features,
                                                  config.wfo)
    regime = fit_hmm.with_options(**options)(store.url, split, config.regime, config.seed)
    mae = pretrain_mae.with_options(**options)(store.url, split, config.mae, config.seed)
    tqc = train_tqc.with_options(**options)(store.url, split, regime, mae, config.mae, config.train, config.env,
                                            config.seed)
    report = audit.with_options(**options)(store.url, split, regime, mae, tqc, config.mae, config.train, config.env,
                                           config.seed, policy)
    publish_audit(store.url, report)
    return SegmentRun(segment, config.name, store.url, split, regime, mae, tqc, report)
