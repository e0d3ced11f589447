"""The `full-wfo` flow: many walk-forward segments at once, then one cross-segment summary.

    plan_segments ─┬─ wfo-segment 0 ─┐
                   ├─ wfo-segment 1 ─┼─ summarize (markdown artifact `wfo-summary`)
                   └─ ...           ─┘

The summary (cryptorl/evaluation) has one row per segment and seed, the trained agent's spread across
seeds, and the segments' test slices stitched into one out-of-sample series per policy with bootstrap
intervals and the deflated Sharpe ratio; it is also stored under `wfo/<fingerprint>/` in the artifact store.

Locally every segment is a subflow in its own process (`ProcessPoolTaskRunner`): training seeds the
process-global RNGs, so two segments sharing a process would not be reproducible. With
`via_deployments` every segment is a run of the `wfo-segment` deployment instead, so N workers train N
segments at once. Either way a segment's audit report is found through its flow run's `audit` task,
whose result lives in the result storage of the shared artifact store. `run_segments` and
`local_task_runner` are that fan-out; the `study` flow runs its (setting, seed, segment) runs through them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import torch
from prefect import flow, get_client, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import get_current_settings
from prefect.task_runners import ProcessPoolTaskRunner

from cryptorl.config import DataConfig, WFOConfig
from cryptorl.data import load_bars
from cryptorl.evaluation.publish import publish_summary, summary_store
from cryptorl.evaluation.summary import COMPLETED, run_rows, summarize_walk_forward
from cryptorl.run_spec import RunSpec, pinned_profile, select_segments
from cryptorl.storage import read_url
from cryptorl.wfo import coverage_line, make_segments

SEGMENT_DEPLOYMENT = "wfo-segment/wfo-segment"
SUMMARY_KEY = "wfo-summary"
# Local parallelism: Prefect's own setting, else one process per core. Each process gets its share of the
# cores: torch's default (every core in every process) oversubscribes the CPU and trains many times slower.
LOCAL_PROCESSES = get_current_settings().tasks.runner.process_pool_max_workers or os.cpu_count() or 1
THREADS_PER_PROCESS = max(1, (os.cpu_count() or 1) // LOCAL_PROCESSES)
POLL_SECONDS = 5.0  # how often the parent asks the server about the segment runs it submitted


@dataclass(frozen=True)
class SegmentOutcome:
    """How one segment's flow run ended."""

    segment: int
    flow_run_id: UUID
    state: str  # final state name: Completed, Failed, Crashed, Cancelled


@task(cache_policy=NO_CACHE)  # the data may have grown since the last run: always read it again
def plan_segments(segments: str, data: str, data_config: DataConfig, wfo_config: WFOConfig) -> list[int]:
    """The segment numbers `segments` names among those the data allows."""
    ohlcv = load_bars(data, data_config)
    return select_segments(segments, len(make_segments(ohlcv.index, wfo_config)))


@task(cache_policy=NO_CACHE)  # reads the data again, like plan_segments
def coverage(data: str, data_config: DataConfig, wfo_config: WFOConfig) -> str:
    """What `latest` trains and the bars it leaves idle (cryptorl/wfo.py `coverage_line`)."""
    return coverage_line(load_bars(data, data_config).index, wfo_config)


def local_task_runner() -> ProcessPoolTaskRunner:
    """One process per local segment run, each with its share of the cores. (Prefect 3.9 types a flow's
    `task_runner` as one of PrefectFuture, which ProcessPoolTaskRunner's futures are not: hence the flows'
    `type: ignore[arg-type]`.)"""
    return ProcessPoolTaskRunner(
        max_workers=LOCAL_PROCESSES, initializer=torch.set_num_threads, initargs=(THREADS_PER_PROCESS,)
    )


def run_segments(runs: dict[str, dict[str, Any]], via_deployments: bool) -> list[SegmentOutcome]:
    """One `wfo-segment` run per {run name: its parameters}, in that order; returns when all have finished.

    Locally each run is a subflow in a process of the calling flow's task runner (`local_task_runner`);
    with `via_deployments` a run of the `wfo-segment` deployment on the pool's workers.
    """
    if via_deployments:
        return run_on_workers(runs)
    futures = [run_segment.submit(name, params) for name, params in runs.items()]
    return [SegmentOutcome(*future.result()) for future in futures]


@task(task_run_name="{name}", cache_policy=NO_CACHE)
def run_segment(name: str, params: dict[str, Any]) -> tuple[int, UUID, str]:
    """One segment as a subflow, in a process of the flow's task runner: (segment, flow run id, final state).

    Prefect ships this function by value to the pool process, so it imports the flow there: shipped by
    value, the tasks would lose their source code, which their cache keys hash.
    """
    from flows.wfo_segment import wfo_segment

    state = wfo_segment.with_options(flow_run_name=name)(**params, return_state=True)
    assert state.state_details.flow_run_id is not None  # a flow run's final state names its run
    return params["segment"], state.state_details.flow_run_id, state.name or state.type.value


