"""`cryptorl` command line. Bad input prints one line `cryptorl: error: ...` and exits 2, no traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from cli.runs import cmd_audit, cmd_run, cmd_study, cmd_wfo, spec_from
from cryptorl.audit.policies import VALID_SPECS
from cryptorl.champion.registry import champion_lines
from cryptorl.config import DEFAULT_DATA_PATH, SignalConfig
from cryptorl.data import append_bars, dataset_name, load_bars, load_ohlcv_with_report
from cryptorl.errors import ConfigError, CryptoRLError
from cryptorl.run_spec import SEGMENTS_SYNTAX, RunSpec
from cryptorl.storage import ArtifactStore
from cryptorl.study import SETTING_SYNTAX
from cryptorl.tensorboard_sync import TENSORBOARD_HOST, default_cache_dir, sync_tensorboard, tensorboard_command
from cryptorl.wfo import coverage_line, make_segments, warmup_shortfall

EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _note_line  # a deprecation note is one line too
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except CryptoRLError as exc:
        print(f"cryptorl: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _note_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"cryptorl: note: {message}\n"


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
    _set_handler(run, cmd_run)

    audit = commands.add_parser("audit", help="audit a segment's agent or a baseline: verdict and metrics table")
    _add_segment_run_args(audit)
    audit.add_argument("--policy", default="trained", help=f"what to judge: {VALID_SPECS}")
    audit.add_argument("--report-json", default=None, metavar="PATH", help="also write report.json here")
    _set_handler(audit, cmd_audit)
    _add_orchestration_commands(commands, data)
    _add_live_commands(commands)
    return parser


def _add_segment_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segment", type=int, default=0, help="segment number (see `cryptorl segments`)")
    _add_flow_args(parser)


def _add_seeds_arg(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument("--seeds", default=default, metavar="0,1,2", help="comma-separated " + _described("seeds"))


def _add_fan_out_args(parser: argparse.ArgumentParser, unit: str, seeds_default: str | None) -> None:
    """What a command running many segment runs takes: --segments, the flow args, --seeds, --via-deployments."""
    parser.add_argument("--segments", default="all", help=f"{SEGMENTS_SYNTAX} (default: all)")
    _add_flow_args(parser)
    _add_seeds_arg(parser, default=seeds_default)
    parser.add_argument(
        "--via-deployments",
        action="store_true",
        help=f"submit each {unit} to the `wfo-segment` deployment (workers of the `gpu` pool)",
    )


def _add_flow_args(parser: argparse.ArgumentParser) -> None:
    """What every segment flow run takes: config, store, --clean, --timesteps (the fields of a `RunSpec`)."""
    _add_config_args(parser)
    _add_storage_arg(parser)
    parser.add_argument("--clean", action="store_true", help=_described("clean"))
    parser.add_argument("--timesteps", type=int, default=None, help=_described("timesteps"))


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", help=_described("profile"))
    parser.add_argument("--data", default=None, help=_described("data"))
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="STAGE.KEY=VALUE",
        help="override one config value, e.g. --set regime.n_iter=100 (repeatable)",
    )


def _add_storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", type=_store_url, default=None, help=_described("storage"))


def _described(field: str) -> str:
    """The run specification's own description of a field: one text for the command line and the Prefect UI."""
    return str(RunSpec.model_fields[field].description)


