"""`cryptorl` command line. Bad input prints one line `cryptorl: error: ...` and exits 2, no traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from cryptorl.audit.policies import VALID_SPECS, parse_policy_spec
from cryptorl.audit.report import TABLE_COLUMNS, baseline_lines, headline_rows
from cryptorl.config import DEFAULT_DATA_PATH, Profile, SignalConfig, get_profile, with_overrides
from cryptorl.data import append_bars, dataset_name, load_bars, load_ohlcv_with_report
from cryptorl.errors import ArtifactNotFoundError, ConfigError, CryptoRLError
from cryptorl.registry import champion_lines
from cryptorl.storage import ArtifactStore, write_url
from cryptorl.study import SETTING_SYNTAX, check_grid, grid_from_cli, parse_seeds, render_text
from cryptorl.tensorboard_sync import TENSORBOARD_HOST, default_cache_dir, sync_tensorboard, tensorboard_command
from cryptorl.wfo import Segment, get_segment, make_segments

EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except CryptoRLError as exc:
        print(f"cryptorl: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cryptorl", description="Walk-forward RL crypto trading: train and audit.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="market data tools").add_subparsers(dest="data_command", required=True)
    validate = data.add_parser("validate", help="validate an OHLCV file and print a one-line summary")
    validate.add_argument("path", help="parquet/CSV/JSON file or fsspec URL")
    _add_bar_args(validate, "longest outage to fill (bars, default 48)")
    _set_handler(validate, _cmd_data_validate)

    segments = commands.add_parser("segments", help="list the walk-forward segments with their date ranges")
    _add_config_args(segments)
    _set_handler(segments, _cmd_segments)

    run = commands.add_parser("run", help="run one WFO segment (the Prefect segment flow)")
    _add_segment_run_args(run)
    _add_seeds_arg(run)
    _set_handler(run, _cmd_run)

    audit = commands.add_parser("audit", help="audit a segment's agent or a baseline: verdict and metrics table")
    _add_segment_run_args(audit)
    audit.add_argument("--policy", default="trained", help=f"what to judge: {VALID_SPECS}")
    audit.add_argument("--report-json", default=None, metavar="PATH", help="also write report.json here")
    _set_handler(audit, _cmd_audit)
    _add_orchestration_commands(commands, data)
    _add_live_commands(commands)
    return parser


def _add_segment_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segment", type=int, default=0, help="segment number (see `cryptorl segments`)")
    _add_flow_args(parser)


def _add_seeds_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", default=None, metavar="0,1,2",
                        help="comma-separated seeds, each its own cached run on the shared split (default: the profile's)")


def _seeds_from(args: argparse.Namespace) -> list[int] | None:
    """--seeds checked before any flow starts; None keeps the profile's seed."""
    return None if getattr(args, "seeds", None) is None else parse_seeds(args.seeds)


def _add_flow_args(parser: argparse.ArgumentParser) -> None:
    """What every segment flow run takes: config, store, --clean, --timesteps."""
    _add_config_args(parser)
    parser.add_argument("--storage", default=None, help="artifact store URL (default $CRYPTORL_STORAGE or ./artifacts)")
    parser.add_argument("--clean", action="store_true", help="recompute every task, ignoring cached results")
    parser.add_argument("--timesteps", type=int, default=None, help="TQC training steps (overrides the profile)")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="smoke",
                        help="smoke (CI/demo), cpu (one segment in ~10 min on 2 cores), gpu (the seed's scale with the "
                             "new training levers) or seed (the seed's exact configuration)")
    parser.add_argument("--data", default=str(DEFAULT_DATA_PATH), help="OHLCV file or URL (default: bundled BTC/USDT 1h)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="override one config value, e.g. --set regime.n_iter=100 (repeatable)")


def _set_handler(parser: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int]) -> None:
    parser.set_defaults(handler=handler)