def run_on_workers(runs: dict[str, dict[str, Any]]) -> list[SegmentOutcome]:
    """Submit one `wfo-segment` deployment run per entry, then wait until every run has finished."""
    submitted = [  # called from a synchronous flow: run_deployment returns the FlowRun itself
        cast(FlowRun, run_deployment(SEGMENT_DEPLOYMENT, timeout=0, flow_run_name=name, parameters=jsonable(params)))
        for name, params in runs.items()
    ]
    with get_client(sync_client=True) as client:
        while True:
            current = [client.read_flow_run(run.id) for run in submitted]
            if all(run.state is not None and run.state.is_final() for run in current):
                return [
                    SegmentOutcome(params["segment"], run.id, run.state.name if run.state and run.state.name else "")
                    for params, run in zip(runs.values(), current, strict=True)
                ]
            time.sleep(POLL_SECONDS)


def jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """A run's parameters as the JSON a deployment run takes (the run specification as its fields)."""
    return {key: value.model_dump() if isinstance(value, RunSpec) else value for key, value in params.items()}


def check_all_completed(outcomes: list[SegmentOutcome]) -> None:
    """Fail the calling flow, naming every segment run that did not complete."""
    failed = [o for o in outcomes if o.state != COMPLETED]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(outcomes)} segment runs did not complete: "
            + ", ".join(f"segment {o.segment} {o.state} (flow run {o.flow_run_id})" for o in failed)
        )


def audit_report_uris(flow_run_id: UUID) -> list[str]:
    """The `report.json` URIs of a segment run's completed `audit` tasks (their persisted results), one per seed."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [
        run.state.result().report.uri
        for run in task_runs
        if run.name.rsplit("-", 1)[0] == "audit" and run.state is not None and run.state.is_completed()
    ]


def read_audit_reports(outcome: SegmentOutcome) -> list[tuple[dict[str, Any], str]]:
    """A segment run's audit reports and their URIs, by seed; none when the run did not complete."""
    uris = audit_report_uris(outcome.flow_run_id) if outcome.state == COMPLETED else []
    return sorted(((json.loads(read_url(uri)), uri) for uri in uris), key=lambda pair: pair[0].get("seed", 0))


def run_url(outcome: SegmentOutcome) -> str | None:
    """The segment run's page in the Prefect UI, when the UI's URL is known."""
    ui_url = get_current_settings().ui_url
    return f"{ui_url}/runs/flow-run/{outcome.flow_run_id}" if ui_url else None


@task(cache_policy=NO_CACHE)
def summarize(outcomes: list[SegmentOutcome], profile: str, storage: str | None, bar: str) -> str:
    """The walk-forward summary (cryptorl/evaluation): stored under `wfo/<fingerprint>/`, shown as `wfo-summary`."""
    per_run = [read_audit_reports(outcome) for outcome in outcomes]  # each run's reports, one per seed
    runs = [
        row
        for outcome, found in zip(outcomes, per_run, strict=True)
        for row in run_rows(outcome.segment, outcome.state, run_url(outcome), found)
    ]
    reports = [report for found in per_run for report in found]
    summary, stitched = summarize_walk_forward(runs, reports, profile, bar)
    published = publish_summary(summary_store(storage, reports), summary, stitched)
    create_markdown_artifact(
        published.markdown,
        key=SUMMARY_KEY,
        description=f"Walk-forward runs, stitched out-of-sample series, bootstrap intervals "
        f"and DSR; JSON: {published.refs['summary.json'].uri}",
    )
    return published.markdown


@flow(name="full-wfo", log_prints=True, task_runner=local_task_runner())  # type: ignore[arg-type]  # local_task_runner
def full_wfo(segments: str = "all", spec: RunSpec = RunSpec(), via_deployments: bool = False) -> list[SegmentOutcome]:
    """Run WFO segments in parallel (local processes, or `wfo-segment` runs on workers) and summarize them.

    Local parallelism is `PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS` (default: the CPU count).

    Args:
        segments: which segments: all, latest, 3, 0-3 or 0,2,5 (combinable: 0-3,7)
        spec: what every segment run trains and where (as in `wfo-segment`); every segment trains every seed
        via_deployments: submit each segment to the `wfo-segment` deployment (workers of the `gpu` pool)
            instead of running it in a local process; an empty data or storage then means the worker's
    """
    spec = pinned_profile(spec)  # "default" resolved here, then the same profile for every segment
    spec.store().check_reachable()  # before any segment starts
    numbers = plan_segments(segments, spec.data_source, spec.config.data, spec.config.wfo)
    outcomes = run_segments({f"segment-{n}": {"segment": n, "spec": spec} for n in numbers}, via_deployments)
    summarize(outcomes, spec.config.name, spec.storage or None, spec.config.data.timeframe)
    check_all_completed(outcomes)
    return outcomes
