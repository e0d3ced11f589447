from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from cryptorl import stages
from cryptorl.audit.report import TABLE_COLUMNS
from cryptorl.config import EnvConfig, MAEConfig, TrainConfig
from cryptorl.storage import ArtifactStore
from tasks.caching import content_cache_key


@task(cache_key_fn=content_cache_key(*stages.audit.CODE_MODULES), persist_result=True)
def audit(
    store_url: str,
    split: stages.SegmentArtifacts,
    regime: stages.RegimeArtifacts,
    mae: stages.MAEArtifacts,
    tqc: stages.TQCArtifacts,
    mae_config: MAEConfig,
    train_config: TrainConfig,
    env_config: EnvConfig,
    seed: int,
    policy: str = "trained",
    provenance: stages.Provenance | None = None,
) -> stages.AuditArtifacts:
    """Backtest + policy-collapse diagnostics on the test slice, and the verdict; records the trained agent's trial.

    `provenance` counts in the cache key by content (the data's sha256, not its path), so an audit served from
    the cache was recorded when it ran.
    """
    return stages.audit_segment(
        ArtifactStore(store_url),
        split,
        regime,
        mae,
        tqc,
        mae_config,
        train_config,
        env_config,
        seed,
        policy,
        provenance,
    )


@task
def publish_audit(store_url: str, audit: stages.AuditArtifacts) -> str:
    """Show the audit in the Prefect UI (every run, also when the audit itself was cached).

    Keys are stable per segment (`segment-<n>-audit`, `-metrics`, `-model`, `-plot-*`), so the UI keeps
    each segment's history. Returns the report's URI.
    """
    store = ArtifactStore(store_url)
    report = store.read_json(audit.report)
    prefix = f"segment-{audit.segment}"
    create_markdown_artifact(
        key=f"{prefix}-audit",
        markdown=store.read_bytes(audit.markdown).decode(),
        description=f"verdict: {report['verdict']}",
    )
    create_table_artifact(
        key=f"{prefix}-metrics",
        table=[{c: row.get(c) for c in TABLE_COLUMNS} for row in report["metrics"]],
        description="test-slice metrics per policy and w_cost",
    )
    create_link_artifact(key=f"{prefix}-report", link=audit.report.uri, link_text="report.json")
    for name, uri in {**report["links"], **{f"plot-{n}": u for n, u in report["plots"].items()}}.items():
        create_link_artifact(key=f"{prefix}-{name.replace('_', '-')}", link=uri, link_text=name)
    return audit.report.uri
