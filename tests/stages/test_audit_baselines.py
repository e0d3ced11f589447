"""The audit stage's wiring of cost_blind, the probe and best_constant, on real backtests of synthetic data."""

import dataclasses

import pytest

from cryptorl.audit import backtest, backtest_many, make_policy, metrics_table
from cryptorl.audit.policies import best_constant
from cryptorl.audit.probe import multi_horizon_probe
from cryptorl.audit.report import SCHEMA_VERSION, policies_by_w_cost, render_markdown
from cryptorl.audit.verdict import DEGENERATE, judge
from cryptorl.config import EnvConfig
from cryptorl.envs import MarketData
from cryptorl.audit.agent import AUDIT_W_COSTS, measurements, turnover_ratio
from cryptorl.stages.audit import BASELINES

SPAN = MarketData.random(1500, seed=0)  # Gaussian inputs, a random-walk close: nothing to forecast
TRAIN, TEST = SPAN.with_slice(63, 1100), SPAN.with_slice(1200, 1500)
ENV = EnvConfig(episode_length=32, fee=0.001)


@pytest.fixture(scope="module")
def results():
    """Every baseline the stage audits, plus momentum standing in for the trained agent."""
    specs = {"trained": "momentum", **{spec: spec for spec in BASELINES}}
    policies = {name: make_policy(spec, market=TEST, train=TRAIN, fee=ENV.fee) for name, spec in specs.items()}
    return backtest_many(policies, TEST, ENV, AUDIT_W_COSTS, include_market=True)


def test_a_policy_blind_to_w_cost_is_degenerate():
    """Half-size momentum: it moves, away from the bounds, and ignores w_cost."""
    momentum = make_policy("momentum", market=TEST)
    result = backtest(lambda observation, bars: 0.5 * momentum(observation, bars), TEST, ENV, AUDIT_W_COSTS,
                      include_market=True)
    values = measurements(result.runs[1.0].positions, result, None)
    assert values["turnover_ratio_w2_w0"] == 1.0
    verdict = judge(values)
    assert verdict.verdict == DEGENERATE and verdict.reasons == [
        "turnover_ratio_w2_w0 1 >= 0.9: it trades nearly as much at w_cost 2 as at w_cost 0: "
        "the cost weight it is conditioned on is ignored"]


def test_the_probe_trades_less_when_costs_weigh_more(results):
    assert turnover_ratio(results["probe"]) < 0.9


def test_the_ratio_is_not_measured_without_trades_or_without_both_w_costs(results):
    assert turnover_ratio(results["flat"]) is None
    partial = dataclasses.replace(results["momentum"], runs={w: r for w, r in results["momentum"].runs.items()
                                                            if w != 2.0})
    assert turnover_ratio(partial) is None


def test_report_has_probe_and_best_constant_rows_and_lines(results):
    rows = metrics_table(results)
    assert {(row["policy"], row["w_cost"]) for row in rows} >= {
        (name, w) for name in ("probe", "best_constant") for w in AUDIT_W_COSTS}
    report = {"schema_version": SCHEMA_VERSION, "segment": 0, "policy": "trained", "verdict": "healthy",
              "reasons": ["no rule fired"], "checks": [], "metrics": rows, "policies": policies_by_w_cost(rows),
              "reward": {}, "diagnostics": {}, "plots": {}, "links": {},
              "probe": multi_horizon_probe(TRAIN, TEST, ENV.fee).to_json(),
              "best_constant": dataclasses.asdict(best_constant(TRAIN, ENV.fee))}
    one_bar = report["probe"]["horizons"]["1"]
    assert list(report["probe"]["horizons"]) == ["1", "4", "24"] and one_bar["n_test"] == 299 and not one_bar["signal"]
    position = report["best_constant"]["position"]
    assert position in (-1.0, 0.0, 1.0)  # a constant's Sharpe is scale-free: full size or flat
    sharpe = report["policies"]["best_constant"]["1"]["sharpe"], report["policies"]["trained"]["1"]["sharpe"]
    markdown = render_markdown(report)
    assert (f"- probe (ridge on the inputs, fit on train): 1 bar: IC {one_bar['ic']:.3f} (t {one_bar['ic_tstat']:.1f}), "
            f"hit {100 * one_bar['hit_rate']:.1f} %, net Sharpe {one_bar['net_sharpe']:.2f}; 4 bars: IC ") in markdown
    assert (f"; trades {report['probe']['trading_horizon']} bar(s) (best on train); an edge larger than the fee (IC > 0 "
            "with t >= 2 and net Sharpe > 0 on test) at: ") in markdown
    trained = report["policies"]["trained"]["1"]
    assert (f"- net at the real fee over the test slice (w_cost 1): trained Sharpe {trained['sharpe']:.4g} (log-return "
            f"gross {100 * trained['gross_log_return']:+.1f} %, fees {100 * trained['cost']:+.1f} %") in markdown
    assert f"baselines' Sharpe: buy_and_hold {report['policies']['buy_and_hold']['1']['sharpe']:.4g}, flat " in markdown
    assert (f"- best_constant: position {position:+.1f} (best train net Sharpe "
            f"{report['best_constant']['train_sharpe']:.2f}); test net Sharpe at w_cost 1: "
            f"{sharpe[0]:.4g} vs trained {sharpe[1]:.4g}") in markdown
