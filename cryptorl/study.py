"""A study: walk-forward segments trained under several settings and seeds, judged side by side.

A setting is a name and `STAGE.KEY=VALUE` overrides (what `with_overrides` takes). Every (setting, seed,
segment) is an ordinary cached segment run; its audit report (cryptorl/audit/report.py) gives one row of
the study table, and the rows of a setting give its summary row.

Settings are written `NAME:STAGE.KEY=VALUE,STAGE.KEY=VALUE` (`NAME:` alone keeps the profile as it is; a
value may hold commas, e.g. `arch:train.net_arch=64,64,train.gamma=0.9`) or, in a grid file, as a JSON
object `{"NAME": {"STAGE.KEY": VALUE, ...}, ...}`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptorl.audit.report import HEADLINE_W_COST
from cryptorl.audit.verdict import HEALTHY, RULES
from cryptorl.config import Profile, with_overrides
from cryptorl.errors import ArtifactNotFoundError, ConfigError
from cryptorl.evaluation.stitch import ENSEMBLE, TRAINED
from cryptorl.evaluation.summary import BUY_AND_HOLD, StitchedSummary
from cryptorl.run_spec import override_text, parse_override
from cryptorl.storage import read_url

Grid = dict[str, dict[str, str]]  # setting name -> its overrides, in the order given

SETTING_SYNTAX = "NAME:STAGE.KEY=VALUE[,STAGE.KEY=VALUE...] (NAME: alone for the profile as it is)"
_SETTING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NEXT_OVERRIDE = re.compile(r",(?=\s*[A-Za-z_]\w*\.\w+\s*=)")  # a comma followed by the next STAGE.KEY=
HEADLINE = f"{HEADLINE_W_COST:g}"  # policies are keyed by w_cost as text in report.json
MEASUREMENTS = tuple(dict.fromkeys(rule.measurement for rule in RULES))  # what the verdict rules measure
COMPARED_POLICIES = ("trained", "buy_and_hold", "best_constant", "probe")


@dataclass(frozen=True)
class StudyRun:
    """One (setting, seed, segment) of the study: one segment flow run."""

    setting: str
    seed: int
    segment: int

    @property
    def name(self) -> str:
        return f"{self.setting}-seed-{self.seed}-segment-{self.segment}"


def parse_setting(text: str) -> tuple[str, dict[str, str]]:
    """`NAME:STAGE.KEY=VALUE,...` -> (name, overrides)."""
    name, colon, body = text.partition(":")
    if not colon:
        raise ConfigError(f"setting {text!r} has no name: write {SETTING_SYNTAX}")
    try:
        overrides = dict(map(parse_override, filter(None, (part.strip() for part in _NEXT_OVERRIDE.split(body)))))
    except ConfigError as exc:
        raise ConfigError(f"setting {name!r}: {exc}") from None
    return name.strip(), overrides


def read_grid(path_or_url: str) -> dict[str, Any]:
    """The settings of a JSON grid file (checked by `check_grid`)."""
    try:
        grid = json.loads(read_url(path_or_url), object_pairs_hook=_unique_names)
    except ArtifactNotFoundError:
        raise ConfigError(f"grid {path_or_url} not found: check the path or URL (--grid)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f'grid {path_or_url} is not JSON ({exc}); write {{"NAME": {{"STAGE.KEY": VALUE, ...}}, ...}}'
        ) from None
    if not isinstance(grid, dict):
        raise ConfigError(
            f'grid {path_or_url}: write a JSON object {{"NAME": {{"STAGE.KEY": VALUE}}}}, not a {type(grid).__name__}'
        )
    return grid


def grid_from_cli(settings: Iterable[str], grid_file: str | None) -> dict[str, Any]:
    """The grid file's settings (if any), then every `--setting`; a name given twice is refused."""
    from_file = list(read_grid(grid_file).items()) if grid_file else []
    return _unique_names([*from_file, *map(parse_setting, settings)])


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The pairs as a dict; a name given twice (a setting, or a key within one) is refused."""
    names = [name for name, _ in pairs]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise ConfigError(f"{twice!r} is given twice: give each setting its own name, and each key once")
    return dict(pairs)


def check_grid(grid: Any, config: Profile) -> Grid:
    """The grid with every value as text, each setting validated as overrides of `config` up front."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"no settings: give at least one --setting {SETTING_SYNTAX}, or --grid FILE.json")
    checked: Grid = {}
    for name, settings in grid.items():
        if not _SETTING_NAME.match(str(name)):
            raise ConfigError(
                f"setting name {name!r}: use letters, digits, '-', '_' and '.' (it names the runs and the table rows)"
            )
        if not isinstance(settings, dict):
            raise ConfigError(
                f'setting {name!r}: give its overrides as {{"STAGE.KEY": VALUE}}, not a {type(settings).__name__}'
            )
        try:
            checked[name] = {str(key).strip(): override_text(value, str(key)) for key, value in settings.items()}
            with_overrides(config, checked[name])
        except ConfigError as exc:
            raise ConfigError(f"setting {name!r}: {exc}") from None
    return checked


def study_runs(grid: Grid, seeds: list[int], segments: list[int]) -> list[StudyRun]:
    """Every setting x seed x segment, setting-major."""
    return [StudyRun(*combination) for combination in itertools.product(grid, seeds, segments)]


