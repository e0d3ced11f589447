"""The walk-forward summary as markdown for the Prefect UI (the `wfo-summary` artifact)."""

from __future__ import annotations

import statistics

import pandas as pd

from cryptorl.audit.report import HEADLINE_W_COST
from cryptorl.evaluation.bootstrap import Interval
from cryptorl.evaluation.stitch import OVERLAP
from cryptorl.evaluation.summary import (
    BUY_AND_HOLD,
    COMPLETED,
    NOT_AVAILABLE,
    PolicyRow,
    RunRow,
    StitchedSummary,
    WFOSummary,
)

STITCHED_COLUMNS = (
    "policy",
    "Sharpe",
    "95 % CI",
    "Δ Sharpe vs buy & hold",
    "95 % CI",
    "Sortino",
    "max drawdown",
    "turnover",
    "PSR",
    "DSR",
    "beats buy & hold",
)


def summary_markdown(summary: WFOSummary, equity: str | None = None, links: dict[str, str] | None = None) -> str:
    """Runs, spread across seeds, the stitched series (with `equity`, an inline image) and `links` {name: uri}."""
    segments = sorted({row.segment for row in summary.runs})
    seeds = sorted({row.seed for row in summary.runs if row.seed is not None})
    verdicts = [row.verdict for row in summary.runs]
    lines = [
        f"# Walk-forward summary: {len(segments)} segments x {max(len(seeds), 1)} seeds, profile {summary.profile}",
        "",
        f"Test-slice Sharpe ratios at w_cost = {HEADLINE_W_COST:g} (the real fee"
        + (f" {summary.fee:g}" if summary.fee is not None else "")
        + "), annualised.",
        "",
        "Verdicts: " + ", ".join(f"{v} {verdicts.count(v)}" for v in dict.fromkeys(verdicts)),
        "",
    ]
    lines += [*runs_table(summary.runs), "", *versus_buy_and_hold(summary.runs), ""]
    lines += seed_spread_table(summary.seed_spread)
    if summary.stitched is not None:
        lines += ["", *stitched_section(summary.stitched, summary.bootstrap)]
    if summary.notes:
        lines += [""] + [f"- note: {note}" for note in summary.notes]
    if equity:
        lines += ["", equity]
    if links:
        lines += ["", " · ".join(f"[{name}]({uri})" for name, uri in links.items())]
    return "\n".join(lines).rstrip() + "\n"


def runs_table(rows: list[RunRow]) -> list[str]:
    """One row per (segment, seed): the verdict (linked to its report), Sharpe per policy; mean and std; the runs.

    Narrow enough for the artifact column of both Prefect UIs at 1400 px: no link column, and policy names
    break between words in the header (the runs, with their states, go in one line under the table).
    """
    labels = list(dict.fromkeys(label for row in rows for label in row.sharpe))
    table = [
        _row(["segment", "seed", "verdict", *(f"Sharpe {label.replace('_', ' ')}" for label in labels)]),
        _row(["---"] * (len(labels) + 3)),
    ]
    for row in rows:
        seed = NOT_AVAILABLE if row.seed is None else str(row.seed)
        table.append(
            _row([str(row.segment), seed, _verdict_cell(row), *(_number(row.sharpe.get(lb)) for lb in labels)])
        )
    values = [[row.sharpe[label] for row in rows if label in row.sharpe] for label in labels]
    table.append(_row(["**mean**", "", "", *(_number(_mean(v)) for v in values)]))
    table.append(_row(["**std**", "", "", *(_number(_std(v)) for v in values)]))
    return [*table, "", "Runs: " + " · ".join(_run_link(row) for row in _one_per_segment(rows))]


def _verdict_cell(row: RunRow) -> str:
    """The audit's verdict linked to its report.json; the run's state too when it did not complete."""
    verdict = f"[{row.verdict}]({row.report_uri})" if row.report_uri else row.verdict
    return verdict if row.state == COMPLETED else f"{verdict} ({row.state})"


def _run_link(row: RunRow) -> str:
    state = f"[{row.state}]({row.run_url})" if row.run_url else row.state
    return f"segment {row.segment} {state}"


def _one_per_segment(rows: list[RunRow]) -> list[RunRow]:
    return list({row.segment: row for row in rows}.values())


