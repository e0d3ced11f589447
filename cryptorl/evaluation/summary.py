"""The walk-forward summary: every (segment, seed) audit, their spread across seeds, and the stitched
out-of-sample series of every policy with bootstrap intervals, the segments each beats buy & hold in, and
the deflated Sharpe ratio of the trained agents.

Inputs are the audit reports (report.json, with their `series.parquet` and trial records) of one walk-forward;
`summarize_walk_forward` computes; cryptorl/evaluation/publish.py stores and renders.
"""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cryptorl.audit.metrics import compute_metrics, sharpe_ratio
from cryptorl.audit.report import headline_rows
from cryptorl.data.timeframe import HOURS_PER_YEAR
from cryptorl.errors import DataError
from cryptorl.evaluation.bootstrap import (
    CONFIDENCE,
    MEAN_BLOCK_BARS,
    N_RESAMPLES,
    Interval,
    bootstrap_sharpe,
    percentile_interval,
)
from cryptorl.evaluation.deflated import DeflatedSharpe, deflated_sharpe_ratio
from cryptorl.evaluation.stitch import ENSEMBLE, SEGMENT, TRAINED, Junction, SegmentSeries, Stitched, stitch
from cryptorl.evaluation.trials import Trial, load_trials, trial_statistics
from cryptorl.storage import ArtifactStore, read_url

NOT_AVAILABLE = "n/a"
BUY_AND_HOLD = "buy_and_hold"
COMPLETED = "Completed"  # the final state name of a segment run that finished
Report = tuple[dict[str, Any], str]  # an audit report and its URI


@dataclass(frozen=True)
class RunRow:
    """One (segment, seed) audit, or one row for a segment run that has none."""

    segment: int
    state: str  # the segment run's final state
    run_url: str | None = None  # the run in the Prefect UI
    seed: int | None = None
    verdict: str = NOT_AVAILABLE
    report_uri: str | None = None
    sharpe: dict[str, float] = field(default_factory=dict)  # policy -> test Sharpe at the headline w_cost


@dataclass(frozen=True)
class PolicyRow:
    """One policy over the whole stitched out-of-sample series, net of the real fee."""

    policy: str
    sharpe: Interval  # annualised, with its bootstrap interval
    versus_buy_and_hold: Interval | None  # Sharpe − buy & hold's (paired resamples); None for buy & hold
    sortino: float
    max_drawdown: float
    turnover: float  # mean |Δposition| per bar
    psr: float
    beats_buy_and_hold: int  # segments where its Sharpe exceeds buy & hold's
    segments: int
    deflated: DeflatedSharpe | None = None  # trained agents and their ensemble only


@dataclass(frozen=True)
class StitchedSummary:
    segments: list[int]
    seeds: list[int]
    bars: int
    first: str
    last: str
    junctions: list[Junction]
    excluded: dict[int, list[int]]  # segment -> seeds without a series (the segment is left out)
    policies: list[PolicyRow]
    n_trials: int  # (configuration, seed) trials on this data source, for the DSR
    trials_sharpe_variance: float  # per bar
    dataset: str | None


@dataclass(frozen=True)
class WFOSummary:
    profile: str
    fee: float | None
    bars_per_year: float
    bootstrap: dict[str, float]  # n_resamples, mean_block_bars, seed, confidence
    runs: list[RunRow]
    seed_spread: list[dict[str, Any]]  # per segment (and stitched): the trained Sharpe across seeds
    stitched: StitchedSummary | None
    notes: list[str]  # what was left out, and why


