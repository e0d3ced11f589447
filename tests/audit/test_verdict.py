import numpy as np
import pytest

from cryptorl.audit.verdict import COLLAPSED, DEGENERATE, HEALTHY, RULES, judge

HEALTHY_MEASUREMENTS = {"position_std_across_states": 0.4, "position_std_over_test": 0.5,
                        "actor_market_attribution": 0.6, "action_saturation": 0.2, "q_spread_over_noise": 3.0,
                        "turnover_ratio_w2_w0": 0.3}


def test_a_moving_market_driven_policy_is_healthy():
    verdict = judge(HEALTHY_MEASUREMENTS)
    assert verdict.verdict == HEALTHY and not any(check["fired"] for check in verdict.checks)
    assert "position_std_across_states 0.4" in verdict.reasons[0]


def test_a_constant_position_is_collapsed_with_the_number_and_threshold():
    verdict = judge({**HEALTHY_MEASUREMENTS, "position_std_across_states": 0.003, "position_std_over_test": 0.0})
    assert verdict.verdict == COLLAPSED
    assert verdict.reasons[0].startswith("position_std_across_states 0.003 < 0.05")


@pytest.mark.parametrize("key, value, reason", [
    ("actor_market_attribution", 0.004, "actor_market_attribution 0.004 < 0.05"),
    ("action_saturation", 0.97, "action_saturation 0.97 > 0.9"),
    ("q_spread_over_noise", 0.5, "q_spread_over_noise 0.5 < 1"),
    ("turnover_ratio_w2_w0", 1.02, "turnover_ratio_w2_w0 1.02 >= 0.9"),
])
def test_each_degenerate_rule_states_its_reason(key, value, reason):
    verdict = judge({**HEALTHY_MEASUREMENTS, key: value})
    assert verdict.verdict == DEGENERATE and len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith(reason)


def test_collapse_outranks_degeneracy_and_lists_it_first():
    verdict = judge({**HEALTHY_MEASUREMENTS, "position_std_over_test": 0.01, "action_saturation": 0.99})
    assert verdict.verdict == COLLAPSED and len(verdict.reasons) == 2
    assert verdict.reasons[0].startswith("position_std_over_test")


def test_unmeasured_rules_are_skipped_not_guessed():
    verdict = judge({"position_std_over_test": 0.3})
    assert verdict.verdict == HEALTHY
    assert sum(check["value"] is not None for check in verdict.checks) == 1
    assert len(verdict.checks) == len(RULES)


@pytest.mark.parametrize("ratio, fires", [(0.9, True), (0.8999, False), (0.0, False)])
def test_cost_blind_fires_from_exactly_ninety_percent(ratio, fires):
    verdict = judge({**HEALTHY_MEASUREMENTS, "turnover_ratio_w2_w0": ratio})
    assert verdict.verdict == (DEGENERATE if fires else HEALTHY)
    assert [check["fired"] for check in verdict.checks if check["rule"] == "cost_blind"] == [fires]


# Every rule's threshold and comparison, written out here so that a changed threshold or operator fails a test:
# rule -> (measurement, threshold, fires exactly at the threshold, fires below it (else above it)).
THRESHOLDS = {
    "constant_across_states": ("position_std_across_states", 0.05, False, True),
    "constant_over_time": ("position_std_over_test", 0.05, False, True),
    "market_ignored": ("actor_market_attribution", 0.05, False, True),
    "saturated": ("action_saturation", 0.9, False, False),
    "cost_blind": ("turnover_ratio_w2_w0", 0.9, True, False),
    "flat_critic": ("q_spread_over_noise", 1.0, False, True),
}


def test_the_rule_table_is_the_one_these_tests_check():
    assert [rule.name for rule in RULES] == list(THRESHOLDS)
    assert all((rule.measurement, rule.threshold) == THRESHOLDS[rule.name][:2] for rule in RULES)


@pytest.mark.parametrize("rule", list(THRESHOLDS))
@pytest.mark.parametrize("side", ["just_below", "exactly_at", "just_above"])
def test_each_rule_at_and_beside_its_threshold(rule, side):
    """One float step below, exactly at and one float step above each threshold."""
    measurement, threshold, fires_at, fires_below = THRESHOLDS[rule]
    value = {"just_below": np.nextafter(threshold, -np.inf), "exactly_at": threshold,
             "just_above": np.nextafter(threshold, np.inf)}[side]
    expected = {"just_below": fires_below, "exactly_at": fires_at, "just_above": not fires_below}[side]
    verdict = judge({**HEALTHY_MEASUREMENTS, measurement: float(value)})
    assert [check["fired"] for check in verdict.checks if check["rule"] == rule] == [expected]
    severity = next(r.verdict for r in RULES if r.name == rule)
    assert verdict.verdict == (severity if expected else HEALTHY)
