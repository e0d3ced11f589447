"""The commands that run flows (`run`, `audit`, `wfo`, `study`): the run specification is parsed and checked
here, once, before any Prefect server starts; then the flow runs and its outcome is printed."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import pandas as pd

from cryptorl.audit.policies import parse_policy_spec
from cryptorl.audit.report import TABLE_COLUMNS, baseline_lines, headline_rows, run_line
from cryptorl.champion.registry import decisions
from cryptorl.config import SignalConfig
from cryptorl.data import dataset_name, load_bars
from cryptorl.errors import ArtifactNotFoundError
from cryptorl.evaluation.summary import BUY_AND_HOLD, sharpe_by_policy
from cryptorl.run_spec import RunSpec, select_segments
from cryptorl.storage import ArtifactStore, write_url
from cryptorl.study import check_grid, grid_from_cli, render_text
from cryptorl.wfo import Segment, check_warmup, coverage_line, get_segment, make_segments


def spec_from(args: argparse.Namespace) -> RunSpec:
    """The run specification of the command's flags, checked (profile, overrides, seeds, timesteps)."""
    return RunSpec.parse(
        profile=args.profile,
        overrides=args.overrides,
        timesteps=getattr(args, "timesteps", None),
        seeds=getattr(args, "seeds", None),
        data=args.data,
        storage=getattr(args, "storage", None),
        clean=getattr(args, "clean", False),
    )


def cmd_run(args: argparse.Namespace) -> int:
    spec, result, seconds = _run_segment(args, policy="trained")
    print(
        f"segment {result.segment} ({result.profile}) done in {seconds:.1f} s; "
        f"artifacts in {result.store_url}/segments/{result.segment}/"
    )
    _print_artifacts("split", result.split)
    for run in result.seeds:
        print(f"seed {run.seed}:")
        for stage, artifacts in (("hmm", run.regime), ("mae", run.mae), ("tqc", run.tqc), ("audit", run.audit)):
            _print_artifacts(stage, artifacts)
        _print_verdict(result.store_url, run.audit)
    if result.promotion is not None:
        print(f"promotion {result.promotion.outcome}: {result.promotion.reason}")
        _print_live_signal(result.store_url, spec.data_source)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    parse_policy_spec(args.policy)
    _, result, _ = _run_segment(args, policy=args.policy)
    [run] = result.seeds  # `audit` takes no --seeds: the profile's seed
    report = _print_verdict(result.store_url, run.audit)
    for row in headline_rows(report["metrics"]):
        print("  " + "  ".join(f"{column}={_cell(row.get(column))}" for column in TABLE_COLUMNS))
    if args.report_json:
        print(f"report.json copied to {write_url(args.report_json, json.dumps(report, indent=2).encode()).uri}")
    return 0


def _run_segment(args: argparse.Namespace, policy: str):
    """Check the inputs before Prefect starts (bad input is one line, not a failed flow run), then run the flow."""
    spec = spec_from(args)
    ohlcv = load_bars(spec.data_source, spec.config.data)
    segment = get_segment(ohlcv.index, spec.config.wfo, args.segment)
    print(segment.describe())
    _check_plan(spec, ohlcv.index, [segment])

    from flows.console import one_line_errors_on_console  # Prefect is imported only when a flow runs
    from flows.wfo_segment import wfo_segment

    one_line_errors_on_console()
    started = time.perf_counter()
    result = wfo_segment(segment=args.segment, spec=spec, policy=policy)
    return spec, result, time.perf_counter() - started


def _print_live_signal(store_url: str, data: str) -> None:
    """What `cryptorl signal` says now for the data source, on its newest bar however old (a historical file)."""
    from cryptorl.champion.live import compute_signal, signal_lines  # torch and SB3: only the commands that use them

    try:
        signal = compute_signal(ArtifactStore(store_url), data, config=SignalConfig(max_staleness_hours=float("inf")))
    except ArtifactNotFoundError as exc:  # no live champion: the reason is the line
        print(f"signal: {exc}")
        return
    for line in signal_lines(signal):
        print(f"signal: {line}")


def _print_artifacts(stage: str, artifacts: Any) -> None:
    for name, ref in vars(artifacts).items():
        if name not in ("segment", "verdict"):
            print(f"  {stage}.{name}: {getattr(ref, 'uri', ref)}")