def _store_url(text: str) -> str:
    """An explicit --storage must name a store: an empty one is a mistake, never "the default"."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "the artifact store URL is empty; use file://PATH, s3://BUCKET/PREFIX or "
            "memory://PATH (leave --storage out for $CRYPTORL_STORAGE or ./artifacts)"
        )
    return text


def _set_handler(parser: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int]) -> None:
    parser.set_defaults(handler=handler)


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
    """Every segment the data holds; one it cannot run (too little warm-up before it) is marked with why."""
    spec = spec_from(args)
    ohlcv = load_bars(spec.data_source, spec.config.data)
    segments = make_segments(ohlcv.index, spec.config.wfo)
    if not segments:
        raise ConfigError(
            f"{spec.data_source}: no walk-forward segment fits its {len(ohlcv):,} bars "
            f"({ohlcv.index[0]:%Y-%m-%d} .. {ohlcv.index[-1]:%Y-%m-%d}) with wfo.train="
            f"{spec.config.wfo.train}, eval={spec.config.wfo.eval}, test={spec.config.wfo.test}; "
            "add data or shorten them (--set wfo.train=...)"
        )
    for segment in segments:
        shortfall = warmup_shortfall(ohlcv.index, segment)
        print(segment.describe() if shortfall is None else f"segment {segment.index}: cannot run: {shortfall}")
    print(coverage_line(ohlcv.index, spec.config.wfo))
    return 0


def _add_orchestration_commands(commands: argparse._SubParsersAction, data: argparse._SubParsersAction) -> None:
    what = (
        "add the bars after a dataset's last one (atomic rewrite under a lock, every column, the file's format "
        "and mode kept; bars older than its last one are refused unless they are already in it, identical)"
    )
    append = data.add_parser("append", help=what, description=what)
    append.add_argument("new", help="file or URL holding the new bars (parquet/CSV/JSON)")
    append.add_argument("--into", required=True, metavar="DATASET", help="dataset to grow (parquet/CSV, path or URL)")
    append.add_argument(
        "--new-columns",
        action="store_true",
        help="keep columns the new bars have and the dataset lacks (its older rows get blanks); "
        "without it such columns are refused",
    )
    _add_bar_args(append, "longest outage the merged dataset may hold (bars, default 48)")
    _set_handler(append, _cmd_data_append)

    wfo = commands.add_parser("wfo", help="run many WFO segments in parallel (the Prefect full-wfo flow) and summarize")
    _add_fan_out_args(wfo, "segment", seeds_default=None)
    _set_handler(wfo, cmd_wfo)

    study = commands.add_parser(
        "study",
        help="settings x seeds x segments (cached segment runs), one table",
        description="Run every setting x seed x segment as a cached segment run; write one "
        "row per run and one per setting (Prefect artifacts study-table and study-summary, "
        "study/<fingerprint>/{table,summary}.csv in the store). Example: --setting baseline: "
        "--setting nodrop:train.top_quantiles_to_drop=0 --setting "
        "ent:train.ent_coef=auto_0.01,train.gamma=0.9 --seeds 0,1 --segments 0-5. --setting "
        "and --grid combine; --set applies to every setting (a setting's own value wins).",
    )
    study.add_argument(
        "--setting",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME:OVERRIDES",
        help=f"one setting (repeatable): {SETTING_SYNTAX}; a value may hold commas (net_arch=64,64)",
    )
    study.add_argument(
        "--grid",
        default=None,
        metavar="FILE.json",
        help='settings as a JSON object {"NAME": {"STAGE.KEY": VALUE, ...}, ...} (path or URL)',
    )
    _add_fan_out_args(study, "run", seeds_default="0")
    _set_handler(study, cmd_study)

    tensorboard = commands.add_parser("tensorboard", help="sync TensorBoard logs from the store and start TensorBoard")
    tensorboard.add_argument("--segment", type=int, default=None, help="segment number (default: all segments)")
    tensorboard.add_argument("--storage", default=None, help="artifact store URL (default $CRYPTORL_STORAGE)")
    tensorboard.add_argument("--cache-dir", default=None, help="local copy of the logs (default ~/.cache/cryptorl/...)")
    tensorboard.add_argument("--port", type=int, default=6006, help="TensorBoard port on 127.0.0.1 (default 6006)")
    tensorboard.add_argument("--no-launch", action="store_true", help="only sync the logs, do not start TensorBoard")
    _set_handler(tensorboard, _cmd_tensorboard)


def _cmd_data_append(args: argparse.Namespace) -> int:
    print(
        append_bars(
            args.new, args.into, bar=args.bar, max_gap_fill_bars=args.max_gap_fill_bars, new_columns=args.new_columns
        ).summary()
    )
    return 0


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
    champion.add_argument(
        "--decisions", type=_positive_int, default=10, metavar="N", help="recent decisions shown (default 10)"
    )
    _set_handler(champion, _cmd_champion)

    signal = commands.add_parser(
        "signal",
        help="the champion's target position on the newest complete bar",
        description="Load the champion of the data source, compute the causal features and "
        "the HMM forward filter up to the newest complete bar, and print that bar, the "
        "target position in [-1, 1] at w_cost 1, the regime probabilities and the "
        "champion's identity and age.",
    )
    _add_registry_args(signal)
    signal.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    signal.add_argument(
        "--max-staleness",
        type=float,
        default=SignalConfig().max_staleness_hours,
        metavar="HOURS",
        help="refuse a newest complete bar that closed longer ago than this (default "
        f"{SignalConfig().max_staleness_hours:g}; inf for a historical file)",
    )
    signal.add_argument(
        "--position",
        type=float,
        default=None,
        metavar="X",
        help="the position you hold now, in [-1, 1] (default: the champion's own simulated path)",
    )
    _set_handler(signal, _cmd_signal)


def _add_registry_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA_PATH),
        help="OHLCV file or URL; its name selects the registry (default: bundled BTC/USDT 1h)",
    )
    parser.add_argument("--storage", default=None, help="artifact store URL (default $CRYPTORL_STORAGE or ./artifacts)")


def _cmd_champion(args: argparse.Namespace) -> int:
    lines = champion_lines(
        ArtifactStore(args.storage), dataset_name(args.data), pd.Timestamp.now(tz="UTC"), args.decisions
    )
    print("\n".join(lines))
    return 0


def _cmd_signal(args: argparse.Namespace) -> int:
    from cryptorl.champion.live import compute_signal, signal_lines  # torch and SB3: only this command needs them

    signal = compute_signal(
        ArtifactStore(args.storage),
        args.data,
        held=args.position,
        config=SignalConfig(max_staleness_hours=args.max_staleness),
    )
    print(json.dumps(signal.to_json(), indent=2) if args.json else "\n".join(signal_lines(signal)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
