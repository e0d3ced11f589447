"""The study library: settings syntax and grid files, seeds, rows read from audit reports, the summary, CSV."""

import csv
import io
import json

import pytest

from cryptorl.audit.report import policies_by_w_cost
from cryptorl.audit.verdict import judge
from cli.main import main
from cryptorl.errors import ConfigError
from cryptorl.config import get_profile, with_overrides
from cryptorl.study import (StudyRun, check_grid, grid_from_cli, parse_setting, render_text, study_row, study_runs,
                            summarize_settings, to_csv)

W_COSTS = (0.0, 0.5, 1.0, 2.0)


def report(sharpe: float, position_std: float, policies=("trained", "buy_and_hold", "best_constant", "probe")) -> dict:
    """A report.json as cryptorl/stages/audit.py builds it: verdict + checks from `judge`, policies from rows."""
    verdict = judge({"position_std_across_states": position_std, "position_std_over_test": position_std,
                     "actor_market_attribution": 0.4, "q_spread_over_noise": 2.0, "action_saturation": 0.0})
    rows = [{"policy": policy, "w_cost": w, "sharpe": sharpe - w + index, "turnover": 0.1 / (1 + w),
             "gross_log_return": 0.05 * sharpe, "cost": 0.02 / (1 + w)}
            for index, policy in enumerate(policies) for w in W_COSTS]
    probe = {"horizons": {str(h): {"ic_tstat": sharpe / h, "net_sharpe": -h} for h in (1, 4, 24)},
             "trading_horizon": 4, "edge_horizons": []}
    return {"schema_version": 2, "segment": 0, "policy": "trained", "verdict": verdict.verdict,
            "reasons": verdict.reasons, "checks": verdict.checks, "w_costs": list(W_COSTS),
            "policies": policies_by_w_cost(rows), "metrics": rows, "probe": probe}


@pytest.mark.parametrize("text, expected", [
    ("baseline:", ("baseline", {})),
    ("nodrop:train.top_quantiles_to_drop=0", ("nodrop", {"train.top_quantiles_to_drop": "0"})),
    ("ent:train.ent_coef=auto_0.01,train.gamma=0.9", ("ent", {"train.ent_coef": "auto_0.01", "train.gamma": "0.9"})),
    ("arch: train.net_arch=64,64, train.gamma=0.9", ("arch", {"train.net_arch": "64,64", "train.gamma": "0.9"})),
])
def test_parse_setting(text, expected):
    assert parse_setting(text) == expected


def test_grid_file_and_settings_combine_and_values_become_text(tmp_path):
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"nodrop": {"train.top_quantiles_to_drop": 0},
                                     "nosde": {"train.use_sde": False, "train.gamma": 0.9},
                                     "arch": {"train.net_arch": [32, 32]}}))
    grid = check_grid(grid_from_cli(["baseline:"], str(grid_file)),
                      with_overrides(get_profile("smoke"), {"mae.max_epochs": "1"}))
    assert grid == {"nodrop": {"train.top_quantiles_to_drop": "0"},
                    "nosde": {"train.use_sde": "false", "train.gamma": "0.9"}, "arch": {"train.net_arch": "32,32"},
                    "baseline": {}}


@pytest.mark.parametrize("settings, grid_json, message", [
    ([], None, "no settings: give at least one --setting NAME:STAGE.KEY=VALUE"),
    (["nodrop"], None, "setting 'nodrop' has no name: write NAME:"),
    (["x:train.gamma"], None, r"setting 'x': override 'train.gamma' is not STAGE.KEY=VALUE"),
    (["a b:"], None, r"setting name 'a b': use letters, digits"),
    (["x:train.gama=0.9"], None, r"setting 'x': unknown config key 'train.gama': train has"),
    (["x:train.gamma=1.5"], None, r"setting 'x': invalid config train.gamma=1.5: use a discount in \(0, 1\)"),
    (["x:", "x:train.gamma=0.9"], None, "'x' is given twice"),
    (["x:"], '{"x": {}}', "'x' is given twice"),
    ([], '{"x": {"train.gamma": 0.9, "train.gamma": 0.8}}', "'train.gamma' is given twice"),
    ([], '{"x": {"train.net_arch": {"a": 64}}}', r"train.net_arch=\{'a': 64\}: write a string, number or boolean"),
    ([], '{"x": "train.gamma=0.9"}', 'setting \'x\': give its overrides as {"STAGE.KEY": VALUE}, not a str'),
    ([], '["x"]', "write a JSON object"),
    ([], '{"x": {', "is not JSON"),
])
def test_bad_settings_are_one_clear_error(settings, grid_json, message, tmp_path):
    grid_file = None
    if grid_json is not None:
        grid_file = tmp_path / "grid.json"
        grid_file.write_text(grid_json)
    with pytest.raises(ConfigError, match=message):
        check_grid(grid_from_cli(settings, grid_file and str(grid_file)), get_profile("smoke"))


def test_missing_grid_file(tmp_path):
    with pytest.raises(ConfigError, match=r"grid .*absent.json not found: check the path or URL \(--grid\)"):
        grid_from_cli([], str(tmp_path / "absent.json"))