def _print_verdict(store_url: str, audit: Any) -> dict:
    report = ArtifactStore(store_url).read_json(audit.report)
    print(f"verdict ({report['policy']}): {report['verdict'].upper()}")
    for reason in report["reasons"]:
        print(f"  - {reason}")
    for line in baseline_lines(report):
        print(line)
    print(f"report: {audit.report.uri}")
    return report


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_wfo(args: argparse.Namespace) -> int:
    spec = spec_from(args)
    numbers = _selected_segments(args.segments, spec)

    from flows.full_wfo import full_wfo, read_audit_reports  # Prefect is imported only when a flow runs

    started, at = time.perf_counter(), pd.Timestamp.now(tz="UTC")
    outcomes = full_wfo(segments=",".join(map(str, numbers)), spec=spec, via_deployments=args.via_deployments)
    decided = _decisions_since(spec, at)
    for outcome in outcomes:
        decision = decided.get(outcome.segment, "no promotion decision logged")
        reports: list[dict[str, Any]] = [report for report, _ in read_audit_reports(outcome)] or [{}]
        for report in reports:
            label = f"segment {outcome.segment}" + (f" seed {report['seed']}" if report else "")
            sharpes = sharpe_by_policy(report.get("metrics", []))
            verdict, policy = report.get("verdict"), report.get("policy", "")
            print(run_line(label, outcome.state, verdict, sharpes.get(policy), sharpes.get(BUY_AND_HOLD), decision))
    print(
        f"{len(outcomes)} segments done in {time.perf_counter() - started:.1f} s; "
        "summary: Prefect artifact 'wfo-summary'"
    )
    return 0


def _decisions_since(spec: RunSpec, at: pd.Timestamp) -> dict[int, str]:
    """Each segment's promotion decision logged since `at` ("accepted: reason"), by segment number."""
    logged, _ = decisions(spec.store(), dataset_name(spec.data_source))
    found = {}
    for decision in logged:
        if pd.Timestamp(decision["at"]) >= at and decision.get("candidates"):
            found[int(decision["candidates"][0]["segment"])] = f"promotion {decision['outcome']}: {decision['reason']}"
    return found


def cmd_study(args: argparse.Namespace) -> int:
    spec = spec_from(args)  # --profile, --set, --seeds and --timesteps are checked first
    grid = check_grid(grid_from_cli(args.settings, args.grid), spec.config)
    numbers = _selected_segments(args.segments, spec)

    from flows.study import study  # Prefect is imported only when a flow runs

    started = time.perf_counter()
    result = study(settings=grid, segments=",".join(map(str, numbers)), spec=spec, via_deployments=args.via_deployments)
    print(
        f"{len(result.rows)} runs ({len(grid)} settings x {len(spec.trained_seeds)} seeds x {len(numbers)} "
        f"segments) done in {time.perf_counter() - started:.1f} s"
    )
    for row in result.rows:
        print(
            run_line(
                f"{row['setting']} seed {row['seed']} segment {row['segment']}",
                row["state"],
                row["verdict"],
                row["sharpe_trained"],
                row["sharpe_buy_and_hold"],
                "not a promotion candidate (a study run)",
            )
        )
    print(render_text(result.summary))
    print(f"table: {result.table_csv.uri}  (Prefect artifact 'study-table')")
    print(f"summary: {result.summary_csv.uri}  (Prefect artifact 'study-summary')")
    return 0


def _selected_segments(selection: str, spec: RunSpec) -> list[int]:
    """The segment numbers `--segments` names, each printed with its dates; bad input fails before any flow run."""
    ohlcv = load_bars(spec.data_source, spec.config.data)

    from flows.console import one_line_errors_on_console  # imports Prefect: only commands that run a flow get here

    one_line_errors_on_console()
    segments = make_segments(ohlcv.index, spec.config.wfo)
    numbers = select_segments(selection, len(segments))
    for number in numbers:
        print(segments[number].describe())
    print(coverage_line(ohlcv.index, spec.config.wfo))
    _check_plan(spec, ohlcv.index, [segments[number] for number in numbers])
    return numbers


def _check_plan(spec: RunSpec, index: pd.DatetimeIndex, planned: list[Segment]) -> None:
    """What the plan can tell before a flow and its Prefect server start (seconds, not a failed task a minute
    later): each planned segment's feature warm-up, by the split stage's own rule, then the store, asked once
    for the whole command (the flows do not ask again)."""
    for segment in planned:
        check_warmup(index, segment, spec.data_source)
    spec.store().check_reachable()
