"""The collapse verdict: every rule in one table, each firing rule stated with its number and threshold.

`collapsed`  — the policy outputs (nearly) one position whatever it sees: the original system's failure.
`degenerate` — it moves, but for the wrong reasons: it ignores the market, sits at the action bounds,
               trades as much when costs weigh double as when they are free, or its critic cannot tell
               actions apart, so what it does is not learned from the inputs.
`healthy`    — none of the above.

A rule whose measurement is missing (e.g. no critic for a baseline policy) is skipped, never guessed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

COLLAPSED, DEGENERATE, HEALTHY = "collapsed", "degenerate", "healthy"
COMPARISONS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Rule:
    name: str
    verdict: str  # what the policy is when the rule fires
    measurement: str  # key in the measurements dict
    fires_when: str  # a key of COMPARISONS
    threshold: float
    meaning: str  # what it says about the policy, for the report

    def fires(self, value: float) -> bool:
        return COMPARISONS[self.fires_when](value, self.threshold)

    def reason(self, value: float) -> str:
        return f"{self.measurement} {value:.4g} {self.fires_when} {self.threshold:g}: {self.meaning}"


RULES: tuple[Rule, ...] = (
    Rule(
        "constant_across_states",
        COLLAPSED,
        "position_std_across_states",
        "<",
        0.05,
        "the same position whatever the state (inputs ignored)",
    ),
    Rule(
        "constant_over_time",
        COLLAPSED,
        "position_std_over_test",
        "<",
        0.05,
        "the position barely moves over the test slice",
    ),
    Rule(
        "market_ignored",
        DEGENERATE,
        "actor_market_attribution",
        "<",
        0.05,
        "the actor's decisions hardly depend on the market window and regime context",
    ),
    Rule(
        "saturated",
        DEGENERATE,
        "action_saturation",
        ">",
        0.9,
        "positions sit at the ±1 bounds (bang-bang), tanh saturated",
    ),
    Rule(
        "cost_blind",
        DEGENERATE,
        "turnover_ratio_w2_w0",
        ">=",
        0.9,
        "it trades nearly as much at w_cost 2 as at w_cost 0: the cost weight it is conditioned on is ignored",
    ),
    Rule(
        "flat_critic",
        DEGENERATE,
        "q_spread_over_noise",
        "<",
        1.0,
        "Q varies less across actions than the critic's own quantile noise: the critic cannot rank actions",
    ),
)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reasons: list[str]  # one line per firing rule (or, when healthy, per check passed)
    checks: list[dict]  # every rule: measurement, value (None = not measured), threshold, fired


def judge(measurements: dict[str, float | None]) -> Verdict:
    """Apply RULES to `measurements`; the most severe firing verdict wins (collapsed > degenerate)."""
    checks, fired = [], []
    for rule in RULES:
        value = measurements.get(rule.measurement)
        fires = value is not None and rule.fires(value)
        checks.append(
            {
                "rule": rule.name,
                "measurement": rule.measurement,
                "value": value,
                "fires_when": f"{rule.fires_when} {rule.threshold:g}",
                "fired": fires,
                "verdict": rule.verdict,
            }
        )
        if fires:
            fired.append(rule)
    if not fired:
        passed = [
            f"{c['measurement']} {c['value']:.4g} (fires {c['fires_when']})" for c in checks if c["value"] is not None
        ]
        return Verdict(HEALTHY, [f"no rule fired; checked {', '.join(passed)}"], checks)
    worst = COLLAPSED if any(rule.verdict == COLLAPSED for rule in fired) else DEGENERATE
    ordered = sorted(fired, key=lambda rule: rule.verdict != worst)
    return Verdict(worst, [rule.reason(_measured(measurements, rule)) for rule in ordered], checks)


def _measured(measurements: dict[str, float | None], rule: Rule) -> float:
    """A fired rule's measurement (a rule fires only on a value)."""
    value = measurements[rule.measurement]
    assert value is not None, rule.name
    return value
