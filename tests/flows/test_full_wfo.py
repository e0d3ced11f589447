"""full-wfo locally (segments x 2 seeds as parallel subflows, the `wfo-summary` artifact with the stitched
out-of-sample series) and retrain-latest on its cache."""

from __future__ import annotations

import json
import re

import pytest

from cryptorl.storage import ArtifactStore, read_url
from tests.flows.prefect_helpers import flow_run_artifact, subflow_runs, task_states

pytestmark = pytest.mark.timeout(600)  # its first test waits for 2 segments x 2 seeds in a process pool

TIMESTEPS = 256
OVERRIDES = {"mae.max_epochs": "1"}  # the orchestration is under test here, not learning
STAGES = ("split_segment", "fit_hmm", "pretrain_mae", "train_tqc", "audit")
SEEDS = "0,1"


@pytest.fixture(scope="module")
def run_params(data_2018, tmp_path_factory) -> dict:
    """The run specification's fields (the flows take them as `spec`)."""
    return {"profile": "smoke", "timesteps": TIMESTEPS, "data": data_2018, "overrides": OVERRIDES,
            "storage": f"file://{tmp_path_factory.mktemp('store')}"}


@pytest.fixture(scope="module")
def full_run(prefect_harness, run_params):
    from flows.full_wfo import full_wfo

    state = full_wfo(segments="all", spec={**run_params, "seeds": SEEDS}, return_state=True)
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


def test_summary_artifact_lists_every_segment_and_seed(full_run):
    flow_run_id, _ = full_run
    artifact = flow_run_artifact(flow_run_id, "wfo-summary")
    assert artifact.type == "markdown"
    rows = [line for line in artifact.data.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert [row.split(" | ")[:2] for row in rows] == [["| 0", "0"], ["| 0", "1"], ["| 1", "0"], ["| 1", "1"]]
    assert all(re.search(r"^\| \d \| \d \| \[\w+\]\(file://\S+/report\.json\) \|", row) for row in rows)
    assert re.search(r"^Runs: segment 0 \S*Completed\S* · segment 1 \S*Completed", artifact.data, re.MULTILINE)
    cells = [cell.strip() for row in rows for cell in row.strip("|").split("|")]
    assert "n/a" not in cells  # every verdict and Sharpe comes from an audit report (a cell, not a run id's "run/a")
    assert re.search(r"\| segment 0 \| 2 \| -?\d+\.\d\d ± \d+\.\d\d \|", artifact.data)


def test_summary_artifact_shows_the_stitched_series_with_intervals_dsr_and_an_inline_plot(full_run):
    markdown = flow_run_artifact(full_run[0], "wfo-summary").data
    assert "## Stitched out of sample: segments 0, 1, " in markdown
    interval = r"\[-?\d+\.\d\d, -?\d+\.\d\d\]"
    for policy in ("trained seed 0", "trained seed 1", "seed ensemble"):  # with a DSR and both intervals
        assert re.search(rf"^\| {policy} \| -?\d+\.\d\d \| {interval} \| -?\d+\.\d\d \| {interval} \|.* \| "
                         rf"\d\.\d\d \| \d of 2 \|$", markdown, re.MULTILINE), policy
    for policy in ("buy_and_hold", "flat", "momentum", "probe", "best_constant"):
        assert re.search(rf"^\| {policy} \| -?\d+\.\d\d \| {interval} \| ", markdown, re.MULTILINE), policy
    assert "DSR (Bailey & López de Prado 2014) = PSR(SR0): N = 2 trials" in markdown
    assert "- 1 of 1 junctions contiguous" in markdown  # the smoke segments' test slices tile
    assert re.search(r"!\[stitched equity\]\(data:image/png;base64,[A-Za-z0-9+/=]{1000,}\)", markdown)
    [summary_uri] = re.findall(r"\[summary\.json\]\((\S+)\)", markdown)
    summary = json.loads(read_url(summary_uri))
    assert [row["policy"] for row in summary["stitched"]["policies"]][:3] == ["trained seed 0", "trained seed 1",
                                                                            "seed ensemble"]
    assert summary["links"]["equity.png"] in markdown and summary["links"]["series.parquet"] in markdown


def test_every_audit_stores_its_series_and_records_one_trial(full_run, run_params):
    store = ArtifactStore(run_params["storage"])
    reports = [store.read_json(key) for key in store.list("segments") if re.search(r"/audit/\w+/report\.json$", key)]
    assert sorted((r["segment"], r["seed"]) for r in reports) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for report in reports:
        series = store.read_frame(store.key_of(report["series"]))
        assert len(series) == report["policies"]["trained"]["1"]["n_bars"] and str(series.index.tz) == "UTC"
        assert report["data"]["dataset"] == "btc-to-2018-10" and report["fee"] > 0
        trial = json.loads(read_url(report["trial"]))
        assert (trial["seed"], trial["segment"], trial["dataset"]) == (report["seed"], report["segment"],
                                                                       "btc-to-2018-10")
        assert json.loads(read_url(trial["report"]))["trial"] == report["trial"]  # each points at the other
    assert len(store.list("trials/btc-to-2018-10")) == 4


def test_retrain_latest_picks_the_newest_segment_and_hits_the_cache(full_run, run_params):
    from flows.retrain import retrain_latest

    state = retrain_latest(spec=run_params, return_state=True)
    assert state.result().segment == 1
    assert task_states(state.state_details.flow_run_id)["plan_segments"] == "Completed"  # reads the data again
    [segment_run] = subflow_runs(state.state_details.flow_run_id)
    states = task_states(segment_run.id)
    assert {name: states[name] for name in STAGES} == {name: "Cached" for name in STAGES}
    assert len(ArtifactStore(run_params["storage"]).list("trials/btc-to-2018-10")) == 4  # a cached audit: no new trial


def test_cli_wfo_refuses_unknown_segments_before_any_flow_runs(capsys):
    from cli.main import main

    assert main(["wfo", "--segments", "2-99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cryptorl: error: segments '2-99': segment ") and "\n" not in err


def test_cli_wfo_ends_with_each_runs_verdict_sharpes_and_promotion(full_run, run_params, capsys):
    from cli.main import main

    args = ["wfo", "--segments", "0-1", "--profile", "smoke", "--timesteps", str(TIMESTEPS), "--data",
            run_params["data"], "--storage", run_params["storage"], "--seeds", SEEDS, "--set", "mae.max_epochs=1"]
    assert main(args) == 0  # every stage a cache hit of full_run's
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("segment ")]
    run_lines = [line for line in lines if " seed " in line.split(":")[0]]
    assert [line.split(":")[0] for line in run_lines] == [f"segment {s} seed {d}" for s in (0, 1) for d in (0, 1)]
    number = r"-?\d+(\.\d+)?"
    for line in run_lines:
        assert re.search(rf": [A-Z]+, net Sharpe {number} vs buy & hold {number}; ", line), line
        assert re.search(r"; (promotion (accepted|rejected|retired): .+|no promotion decision logged)$", line), line
