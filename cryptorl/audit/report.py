"""The audit report: one JSON document (versioned schema) and its markdown rendering for the Prefect UI.

`report.json` top level: `schema_version`, `segment`, `policy` (the audited policy spec), `verdict`,
`reasons`, `checks` (every verdict rule with its measured value), `policies` (metrics per policy and
w_cost), `metrics` (the same as table rows), `reward` (the scaled reward's amplitude), `probe` (the
multi-horizon signal probe's test scores and traded horizon, cryptorl/audit/probe.py; schema 2), `best_constant`
(its position and train Sharpe),
`diagnostics` (actions, gSDE, entropy, critic, attribution, FiLM, HMM, MAE), `plots` and `links` (URIs;
the plots are embedded only in report.md).
"""

from __future__ import annotations

from cryptorl.audit.probe import SIGNAL_T_STAT

SCHEMA_VERSION = 2  # 2: `probe` holds every horizon
HEADLINE_W_COST = 1.0  # the w_cost at which the agent pays exactly the real fee
TABLE_COLUMNS = (
    "policy",
    "w_cost",
    "net_log_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "exposure",
    "hit_rate",
    "psr",
)


def policies_by_w_cost(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """{policy: {w_cost as str: metrics}} from metrics_table rows."""
    nested: dict[str, dict[str, dict]] = {}
    for row in rows:
        metrics = {key: value for key, value in row.items() if key not in ("policy", "w_cost")}
        nested.setdefault(row["policy"], {})[f"{row['w_cost']:g}"] = metrics
    return nested


def headline_rows(rows: list[dict]) -> list[dict]:
    """One row per policy at the headline w_cost (or the closest audited one)."""
    w_costs = sorted({row["w_cost"] for row in rows}, key=lambda w: abs(w - HEADLINE_W_COST))
    return [row for row in rows if row["w_cost"] == w_costs[0]]


def run_line(
    label: str, state: str, verdict: str | None, sharpe: float | None, buy_and_hold: float | None, decision: str
) -> str:
    """One run in one line (`cryptorl wfo` and `study`): its verdict, its net test Sharpe at the real fee against
    buy & hold's, and what promotion decided."""
    judged = (
        f"{verdict.upper()}, net Sharpe {_fmt(sharpe)} vs buy & hold {_fmt(buy_and_hold)}"
        if verdict
        else f"{state}, no audit report"
    )
    return f"{label}: {judged}; {decision}"


def render_markdown(report: dict, images: dict[str, str] | None = None) -> str:
    """Verdict first, then the reasons, the probe and best_constant lines, the key numbers, the metrics at the
    headline w_cost, the plots and links.

    `images` ({plot name: inline markdown image}, see cryptorl.audit.plots.embed_png) puts each plot in the
    page above its link: the Prefect UI renders data-URI images, but no browser opens a `file://` link.
    They are rendered here, not stored in report.json, which stays small.
    """
    lines = [f"# Segment {report['segment']} audit: **{report['verdict'].upper()}** ({report['policy']})", ""]
    lines += [f"- {reason}" for reason in report["reasons"]]
    lines += ["", "## Signal and drift", ""]
    lines += [f"- {line}" for line in baseline_lines(report)]
    lines += ["", "## Key numbers", ""]
    lines += [f"- {name}: {_fmt(value)}" for name, value in key_numbers(report).items()]
    lines += ["", f"## Test-slice metrics at w_cost = {headline_rows(report['metrics'])[0]['w_cost']:g}", ""]
    lines += [_table_row(TABLE_COLUMNS), _table_row(["---"] * len(TABLE_COLUMNS))]
    lines += [
        _table_row([_fmt(row.get(column)) for column in TABLE_COLUMNS]) for row in headline_rows(report["metrics"])
    ]
    images = images or {}
    lines += ["", "## Plots", ""]
    for name, uri in report["plots"].items():
        lines += [images[name], ""] if name in images else []
        lines += [f"- [{name}]({uri})", ""]
    lines += ["## Artifacts", ""]
    lines += [f"- [{name}]({uri})" for name, uri in report["links"].items()]
    return "\n".join(lines) + "\n"


def baseline_lines(report: dict) -> list[str]:
    """The money at the real fee against every baseline, what the inputs can forecast (the signal probe) and what
    the train drift alone earns (best_constant)."""
    return [money_line(report), probe_line(report["probe"]), best_constant_line(report)]


def money_line(report: dict) -> str:
    """The audited policy's net result at the headline w_cost, gross and fees, next to every baseline's Sharpe."""
    rows = {row["policy"]: row for row in headline_rows(report["metrics"])}
    audited = rows[report["policy"]]
    others = ", ".join(f"{name} {_fmt(row.get('sharpe'))}" for name, row in rows.items() if name != report["policy"])
    return (
        f"net at the real fee over the test slice (w_cost {audited['w_cost']:g}): {report['policy']} Sharpe "
        f"{_fmt(audited.get('sharpe'))} (log-return gross {_percent(audited.get('gross_log_return'))}, fees "
        f"{_percent(audited.get('cost'))}, net {_percent(audited.get('net_log_return'))}; turnover "
        f"{_fmt(audited.get('turnover'))} per bar); baselines' Sharpe: {others}"
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f} %"


def probe_line(probe: dict) -> str:
    """Per horizon the probe's IC (t), hit rate and net Sharpe traded at the real fee on test; then which horizon
    the probe baseline trades, and at which horizons the slice carried an edge larger than the fee."""
    scores = "; ".join(
        f"{h} bar{'s' * (h != '1')}: IC {score['ic']:.3f} (t {score['ic_tstat']:.1f}), "
        f"hit {100 * score['hit_rate']:.1f} %, net Sharpe {score['net_sharpe']:.2f}"
        for h, score in sorted(probe["horizons"].items(), key=_horizon)
    )
    edge = ", ".join(f"{h} bars" for h in probe["edge_horizons"]) or "no horizon"
    return (
        f"probe (ridge on the inputs, fit on train): {scores}; trades {probe['trading_horizon']} bar(s) (best on "
        f"train); an edge larger than the fee (IC > 0 with t >= {SIGNAL_T_STAT:g} and net Sharpe > 0 on test) at: "
        f"{edge}"
    )


def _horizon(item: tuple[str, dict]) -> int:
    """Horizons in bars, in order (report.json stores their keys as sorted text: "1", "24", "4")."""
    return int(item[0])


def best_constant_line(report: dict) -> str:
    """The best train constant position and its test net Sharpe next to the trained agent's, at the headline w_cost."""
    rows = headline_rows(report["metrics"])
    sharpe = {row["policy"]: row["sharpe"] for row in rows}
    w_cost = rows[0]["w_cost"]
    return (
        f"best_constant: position {report['best_constant']['position']:+.1f} (best train net Sharpe "
        f"{report['best_constant']['train_sharpe']:.2f}); test net Sharpe at w_cost {w_cost:g}: "
        f"{_fmt(sharpe.get('best_constant'))} vs trained {_fmt(sharpe.get('trained'))}"
    )


def key_numbers(report: dict) -> dict[str, float | None]:
    """The measurements behind the verdict plus the reward amplitude and the entropy balance."""
    numbers = {check["measurement"]: check["value"] for check in report["checks"]}
    numbers.update({f"reward_{key}": value for key, value in report["reward"].items()})
    entropy = report["diagnostics"].get("entropy") or {}
    if entropy:
        numbers["final_ent_coef"] = entropy["final_ent_coef"]
        numbers["entropy_bonus_to_reward_std"] = entropy["bonus_to_reward_std"]
    return numbers


def _table_row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
