"""full-wfo locally (segments as parallel subflows, the `wfo-summary` artifact) and retrain-latest on its cache."""

from __future__ import annotations

from uuid import uuid4

import pytest

from cryptorl.errors import ConfigError
from cryptorl.storage import ArtifactStore
from flows.full_wfo import SegmentSummary, select_segments, sharpe_by_policy, summary_markdown
from tests.flows.prefect_helpers import subflow_runs, task_states

TIMESTEPS = 256
OVERRIDES = {"mae.max_epochs": "1"}  # the orchestration is under test here, not learning
STAGES = ("split_segment", "fit_hmm", "pretrain_mae", "train_tqc", "audit")


@pytest.fixture(scope="module")
def run_params(data_2018, tmp_path_factory) -> dict:
    return {"profile": "smoke", "timesteps": TIMESTEPS, "data": data_2018, "overrides": OVERRIDES,
            "storage": f"file://{tmp_path_factory.mktemp('store')}"}


@pytest.fixture(scope="module")
def full_run(prefect_harness, run_params):
    from flows.full_wfo import full_wfo

    state = full_wfo(segments="all", **run_params, return_state=True)
    return state.state_details.flow_run_id, state.result()


def test_every_segment_runs_as_a_completed_subflow(full_run, run_params):
    _, outcomes = full_run
    assert [o.segment for o in outcomes] == [0, 1]
    assert [o.state for o in outcomes] == ["Completed", "Completed"]
    for outcome in outcomes:
        states = task_states(outcome.flow_run_id)
        assert {name: states[name] for name in STAGES} == {name: "Completed" for name in STAGES}
    store = ArtifactStore(run_params["storage"])
    for segment in (0, 1):  # each segment writes under its own prefix
        assert any(key.endswith("model.zip") for key in store.list(f"segments/{segment}/tqc"))


def test_segments_run_in_parallel(full_run):
    from prefect import get_client

    _, outcomes = full_run
    with get_client(sync_client=True) as client:
        first, second = (client.read_flow_run(o.flow_run_id) for o in outcomes)
    assert first.start_time < second.end_time and second.start_time < first.end_time  # the runs overlap


def test_summary_artifact_lists_every_segment(full_run):
    from prefect.artifacts import Artifact

    flow_run_id, _ = full_run
    artifact = Artifact.get("wfo-summary")
    assert artifact is not None and artifact.type == "markdown" and artifact.flow_run_id == flow_run_id
    rows = [line for line in artifact.data.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert len(rows) == 2 and all("Completed" in row and "[report.json](file://" in row for row in rows)
    assert "n/a 2" not in artifact.data  # the verdicts come from the audit reports


def test_retrain_latest_picks_the_newest_segment_and_hits_the_cache(full_run, run_params):
    from flows.retrain import retrain_latest

    state = retrain_latest(**run_params, return_state=True)
    assert state.result().segment == 1
    assert task_states(state.state_details.flow_run_id)["plan_segments"] == "Completed"  # reads the data again
    [segment_run] = subflow_runs(state.state_details.flow_run_id)
    states = task_states(segment_run.id)
    assert {name: states[name] for name in STAGES} == {name: "Cached" for name in STAGES}


@pytest.mark.parametrize("spec, expected", [
    ("all", [0, 1, 2, 3]), ("latest", [3]), ("2", [2]), ("0-2", [0, 1, 2]), ("3,0-1", [0, 1, 3]), ([3, 1], [1, 3]),
])
def test_select_segments(spec, expected):
    assert select_segments(spec, available=4) == expected


@pytest.mark.parametrize("spec, available, message", [
    ("0-9", 4, r"segment 4 does not exist \(the data holds 0..3\)"),
    ("3-1", 4, "cannot read '3-1'"),
    ("first", 4, "write e.g. all, latest, 3, 0-3 or 0,2,5"),
    ("all", 0, "the data holds no complete segment"),
])
def test_select_segments_refuses_bad_specs(spec, available, message):
    with pytest.raises(ConfigError, match=message):
        select_segments(spec, available)


def test_sharpe_per_policy_is_read_at_the_headline_w_cost():
    rows = [{"policy": "trained", "w_cost": 0.0, "sharpe": 2.0}, {"policy": "trained", "w_cost": 1.0, "sharpe": 0.5},
            {"policy": "buy_and_hold", "w_cost": 1.0, "sharpe": 0.8}, {"policy": "flat", "w_cost": 1.0, "sharpe": None}]
    assert sharpe_by_policy(rows) == {"trained": 0.5, "buy_and_hold": 0.8}
    assert sharpe_by_policy([]) == {}


def test_summary_markdown_shows_mean_dispersion_and_buy_and_hold_wins():
    rows = [SegmentSummary(0, "Completed", uuid4(), "ok", "s3://b/segments/0/audit/x/report.json",
                           {"trained": 1.0, "buy_and_hold": 0.5}),
            SegmentSummary(1, "Completed", uuid4(), "collapsed", "s3://b/segments/1/audit/y/report.json",
                           {"trained": 0.0, "buy_and_hold": 0.5}),
            SegmentSummary(2, "Failed", uuid4())]
    markdown = summary_markdown(rows, "smoke", ui_url="http://127.0.0.1:4200")
    assert "Verdicts: ok 1, collapsed 1, n/a 1" in markdown
    assert "| **mean** |  |  | 0.50 | 0.50 |  |" in markdown and "| **std** |  |  | 0.71 | 0.00 |  |" in markdown
    assert "- trained beats buy_and_hold (test Sharpe) in 1 of 2 segments" in markdown
    assert "[report.json](s3://b/segments/1/audit/y/report.json)" in markdown
    assert f"[Failed](http://127.0.0.1:4200/runs/flow-run/{rows[2].flow_run_id})" in markdown
    assert "| 2 |" in markdown and markdown.count("n/a") >= 3  # the failed segment: verdict, Sharpes, report


def test_summary_without_audit_reports_degrades_to_na():
    markdown = summary_markdown([SegmentSummary(0, "Completed", uuid4())], "smoke")
    assert "| segment | run | verdict | report |" in markdown and "| 0 | Completed | n/a | n/a |" in markdown
    assert "Sharpe vs buy & hold: n/a" in markdown


def test_cli_wfo_refuses_unknown_segments_before_any_flow_runs(capsys):
    from cryptorl.cli import main

    assert main(["wfo", "--segments", "2-99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cryptorl: error: segments '2-99': segment ") and "\n" not in err