def sharpe_by_policy(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Test Sharpe per policy at the audit's headline w_cost (the real fee)."""
    return {
        str(row["policy"]): float(row["sharpe"])
        for row in (headline_rows(rows) if rows else [])
        if isinstance(row.get("sharpe"), (int, float))
    }


def run_rows(segment: int, state: str, run_url: str | None, reports: list[Report]) -> list[RunRow]:
    """One row per seed's audit of a segment run (one `n/a` row when the run has none)."""
    if not reports:
        return [RunRow(segment, state, run_url)]
    return [
        RunRow(
            segment,
            state,
            run_url,
            report.get("seed"),
            str(report.get("verdict", NOT_AVAILABLE)),
            uri,
            sharpe_by_policy(report.get("metrics", [])),
        )
        for report, uri in reports
    ]


def summarize_walk_forward(
    runs: list[RunRow],
    reports: list[Report],
    profile: str,
    bar: str,
    n_resamples: int = N_RESAMPLES,
    mean_block: float = MEAN_BLOCK_BARS,
    bootstrap_seed: int = 0,
) -> tuple[WFOSummary, Stitched | None]:
    """The summary of a walk-forward's audits; the stitched series comes back too (to store and plot)."""
    notes: list[str] = []
    pieces = _series_pieces(reports, notes)
    fee = _common_fee([report for report, _ in reports])
    per_year = _common_bars_per_year([report for report, _ in reports])
    bootstrap = {
        "n_resamples": n_resamples,
        "mean_block_bars": mean_block,
        "seed": bootstrap_seed,
        "confidence": CONFIDENCE,
    }
    stitched = stitch(pieces, pd.Timedelta(bar)) if pieces else None
    if stitched is None:
        notes.append("no stitched series: no audit report has a series (rerun the segments)")
    evaluated = (
        None
        if stitched is None
        else _evaluate(
            stitched, fee, per_year, _trials_of(reports, notes), reports, n_resamples, mean_block, bootstrap_seed
        )
    )
    summary = WFOSummary(profile, fee, per_year, bootstrap, runs, seed_spread(runs, evaluated), evaluated, notes)
    return summary, stitched


def seed_spread(runs: list[RunRow], stitched: StitchedSummary | None) -> list[dict[str, Any]]:
    """The trained agent's Sharpe across seeds: mean and std (ddof=1) per segment, and of the stitched series."""
    spread = []
    for segment in dict.fromkeys(row.segment for row in runs):
        values = [row.sharpe[TRAINED] for row in runs if row.segment == segment and TRAINED in row.sharpe]
        spread.append(_spread(f"segment {segment}", values))
    if stitched is not None:
        values = [row.sharpe.estimate for row in stitched.policies if row.policy.startswith(f"{TRAINED} seed ")]
        spread.append(_spread("stitched", values))
    return spread


def _spread(label: str, values: list[float]) -> dict[str, Any]:
    return {
        "label": label,
        "seeds": len(values),
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def _series_pieces(reports: list[Report], notes: list[str]) -> list[SegmentSeries]:
    """Each report's series with its test slice; a report without one is noted and left out."""
    pieces = []
    for report, uri in reports:
        if "series" not in report:
            notes.append(
                f"segment {report.get('segment')} seed {report.get('seed')}: {uri} has no series "
                "(written before series existed): rerun it"
            )
            continue
        frame = pd.read_parquet(io.BytesIO(read_url(report["series"])))
        test = report["test_slice"]
        pieces.append(
            SegmentSeries(
                int(report["segment"]),
                int(report["seed"]),
                frame,
                pd.Timestamp(test["first"]),
                pd.Timestamp(test["last"]),
            )
        )
    return pieces


def _common_fee(reports: list[dict[str, Any]]) -> float | None:
    fees = sorted({float(report["fee"]) for report in reports if "fee" in report})
    if len(fees) > 1:
        raise DataError(
            f"the audits used different fees {fees}: a walk-forward is summarized at one fee; "
            "rerun the segments with one env.fee"
        )
    return fees[0] if fees else None


def _common_bars_per_year(reports: list[dict[str, Any]]) -> float:
    """The audits' annualisation (hourly for reports written before timeframes existed)."""
    values = sorted({float(report.get("bars_per_year", HOURS_PER_YEAR)) for report in reports})
    if len(values) > 1:
        raise DataError(
            f"the audits ran on different timeframes ({values} bars a year): summarize one timeframe at a time"
        )
    return values[0] if values else HOURS_PER_YEAR


def _trials_of(reports: list[Report], notes: list[str]) -> list[Trial]:
    """The trials recorded on the walk-forward's data source (next to the first report's own trial)."""
    located = [report["trial"] for report, _ in reports if report.get("trial")]
    if not located:
        notes.append("no trial records: the DSR is not computed")
        return []
    return load_trials(ArtifactStore(located[0].rsplit("/", 1)[0]))


def _evaluate(
    stitched: Stitched,
    fee: float | None,
    per_year: float,
    trials: list[Trial],
    reports: list[Report],
    n_resamples: int,
    mean_block: float,
    bootstrap_seed: int,
) -> StitchedSummary:
    """Every stitched policy's metrics, bootstrap intervals (paired with buy & hold) and segment wins."""
    if fee is None:
        raise DataError("the audit reports carry no fee: rerun the segments (report.json schema with `fee`)")
    labels = ordered_labels(stitched.labels)
    nets = np.stack([stitched.net(label, fee) for label in labels])  # (K, T)
    boot = bootstrap_sharpe(nets, n_resamples, mean_block, bootstrap_seed, per_year)  # (B, K)
    benchmark = labels.index(BUY_AND_HOLD) if BUY_AND_HOLD in labels else None
    n_trials, variance = trial_statistics(trials)
    log_returns, segments = stitched.frame["log_return"].to_numpy(), stitched.frame[SEGMENT].to_numpy()
    rows = []
    for k, label in enumerate(labels):
        metrics = compute_metrics(stitched.positions(label), log_returns, fee, per_year)
        versus = (
            None
            if benchmark in (None, k)
            else percentile_interval(
                metrics.sharpe - sharpe_ratio(nets[benchmark], per_year), boot[:, k] - boot[:, benchmark]
            )
        )
        wins = (
            0
            if benchmark is None
            else sum(
                sharpe_ratio(nets[k][segments == s]) > sharpe_ratio(nets[benchmark][segments == s])
                for s in stitched.segments
            )
        )
        deflated = deflated_sharpe_ratio(nets[k], n_trials, variance) if _is_trained(label) and n_trials else None
        rows.append(
            PolicyRow(
                label,
                percentile_interval(metrics.sharpe, boot[:, k]),
                versus,
                metrics.sortino,
                metrics.max_drawdown,
                metrics.turnover,
                metrics.psr,
                wins,
                len(stitched.segments),
                deflated,
            )
        )
    index = stitched.frame.index
    dataset = next((report["data"]["dataset"] for report, _ in reports if "dataset" in report.get("data", {})), None)
    return StitchedSummary(
        stitched.segments,
        stitched.seeds,
        len(index),
        index[0].isoformat(),
        index[-1].isoformat(),
        stitched.junctions,
        stitched.excluded,
        rows,
        n_trials,
        variance,
        dataset,
    )


def ordered_labels(labels: list[str]) -> list[str]:
    """Trained seeds, the ensemble, then the baselines in the audit's order."""
    return sorted(labels, key=lambda label: (not label.startswith(TRAINED), label != ENSEMBLE))


def _is_trained(label: str) -> bool:
    return label.startswith(TRAINED) or label == ENSEMBLE