def test_runs_are_every_setting_seed_and_segment():
    runs = study_runs({"a": {}, "b": {}}, [0, 1], [4])
    assert [run.name for run in runs] == ["a-seed-0-segment-4", "a-seed-1-segment-4", "b-seed-0-segment-4",
                                         "b-seed-1-segment-4"]


def test_row_reads_verdict_measurements_and_sharpe_per_policy_and_w_cost():
    row = study_row(StudyRun("nodrop", 1, 3), "Completed", report(0.5, 0.2), "file:///s/report.json")
    assert row["setting"] == "nodrop" and row["seed"] == 1 and row["segment"] == 3 and row["verdict"] == "healthy"
    assert row["position_std_across_states"] == 0.2 and row["q_spread_over_noise"] == 2.0
    assert row["actor_market_attribution"] == 0.4 and row["position_std_over_test"] == 0.2
    # at w_cost 1 the fixture's Sharpe is sharpe - 1 + the policy's index
    assert [row[f"sharpe_{p}"] for p in ("trained", "buy_and_hold", "best_constant", "probe")] == [-0.5, 0.5, 1.5, 2.5]
    assert row["turnover_trained"] == 0.05
    assert [row[f"sharpe_trained_w{w}"] for w in ("0", "0.5", "1", "2")] == [0.5, 0.0, -0.5, -1.5]
    assert row["turnover_trained_w0"] == 0.1 and row["turnover_trained_w2"] == pytest.approx(0.1 / 3)
    assert row["report"] == "file:///s/report.json"


def test_row_without_new_baselines_or_without_report_is_blank_there():
    older = study_row(StudyRun("a", 0, 0), "Completed", report(0.5, 0.2, ("trained", "buy_and_hold")), "u")
    assert older["sharpe_best_constant"] is None and older["sharpe_probe"] is None
    assert older["sharpe_buy_and_hold"] == 0.5
    failed = study_row(StudyRun("a", 0, 1), "Failed", None, None)
    assert failed["state"] == "Failed" and failed["verdict"] is None and failed["sharpe_trained"] is None
    assert "sharpe_trained_w0" not in failed  # the audited w_costs come from the report


def test_summary_per_setting_counts_failures_and_takes_medians():
    rows = [study_row(StudyRun("a", seed, 0), "Completed", report(sharpe, std), "u")
            for seed, (sharpe, std) in enumerate([(1.0, 0.2), (2.0, 0.01), (4.0, 0.3)])]
    rows += [study_row(StudyRun("b", 0, 0), "Completed", report(0.0, 0.001), "u"),
             study_row(StudyRun("b", 1, 0), "Crashed", None, None)]
    a, b = summarize_settings(rows, {"a": {"ensemble_sharpe": 0.7}})
    assert a == {"setting": "a", "runs": 3, "completed": 3, "healthy": 2, "healthy_fraction": pytest.approx(2 / 3),
                 "median_sharpe_trained": 1.0, "median_sharpe_buy_and_hold": 2.0,
                 "median_position_std_across_states": 0.2, "median_turnover_trained": 0.05,
                 "median_gross_trained": 0.1, "median_fees_trained": 0.01,
                 "median_probe_t_1": 2.0, "median_probe_sharpe_1": -1, "median_probe_t_4": 0.5,
                 "median_probe_sharpe_4": -4, "median_probe_t_24": 2.0 / 24, "median_probe_sharpe_24": -24,
                 "ensemble_sharpe": 0.7}
    assert b["runs"] == 2 and b["completed"] == 1 and b["healthy_fraction"] == 0.0  # collapsed + crashed
    assert b["median_sharpe_trained"] == -1.0 and b["median_position_std_across_states"] == 0.001


def test_csv_has_every_column_and_blank_cells_for_missing_values():
    rows = [study_row(StudyRun("a", 0, 0), "Completed", report(0.5, 0.2), "u"),
            study_row(StudyRun("a", 0, 1), "Failed", None, None)]
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows).decode())))
    assert [r["segment"] for r in parsed] == ["0", "1"]
    assert parsed[0]["sharpe_trained_w2"] == "-1.5" and parsed[1]["sharpe_trained_w2"] == ""
    assert parsed[1]["verdict"] == "" and list(parsed[0])[:5] == ["setting", "seed", "segment", "state", "verdict"]


def test_render_text_aligns_columns():
    text = render_text([{"setting": "a", "runs": 2, "median": 0.123456}, {"setting": "long-name", "runs": 10,
                                                                           "median": None}])
    assert text.splitlines() == ["setting    runs  median", "a          2     0.1235", "long-name  10    n/a"]


@pytest.mark.parametrize("args, message", [
    (["--setting", "nodrop"], "setting 'nodrop' has no name"),
    (["--setting", "nodrop:train.top_quantiles_to_drop=99"], "setting 'nodrop': invalid config train.top_quantiles"),
    (["--setting", "a:", "--seeds", "0,x"], "seeds '0,x': write comma-separated"),
    (["--setting", "a:", "--segments", "0-999"], "segments '0-999': segment "),
])
def test_cli_study_refuses_bad_input_with_one_line_and_exit_2(args, message, capsys):
    assert main(["study", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cryptorl: error: {message}") and "\n" not in err
