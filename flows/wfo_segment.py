"""The `wfo-segment` flow: the DAG of one walk-forward segment, read top to bottom.

    split_segment ─┬─ fit_hmm ──────┐                                                      ┐
                   └─ pretrain_mae ─┴─ train_tqc ── audit ── publish_audit (every run)     ┘ once per seed
                                                                        └── promote (the seeds together)

The split is shared; every seed fits its own HMM, pretrains its own MAE, trains and audits its own agent,
one seed after the other (training seeds the process-global RNGs, so two seeds sharing a process at once
would not be reproducible). Every task is cached on the content of its inputs, the seed included, so each
seed is its own cached run; `clean=True` recomputes them all. `promote` (never cached) lets the best healthy
seed replace the data source's champion if it beats it on this segment's test slice (cryptorl/promotion.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, Profile, get_profile, with_overrides
from cryptorl.promotion import Challenger, Decision
from cryptorl.storage import ArtifactStore
from cryptorl.study import parse_seeds
from tasks.caching import result_storage_for
from tasks.audit import audit, publish_audit
from tasks.fit_hmm import fit_hmm
from tasks.pretrain_mae import pretrain_mae
from tasks.promote import promote
from tasks.split_segment import split_segment
from tasks.train_tqc import train_tqc


@dataclass(frozen=True)
class SeedRun:
    """What one seed produced on the segment's shared split (references into the artifact store)."""

    seed: int
    regime: stages.RegimeArtifacts
    mae: stages.MAEArtifacts
    tqc: stages.TQCArtifacts
    audit: stages.AuditArtifacts


@dataclass(frozen=True)
class SegmentRun:
    """What one segment run produced: the shared split and one `SeedRun` per seed, in the order given."""

    segment: int
    profile: str
    store_url: str
    split: stages.SegmentArtifacts
    seeds: list[SeedRun]
    promotion: Decision | None  # None when the run audited a baseline or was told not to promote


def seeds_of(spec: str | int | list[int] | None, profile: Profile) -> list[int]:
    """The seeds a run trains: `spec` ("0", "0,1,2", an int or a list), or the profile's own seed for None."""
    return [profile.seed] if spec is None else parse_seeds(spec)


@flow(name="wfo-segment", log_prints=True)
def wfo_segment(segment: int = 0, profile: str | None = None, data: str | None = None, storage: str | None = None,
                clean: bool = False, timesteps: int | None = None, policy: str = "trained",
                overrides: dict[str, str] | None = None, seeds: str | int | list[int] | None = None,
                promote_champion: bool = True) -> SegmentRun:
    """Run one WFO segment end to end on the artifact store `storage` (default $CRYPTORL_STORAGE or ./artifacts).

    `profile` None is this machine's default ($CRYPTORL_PROFILE, else smoke): a deployment run takes its worker's.
    `timesteps` overrides the profile's TQC training length; `policy` is what the audit judges (the trained
    agent, or a baseline spec such as `constant:0.85`); `overrides` are `stage.key=value` settings; `seeds`
    ("0", "0,1,2" or a list; default: the profile's seed) are the seeds trained, each its own cached run.
    `promote_champion` False keeps the registry out of it (the study's runs are research, not candidates).
    """
    overrides = {**(overrides or {}), **({"train.total_timesteps": str(timesteps)} if timesteps else {})}
    config = with_overrides(get_profile(profile), overrides)
    seed_list = seeds_of(seeds, config)
    store = ArtifactStore(storage)
    store.check_reachable()  # a dead store is one line now, not a failed task after the split and its retries
    options = {"result_storage": result_storage_for(store), "refresh_cache": clean}
    data_ref = stages.source_ref(data or str(DEFAULT_DATA_PATH))

    split = split_segment.with_options(**options)(store.url, data_ref, segment, config.data, config.features,
                                                  config.wfo)
    provenance = stages.provenance(data_ref, config)
    runs = [seed_run(store, options, split, config, seed, policy, provenance) for seed in seed_list]
    decision = None
    if promote_champion and policy == "trained":  # a baseline's audit is never a challenger
        decision = promote(store.url, [Challenger(data_ref, config, run.seed, split, run.regime, run.mae, run.tqc,
                                                  run.audit) for run in runs])
    return SegmentRun(segment, config.name, store.url, split, runs, decision)


def seed_run(store: ArtifactStore, options: dict, split: stages.SegmentArtifacts, config: Profile, seed: int,
             policy: str, provenance: stages.Provenance) -> SeedRun:
    """The per-seed part of the DAG: HMM and MAE on the split, then the agent, its audit and its artifacts."""
    regime = fit_hmm.with_options(**options)(store.url, split, config.regime, seed)
    mae = pretrain_mae.with_options(**options)(store.url, split, config.mae, seed)
    tqc = train_tqc.with_options(**options)(store.url, split, regime, mae, config.mae, config.train, config.env, seed)
    report = audit.with_options(**options)(store.url, split, regime, mae, tqc, config.mae, config.train, config.env,
                                           seed, policy, provenance)
    publish_audit(store.url, report)
    return SeedRun(seed, regime, mae, tqc, report)