def versus_buy_and_hold(rows: list[RunRow]) -> list[str]:
    """One line per policy: in how many runs its test Sharpe beats buy & hold's."""
    labels = list(dict.fromkeys(label for row in rows for label in row.sharpe))
    if BUY_AND_HOLD not in labels:
        return [f"Sharpe vs buy & hold: {NOT_AVAILABLE} (no buy & hold row in the audit reports)"]
    lines = []
    for label in (label for label in labels if label != BUY_AND_HOLD):
        pairs = [
            (row.sharpe[label], row.sharpe[BUY_AND_HOLD])
            for row in rows
            if label in row.sharpe and BUY_AND_HOLD in row.sharpe
        ]
        wins = sum(policy > hold for policy, hold in pairs)
        lines.append(f"- {label} beats {BUY_AND_HOLD} (test Sharpe) in {wins} of {len(pairs)} runs")
    return lines


def seed_spread_table(spread: list[dict]) -> list[str]:
    lines = ["## Trained agent across seeds", "", _row(["where", "seeds", "Sharpe mean ± std"]), _row(["---"] * 3)]
    for item in spread:
        std = f" ± {item['std']:.2f}" if item["std"] is not None else ""
        lines.append(_row([item["label"], str(item["seeds"]), f"{_number(item['mean'])}{std}"]))
    return lines


def stitched_section(stitched: StitchedSummary, bootstrap: dict) -> list[str]:
    """The stitched series: coverage, the policy table, the DSR's inputs, and every junction that is not clean."""
    lines = [
        f"## Stitched out of sample: segments {', '.join(map(str, stitched.segments))}, {stitched.bars:,} bars, "
        f"{_time(stitched.first)} .. {_time(stitched.last)}",
        "",
        f"Net of the real fee; the next segment's agent takes over at its test start. 95 % percentile intervals "
        f"of a stationary block bootstrap ({bootstrap['n_resamples']} resamples, mean block "
        f"{bootstrap['mean_block_bars']:g} bars, seed {bootstrap['seed']}; the Δ vs buy & hold on paired "
        "resamples).",
        "",
        _row(STITCHED_COLUMNS),
        _row(["---"] * len(STITCHED_COLUMNS)),
    ]
    lines += [_policy_row(row) for row in stitched.policies]
    lines += ["", _dsr_line(stitched), ""]
    lines += [f"- {junction.describe()}" for junction in stitched.junctions if junction.kind != "contiguous"]
    contiguous = sum(junction.kind == "contiguous" for junction in stitched.junctions)
    lines.append(
        f"- {contiguous} of {len(stitched.junctions)} junctions contiguous; "
        f"{sum(j.bars for j in stitched.junctions if j.kind == OVERLAP)} overlapping bars dropped; "
        f"each segment's last test bar is not traded (its decision needs the next slice's close)"
    )
    lines += [
        f"- segment {segment} left out: seeds {', '.join(map(str, seeds))} have no audited series"
        for segment, seeds in stitched.excluded.items()
    ]
    return lines


def _policy_row(row: PolicyRow) -> str:
    versus = row.versus_buy_and_hold
    deflated = _number(row.deflated.dsr) if row.deflated else NOT_AVAILABLE
    wins = "—" if versus is None else f"{row.beats_buy_and_hold} of {row.segments}"
    return _row(
        [
            row.policy,
            _number(row.sharpe.estimate),
            _interval(row.sharpe),
            _number(versus.estimate) if versus else "—",
            _interval(versus) if versus else "—",
            _number(row.sortino),
            f"{100 * row.max_drawdown:.1f} %",
            f"{row.turnover:.4f}",
            _number(row.psr),
            deflated,
            wins,
        ]
    )


def _dsr_line(stitched: StitchedSummary) -> str:
    deflated = next((row.deflated for row in stitched.policies if row.deflated), None)
    if deflated is None:
        return f"DSR: {NOT_AVAILABLE} (no trial records for this data source)"
    return (
        f"DSR (Bailey & López de Prado 2014) = PSR(SR0): N = {deflated.n_trials} trials ((configuration, seed) "
        f"runs recorded on {stitched.dataset or 'this data source'}), variance of their per-bar Sharpe ratios "
        f"V = {deflated.sharpe_variance:.3g}, expected maximum SR0 = {deflated.expected_max_sharpe:.4f} per bar; "
        "PSR is against 0."
    )


def _time(iso: str) -> str:
    return f"{pd.Timestamp(iso):%Y-%m-%d %H:%M}"


def _interval(interval: Interval) -> str:
    return f"[{interval.low:.2f}, {interval.high:.2f}]"


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _number(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.2f}"