def _profile_from(args: argparse.Namespace) -> Profile:
    overrides = {"train.total_timesteps": str(args.timesteps)} if getattr(args, "timesteps", None) else {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not STAGE.KEY=VALUE: write e.g. --set regime.n_states=3")
        overrides[key.strip()] = value.strip()
    return with_overrides(get_profile(args.profile), overrides)


def _add_bar_args(parser: argparse.ArgumentParser, gap_help: str) -> None:
    parser.add_argument("--bar", default="1h", help="the file's bar size, checked against its timestamps (default 1h)")
    parser.add_argument("--max-gap-fill-bars", type=_non_negative_int, default=48, metavar="N", help=gap_help)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {least}")
    return value


def _cmd_data_validate(args: argparse.Namespace) -> int:
    _, report = load_ohlcv_with_report(args.path, bar=args.bar, max_gap_fill_bars=args.max_gap_fill_bars)
    print(report.summary())
    return 0


def _cmd_segments(args: argparse.Namespace) -> int:
    profile = _profile_from(args)
    ohlcv = load_bars(args.data, profile.data)
    for segment in make_segments(ohlcv.index, profile.wfo):
        print(segment.describe())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    result, seconds = _run_segment(args, policy="trained")
    print(f"segment {result.segment} ({result.profile}) done in {seconds:.1f} s; "
          f"artifacts in {result.store_url}/segments/{result.segment}/")
    _print_artifacts("split", result.split)
    for run in result.seeds:
        print(f"seed {run.seed}:")
        for stage, artifacts in (("hmm", run.regime), ("mae", run.mae), ("tqc", run.tqc), ("audit", run.audit)):
            _print_artifacts(stage, artifacts)
        _print_verdict(result.store_url, run.audit)
    if result.promotion is not None:
        print(f"promotion {result.promotion.outcome}: {result.promotion.reason}")
        _print_live_signal(result.store_url, args.data)
    return 0


def _print_live_signal(store_url: str, data: str) -> None:
    """What `cryptorl signal` says now for the data source, on its newest bar however old (a historical file)."""
    from cryptorl.live import compute_signal, signal_lines  # torch and SB3: only the commands that use them

    try:
        signal = compute_signal(ArtifactStore(store_url), data, config=SignalConfig(max_staleness_hours=float("inf")))
    except ArtifactNotFoundError as exc:  # no live champion: the reason is the line
        print(f"signal: {exc}")
        return
    for line in signal_lines(signal):
        print(f"signal: {line}")


def _print_artifacts(stage: str, artifacts) -> None:
    for name, ref in vars(artifacts).items():
        if name not in ("segment", "verdict"):
            print(f"  {stage}.{name}: {getattr(ref, 'uri', ref)}")


def _cmd_audit(args: argparse.Namespace) -> int:
    parse_policy_spec(args.policy)
    result, _ = _run_segment(args, policy=args.policy)
    [run] = result.seeds  # `audit` takes no --seeds: the profile's seed
    report = _print_verdict(result.store_url, run.audit)
    for row in headline_rows(report["metrics"]):
        print("  " + "  ".join(f"{column}={_cell(row.get(column))}" for column in TABLE_COLUMNS))
    if args.report_json:
        print(f"report.json copied to {write_url(args.report_json, json.dumps(report, indent=2).encode()).uri}")
    return 0


def _run_segment(args: argparse.Namespace, policy: str):
    """Check the inputs before Prefect starts (bad input is one line, not a failed flow run), then run the flow."""
    profile = _profile_from(args)
    seeds = _seeds_from(args)
    ohlcv = load_bars(args.data, profile.data)
    spec = get_segment(ohlcv.index, profile.wfo, args.segment)
    print(spec.describe())
    _check_plan(args, ohlcv.index, [spec])

    from flows.console import one_line_errors_on_console  # Prefect is imported only when a flow runs
    from flows.wfo_segment import wfo_segment

    one_line_errors_on_console()
    started = time.perf_counter()
    result = wfo_segment(segment=args.segment, profile=args.profile, data=args.data, storage=args.storage,
                         clean=args.clean, timesteps=args.timesteps, policy=policy,
                         overrides=dict(o.split("=", 1) for o in args.overrides), seeds=seeds)
    return result, time.perf_counter() - started


def _print_verdict(store_url: str, audit) -> dict:
    report = ArtifactStore(store_url).read_json(audit.report)
    print(f"verdict ({report['policy']}): {report['verdict'].upper()}")
    for reason in report["reasons"]:
        print(f"  - {reason}")
    for line in baseline_lines(report):
        print(line)
    print(f"report: {audit.report.uri}")
    return report


def _cell(value) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


# -- orchestration: many segments, growing the data, TensorBoard ------------------------------------------

def _add_orchestration_commands(commands: argparse._SubParsersAction, data: argparse._SubParsersAction) -> None:
    what = ("add the bars after a dataset's last one (atomic rewrite under a lock, every column, the file's format "
            "and mode kept; bars older than its last one are refused unless they are already in it, identical)")
    append = data.add_parser("append", help=what, description=what)
    append.add_argument("new", help="file or URL holding the new bars (parquet/CSV/JSON)")
    append.add_argument("--into", required=True, metavar="DATASET", help="dataset to grow (parquet/CSV, path or URL)")
    append.add_argument("--new-columns", action="store_true",
                        help="keep columns the new bars have and the dataset lacks (its older rows get blanks); "
                             "without it such columns are refused")
    _add_bar_args(append, "longest outage the merged dataset may hold (bars, default 48)")
    _set_handler(append, _cmd_data_append)

    wfo = commands.add_parser("wfo", help="run many WFO segments in parallel (the Prefect full-wfo flow) and summarize")
    wfo.add_argument("--segments", default="all", help="all, latest, 3, 0-3 or 0,2,5 (default: all)")
    _add_flow_args(wfo)
    _add_seeds_arg(wfo)
    wfo.add_argument("--via-deployments", action="store_true",
                     help="submit each segment to the `wfo-segment` deployment (workers of the `gpu` pool)")
    _set_handler(wfo, _cmd_wfo)

    study = commands.add_parser("study", help="settings x seeds x segments (cached segment runs), one table",
                                description="Run every setting x seed x segment as a cached segment run; write one "
                                "row per run and one per setting (Prefect artifacts study-table and study-summary, "
                                "study/<fingerprint>/{table,summary}.csv in the store). Example: --setting baseline: "
                                "--setting nodrop:train.top_quantiles_to_drop=0 --setting "
                                "ent:train.ent_coef=auto_0.01,train.gamma=0.9 --seeds 0,1 --segments 0-5. --setting "
                                "and --grid combine; --set applies to every setting (a setting's own value wins).")
    study.add_argument("--setting", dest="settings", action="append", default=[], metavar="NAME:OVERRIDES",
                       help=f"one setting (repeatable): {SETTING_SYNTAX}; a value may hold commas (net_arch=64,64)")
    study.add_argument("--grid", default=None, metavar="FILE.json",
                       help='settings as a JSON object {"NAME": {"STAGE.KEY": VALUE, ...}, ...} (path or URL)')
    study.add_argument("--seeds", default="0", help="comma-separated seeds, each replacing the profile's (default 0)")
    study.add_argument("--segments", default="all", help="all, latest, 3, 0-3 or 0,2,5 (default: all)")
    _add_flow_args(study)
    study.add_argument("--via-deployments", action="store_true",
                       help="submit each run to the `wfo-segment` deployment (workers of the `gpu` pool)")
    _set_handler(study, _cmd_study)

    tensorboard = commands.add_parser("tensorboard", help="sync TensorBoard logs from the store and start TensorBoard")
    tensorboard.add_argument("--segment", type=int, default=None, help="segment number (default: all segments)")
    tensorboard.add_argument("--storage", default=None, help="artifact store URL (default $CRYPTORL_STORAGE)")
    tensorboard.add_argument("--cache-dir", default=None, help="local copy of the logs (default ~/.cache/cryptorl/...)")
    tensorboard.add_argument("--port", type=int, default=6006, help="TensorBoard port on 127.0.0.1 (default 6006)")
    tensorboard.add_argument("--no-launch", action="store_true", help="only sync the logs, do not start TensorBoard")
    _set_handler(tensorboard, _cmd_tensorboard)


def _cmd_data_append(args: argparse.Namespace) -> int:
    print(append_bars(args.new, args.into, bar=args.bar, max_gap_fill_bars=args.max_gap_fill_bars,
                      new_columns=args.new_columns).summary())
    return 0


def _cmd_wfo(args: argparse.Namespace) -> int:
    profile = _profile_from(args)
    seeds = _seeds_from(args)
    numbers = _selected_segments(args, profile)

    from flows.full_wfo import full_wfo  # Prefect is imported only when a flow runs

    started = time.perf_counter()
    outcomes = full_wfo(segments=numbers, profile=args.profile, timesteps=args.timesteps, data=args.data,
                        storage=args.storage, clean=args.clean, via_deployments=args.via_deployments,
                        overrides=dict(o.split("=", 1) for o in args.overrides), seeds=seeds)
    print(f"{len(outcomes)} segments done in {time.perf_counter() - started:.1f} s; "
          "summary: Prefect artifact 'wfo-summary'")
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    profile = _profile_from(args)  # --profile, --set and --timesteps are checked first
    overrides = dict(o.split("=", 1) for o in args.overrides)
    grid = check_grid(grid_from_cli(args.settings, args.grid), args.profile, overrides)
    seeds = parse_seeds(args.seeds)
    numbers = _selected_segments(args, profile)

    from flows.study import study  # Prefect is imported only when a flow runs

    started = time.perf_counter()
    result = study(settings=grid, seeds=seeds, segments=numbers, profile=args.profile, timesteps=args.timesteps,
                   data=args.data, storage=args.storage, clean=args.clean, via_deployments=args.via_deployments,
                   overrides=overrides)
    print(f"{len(result.rows)} runs ({len(grid)} settings x {len(seeds)} seeds x {len(numbers)} segments) done in "
          f"{time.perf_counter() - started:.1f} s")
    print(render_text(result.summary))
    print(f"table: {result.table_csv.uri}  (Prefect artifact 'study-table')")
    print(f"summary: {result.summary_csv.uri}  (Prefect artifact 'study-summary')")
    return 0


def _selected_segments(args: argparse.Namespace, profile: Profile) -> list[int]:
    """The segment numbers `--segments` names, each printed with its dates; bad input fails before any flow run."""
    ohlcv = load_bars(args.data, profile.data)

    from flows.console import one_line_errors_on_console  # imports Prefect: only commands that run a flow get here
    from flows.full_wfo import select_segments

    one_line_errors_on_console()
    segments = make_segments(ohlcv.index, profile.wfo)
    numbers = select_segments(args.segments, len(segments))
    for number in numbers:
        print(segments[number].describe())
    _check_plan(args, ohlcv.index, [segments[number] for number in numbers])
    return numbers


def _check_plan(args: argparse.Namespace, index: pd.DatetimeIndex, planned: list[Segment]) -> None:
    """What the plan can tell before a flow and its Prefect server start (seconds, not a failed task a minute
    later): each planned segment's feature warm-up, by the split stage's own rule, then the store, asked once."""
    from cryptorl.stages.split import check_warmup  # the stages import SB3: only commands that run a flow get here

    for spec in planned:
        check_warmup(index, spec, args.data)
    ArtifactStore(args.storage).check_reachable()


def _cmd_tensorboard(args: argparse.Namespace) -> int:
    store = ArtifactStore(args.storage)
    local_dir = Path(args.cache_dir).expanduser().resolve() if args.cache_dir else default_cache_dir(store)
    print(sync_tensorboard(store, local_dir, args.segment).summary())
    command = tensorboard_command(local_dir, args.port)
    if not args.no_launch:
        print(f"TensorBoard: http://{TENSORBOARD_HOST}:{args.port}/ (Ctrl-C stops it)", flush=True)
        os.execv(command[0], command)  # TensorBoard replaces this process, so signals reach it directly
    print("start it with: " + " ".join(command))
    return 0


# -- the live model: the champion and the position to hold now ---------------------------------------------

def _add_live_commands(commands: argparse._SubParsersAction) -> None:
    champion = commands.add_parser("champion", help="show the live model of a data source, its history and decisions")
    _add_registry_args(champion)
    champion.add_argument("--decisions", type=_positive_int, default=10, metavar="N",
                          help="recent decisions shown (default 10)")
    _set_handler(champion, _cmd_champion)

    signal = commands.add_parser("signal", help="the champion's target position on the newest complete bar",
                                 description="Load the champion of the data source, compute the causal features and "
                                 "the HMM forward filter up to the newest complete bar, and print that bar, the "
                                 "target position in [-1, 1] at w_cost 1, the regime probabilities and the "
                                 "champion's identity and age.")
    _add_registry_args(signal)
    signal.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    signal.add_argument("--max-staleness", type=float, default=SignalConfig().max_staleness_hours, metavar="HOURS",
                        help="refuse a newest complete bar that closed longer ago than this (default "
                             f"{SignalConfig().max_staleness_hours:g}; inf for a historical file)")
    signal.add_argument("--position", type=float, default=None, metavar="X",
                        help="the position you hold now, in [-1, 1] (default: the champion's own simulated path)")
    _set_handler(signal, _cmd_signal)


def _add_registry_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=str(DEFAULT_DATA_PATH),
                        help="OHLCV file or URL; its name selects the registry (default: bundled BTC/USDT 1h)")
    parser.add_argument("--storage", default=None, help="artifact store URL (default $CRYPTORL_STORAGE or ./artifacts)")


def _cmd_champion(args: argparse.Namespace) -> int:
    lines = champion_lines(ArtifactStore(args.storage), dataset_name(args.data), pd.Timestamp.now(tz="UTC"),
                           args.decisions)
    print("\n".join(lines))
    return 0


def _cmd_signal(args: argparse.Namespace) -> int:
    from cryptorl.live import compute_signal, signal_lines  # torch and SB3: only this command needs them

    signal = compute_signal(ArtifactStore(args.storage), args.data, held=args.position,
                            config=SignalConfig(max_staleness_hours=args.max_staleness))
    print(json.dumps(signal.to_json(), indent=2) if args.json else "\n".join(signal_lines(signal)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
