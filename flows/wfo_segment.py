"""The `wfo-segment` flow: the DAG of one walk-forward segment, read top to bottom.

    split_segment ─┬─ fit_hmm ──────┐                                                      ┐
                   └─ pretrain_mae ─┴─ train_tqc ── audit ── publish_audit (every run)     ┘ once per seed
                                                                        └── promote (the seeds together)

The split is shared; every seed fits its own HMM, pretrains its own MAE, trains and audits its own agent,
one seed after the other (training seeds the process-global RNGs, so two seeds sharing a process at once
would not be reproducible). Every task is cached on the content of its inputs, the seed included, so each
seed is its own cached run; `clean=True` recomputes them all. `promote` (never cached) lets the best healthy
seed replace the data source's champion if it beats it on this segment's test slice (cryptorl/champion/promotion.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow
from prefect.runtime import deployment, flow_run

from cryptorl import stages
from cryptorl.champion.promotion import Challenger, Decision
from cryptorl.config import Profile
from cryptorl.run_spec import RunSpec
from cryptorl.storage import ArtifactStore
from tasks.audit import audit, publish_audit
from tasks.caching import result_storage_for
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


@flow(name="wfo-segment", log_prints=True)
def wfo_segment(
    segment: int = 0, spec: RunSpec = RunSpec(), policy: str = "trained", promote_champion: bool = True
) -> SegmentRun:
    """Run one WFO segment end to end, every seed of `spec`, on its artifact store.

    Args:
        segment: the walk-forward segment number (`cryptorl segments` lists them with their dates)
        spec: what to train and where: profile ("default" is the worker's $CRYPTORL_PROFILE), config
            overrides, training steps, seeds, data file or URL, artifact store, clean
        policy: what the audit judges: trained (the agent), or a baseline such as flat, buy_and_hold,
            constant:0.85 or probe
        promote_champion: let the best healthy seed replace the data source's champion if it clears the
            promotion floor and beats it (a study's research runs pass false)
    """
    config = spec.config  # the profile, resolved once for the whole run
    store = spec.store()
    if is_top_level_run():  # a parent flow (or the command line) has already asked
        store.check_reachable()  # a dead store is one line now, not a failed task after the split and its retries
    options: dict[str, Any] = {"result_storage": result_storage_for(store), "refresh_cache": spec.clean}
    data_ref = stages.source_ref(spec.data_source)

    split = split_segment.with_options(**options)(
        store.url, data_ref, segment, config.data, config.features, config.wfo
    )
    provenance = stages.provenance(data_ref, config)
    runs = [seed_run(store, options, split, config, seed, policy, provenance) for seed in spec.trained_seeds]
    decision = None
    if promote_champion and policy == "trained":  # a baseline's audit is never a challenger
        decision = promote(
            store.url,
            [Challenger(data_ref, config, run.seed, split, run.regime, run.mae, run.tqc, run.audit) for run in runs],
        )
    return SegmentRun(segment, config.name, store.url, split, runs, decision)


def is_top_level_run() -> bool:
    """Whether this run must ask the store itself: not when it is a local subflow (its parent, in the same
    command, asked already), but when it runs a deployment (its worker's store may not be its parent's)."""
    return flow_run.parent_flow_run_id is None or deployment.id is not None


def seed_run(
    store: ArtifactStore,
    options: dict,
    split: stages.SegmentArtifacts,
    config: Profile,
    seed: int,
    policy: str,
    provenance: stages.Provenance,
) -> SeedRun:
    """The per-seed part of the DAG: HMM and MAE on the split, then the agent, its audit and its artifacts."""
    regime = fit_hmm.with_options(**options)(store.url, split, config.regime, seed)
    mae = pretrain_mae.with_options(**options)(store.url, split, config.mae, seed)
    tqc = train_tqc.with_options(**options)(store.url, split, regime, mae, config.mae, config.train, config.env, seed)
    report = audit.with_options(**options)(
        store.url, split, regime, mae, tqc, config.mae, config.train, config.env, seed, policy, provenance
    )
    publish_audit(store.url, report)
    return SeedRun(seed, regime, mae, tqc, report)