def study_row(run: StudyRun, state: str, report: dict | None, report_uri: str | None) -> dict[str, Any]:
    """One table row from a run's final state and its audit report (blank cells where there is none).

    Sharpe ratios are net of fees on the test slice. The policies are compared at the headline w_cost (the
    real fee); the trained agent's Sharpe and turnover are also given at every audited w_cost.
    """
    report = report or {}
    measured = {check["measurement"]: check["value"] for check in report.get("checks", [])}
    policies = report.get("policies", {})
    row = {
        "setting": run.setting,
        "seed": run.seed,
        "segment": run.segment,
        "state": state,
        "verdict": report.get("verdict"),
        **{name: measured.get(name) for name in MEASUREMENTS},
    }
    row.update({f"sharpe_{policy}": _metric(policies, policy, HEADLINE, "sharpe") for policy in COMPARED_POLICIES})
    row["turnover_trained"] = _metric(policies, "trained", HEADLINE, "turnover")
    row["gross_trained"] = _metric(policies, "trained", HEADLINE, "gross_log_return")  # log-return, before fees
    row["fees_trained"] = _metric(policies, "trained", HEADLINE, "cost")  # log-return paid in fees
    for w_cost in (f"{w:g}" for w in report.get("w_costs", [])):
        row[f"sharpe_trained_w{w_cost}"] = _metric(policies, "trained", w_cost, "sharpe")
        row[f"turnover_trained_w{w_cost}"] = _metric(policies, "trained", w_cost, "turnover")
    probe = report.get("probe", {})
    for horizon, score in sorted(probe.get("horizons", {}).items(), key=lambda item: int(item[0])):
        row.update({f"probe_t_{horizon}": score["ic_tstat"], f"probe_sharpe_{horizon}": score["net_sharpe"]})
    row["probe_horizon"] = probe.get("trading_horizon")
    return {**row, "report": report_uri}


def _metric(policies: dict, policy: str, w_cost: str, metric: str) -> float | None:
    return policies.get(policy, {}).get(w_cost, {}).get(metric)


SUMMARY_MEDIANS = (
    "sharpe_trained",
    "sharpe_buy_and_hold",
    "position_std_across_states",
    "turnover_trained",
    "gross_trained",
    "fees_trained",
)


def summarize_settings(
    rows: list[dict[str, Any]], stitched: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per setting: runs, completed runs, how many were judged healthy, medians over its runs (the probe's per
    horizon too), then the setting's `stitched` columns (`stitched_columns`) when given."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["setting"], []).append(row)
    summary = []
    for setting, group in groups.items():
        healthy = sum(row["verdict"] == HEALTHY for row in group)
        probe_columns = [column for column in group[0] if column.startswith(("probe_t_", "probe_sharpe_"))]
        summary.append(
            {
                "setting": setting,
                "runs": len(group),
                "completed": sum(row["state"] == "Completed" for row in group),
                "healthy": healthy,
                "healthy_fraction": healthy / len(group),
                **{f"median_{column}": _median(group, column) for column in (*SUMMARY_MEDIANS, *probe_columns)},
                **(stitched or {}).get(setting, {}),
            }
        )
    return summary


def stitched_columns(summary: StitchedSummary | None) -> dict[str, Any]:
    """The seed ensemble (the agent itself for one seed) over a setting's stitched test slices: its net Sharpe and
    the difference from buy & hold's, each with its bootstrap interval, and in how many segments it beat buy & hold."""
    rows = {row.policy: row for row in summary.policies} if summary is not None else {}
    agents = [row for name, row in rows.items() if name.startswith(TRAINED)]
    ensemble = rows.get(ENSEMBLE, agents[0] if len(agents) == 1 else None)
    buy_and_hold = rows.get(BUY_AND_HOLD)
    versus = None if ensemble is None else ensemble.versus_buy_and_hold
    if summary is None or ensemble is None or buy_and_hold is None or versus is None:
        return {}
    return {
        "stitched_bars": summary.bars,
        "ensemble_sharpe": ensemble.sharpe.estimate,
        "ensemble_sharpe_low": ensemble.sharpe.low,
        "ensemble_sharpe_high": ensemble.sharpe.high,
        "ensemble_minus_bh": versus.estimate,
        "ensemble_minus_bh_low": versus.low,
        "ensemble_minus_bh_high": versus.high,
        "bh_sharpe": buy_and_hold.sharpe.estimate,
        "ensemble_turnover": ensemble.turnover,
        "ensemble_segments_beating_bh": f"{ensemble.beats_buy_and_hold}/{ensemble.segments}",
    }


def _median(rows: list[dict[str, Any]], column: str) -> float | None:
    values = [row[column] for row in rows if row.get(column) is not None]
    return statistics.median(values) if values else None


def complete_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every column (in order of first appearance); a missing cell is None."""
    columns = list(dict.fromkeys(column for row in rows for column in row))
    return [{column: row.get(column) for column in columns} for row in rows]


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    """The rows as CSV with a header; None is a blank cell."""
    rows = complete_rows(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def render_text(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned plain-text table (numbers to 4 significant digits, n/a for None)."""
    rows = complete_rows(rows)
    cells = [list(rows[0])] + [[_cell(value) for value in row.values()] for row in rows] if rows else [[]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells)
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
