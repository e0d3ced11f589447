"""The `study` flow: walk-forward segments under several settings and seeds, judged in one table.

    plan_segments ─┬─ wfo-segment (setting a, seed 0, segment 0) ─┐                 ┌─ (rows) ────────┐
                   ├─ wfo-segment (setting a, seed 1, segment 0) ─┼─ collect_reports ┤                 ├─ publish_study
                   └─ ... every setting x seed x segment        ─┘                 └─ stitch_settings ┘

Every run is an ordinary `wfo-segment` run (its seed and its setting's overrides are parameters), fanned
out as `full-wfo` fans out segments (local processes, or runs of the deployment on workers), so a rerun of
the same study is all cache hits. `stitch_settings` stitches each setting's test slices out of sample (the seed
ensemble's net Sharpe and its difference from buy & hold, with bootstrap intervals). `publish_study` writes
`study/<fingerprint>/table.csv` (one row per run) and `summary.csv` (one row per setting) to the artifact store
and shows both as the Prefect table artifacts `study-table` and `study-summary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from cryptorl import stages
from cryptorl.evaluation.summary import summarize_walk_forward
from cryptorl.hashing import fingerprint
from cryptorl.run_spec import RunSpec, pinned_profile
from cryptorl.storage import ArtifactRef, ArtifactStore
from cryptorl.study import (
    StudyRun,
    check_grid,
    complete_rows,
    stitched_columns,
    study_row,
    study_runs,
    summarize_settings,
    to_csv,
)
from flows.full_wfo import (
    SegmentOutcome,
    check_all_completed,
    local_task_runner,
    plan_segments,
    read_audit_reports,
    run_segments,
)

TABLE_KEY = "study-table"
SUMMARY_KEY = "study-summary"


@dataclass(frozen=True)
class StudyResult:
    """The study's table and summary: rows, and their CSVs in the artifact store."""

    fingerprint: str  # of the study's inputs: settings, runs, profile, timesteps, overrides, data content
    table_csv: ArtifactRef
    summary_csv: ArtifactRef
    rows: list[dict[str, Any]]  # one per (setting, seed, segment) run
    summary: list[dict[str, Any]]  # one per setting


@task(cache_policy=NO_CACHE)  # reads the runs of this study: never stale
def collect_reports(outcomes: list[SegmentOutcome]) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Each run's audit report and its URI ((None, None) where the run has none)."""
    return [next(iter(read_audit_reports(outcome)), (None, None)) for outcome in outcomes]


@task(cache_policy=NO_CACHE)
def stitch_settings(
    runs: list[StudyRun], reports: list[tuple[dict[str, Any] | None, str | None]], profile: str, bar: str
) -> dict[str, dict[str, Any]]:
    """Per setting, its runs' test slices stitched out of sample (cryptorl/evaluation): the ensemble's columns."""
    by_setting: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for run, (report, uri) in zip(runs, reports, strict=True):
        if report is not None and uri is not None:
            by_setting.setdefault(run.setting, []).append((report, uri))
    return {
        setting: stitched_columns(summarize_walk_forward([], found, profile, bar)[0].stitched)
        for setting, found in by_setting.items()
    }


@task(cache_policy=NO_CACHE)
def publish_study(
    store_url: str, key: str, rows: list[dict[str, Any]], stitched: dict[str, dict[str, Any]]
) -> StudyResult:
    """The table and the per-setting summary as CSVs under `study/<key>/` and as Prefect table artifacts."""
    store = ArtifactStore(store_url)
    table, summary = complete_rows(rows), summarize_settings(rows, stitched)
    table_csv, summary_csv = (
        store.write_bytes(f"study/{key}/{name}.csv", to_csv(content))
        for name, content in (("table", table), ("summary", summary))
    )
    create_table_artifact(
        table, key=TABLE_KEY, description=f"one row per (setting, seed, segment) run; CSV: {table_csv.uri}"
    )
    create_table_artifact(summary, key=SUMMARY_KEY, description=f"one row per setting; CSV: {summary_csv.uri}")
    return StudyResult(key, table_csv, summary_csv, table, summary)


@flow(name="study", log_prints=True, task_runner=local_task_runner())  # type: ignore[arg-type]  # (full_wfo.py)
def study(
    settings: dict[str, dict[str, Any]],
    segments: str = "all",
    spec: RunSpec = RunSpec(seeds=[0]),
    via_deployments: bool = False,
) -> StudyResult:
    """Run every setting x seed x segment as a `wfo-segment` run, then tabulate their audits.

    Args:
        settings: {name: {"STAGE.KEY": value}}, e.g. {"baseline": {}, "nodrop": {"train.top_quantiles_to_drop": 0}};
            each run's overrides are the spec's updated by its setting's
        segments: which segments: all, latest, 3, 0-3 or 0,2,5
        spec: what every run trains and where; each run trains one of its seeds (empty: the profile's seed)
        via_deployments: submit each run to the `wfo-segment` deployment (workers of the `gpu` pool)
    """
    spec = pinned_profile(spec)  # "default" resolved here, then the same profile for every run
    spec.store().check_reachable()  # before any run starts
    grid = check_grid(settings, spec.config)
    numbers = plan_segments(segments, spec.data_source, spec.config.data, spec.config.wfo)
    runs = study_runs(grid, spec.trained_seeds, numbers)
    outcomes = run_segments(
        {
            run.name: {
                "segment": run.segment,
                "promote_champion": False,  # research, not candidates
                "spec": spec.with_changes(overrides={**spec.overrides, **grid[run.setting]}, seeds=[run.seed]),
            }
            for run in runs
        },
        via_deployments,
    )
    data_sha256 = stages.source_ref(spec.data_source).sha256
    key = fingerprint(
        grid, [run.name for run in runs], spec.profile, spec.timesteps or None, spec.overrides, data_sha256
    )[:16]
    reports = collect_reports(outcomes)
    rows = [study_row(run, outcome.state, *found) for run, outcome, found in zip(runs, outcomes, reports, strict=True)]
    stitched = stitch_settings(runs, reports, spec.profile, spec.config.data.timeframe)
    result = publish_study(spec.store().url, key, rows, stitched)
    check_all_completed(outcomes)
    return result
