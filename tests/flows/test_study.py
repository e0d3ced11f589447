"""`cryptorl study` and the study flow: (setting, seed, segment) runs, one table from their real audit reports,
the per-setting summary (Prefect table artifacts and CSVs in the store), and a rerun that is all cache hits.

The runs go through a one-thread task runner here: the process-pool fan-out is `run_segments`, which the
full-wfo tests cover, and starting a pool costs ~20 s on 2 cores.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest

from cli.main import main
from cryptorl.storage import ArtifactStore, read_url
from tests.flows.prefect_helpers import (first_flow_run_on, flow_run_artifact, subflow_runs,
                                         task_states)

pytestmark = pytest.mark.timeout(600)  # its first test waits for the whole study (2 segment runs)

STAGES = ("split_segment", "fit_hmm", "pretrain_mae", "train_tqc", "audit")
SETTINGS = {"base": {}, "gamma": {"train.gamma": "0.9"}}
OVERRIDES = {"mae.max_epochs": "1", "mae.steps_per_epoch": "5", "regime.n_inits": "1"}  # orchestration, not learning
CLI_ARGS = ["--setting", "base:", "--setting", "gamma:train.gamma=0.9", "--seeds", "1", "--segments", "0",
            "--timesteps", "256", *[arg for key, value in OVERRIDES.items() for arg in ("--set", f"{key}={value}")]]


@pytest.fixture(scope="module")
def sequential_study():
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.study import study

    return study.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))


@pytest.fixture(scope="module")
def cli_run(prefect_harness, sequential_study, data_2018, tmp_path_factory):
    """`cryptorl study` in-process: (exit code, stdout, storage)."""
    import flows.study

    storage = f"file://{tmp_path_factory.mktemp('store')}"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(flows.study, "study", sequential_study)
        code = main(["study", *CLI_ARGS, "--data", data_2018, "--storage", storage])
    return code, out.getvalue(), storage


@pytest.fixture(scope="module")
def study_run_id(cli_run):
    """The flow run of the CLI's study (a later test reruns it on the same store)."""
    return first_flow_run_on("study", cli_run[2]).id


def csv_rows(uri: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read_url(uri).decode())))


def printed_uri(out: str, label: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(f"{label}: ")]
    return line.split()[1]


def test_cli_prints_the_summary_and_the_csv_uris(cli_run):
    code, out, storage = cli_run
    assert code == 0
    assert "2 runs (2 settings x 1 seeds x 1 segments) done in" in out
    for setting in SETTINGS:  # one line per run: verdict, net Sharpe against buy & hold, promotion
        [line] = [line for line in out.splitlines() if line.startswith(f"{setting} seed 1 segment 0: ")]
        assert " vs buy & hold " in line and line.endswith("; not a promotion candidate (a study run)")
    assert any(line.startswith("setting") and "healthy_fraction" in line for line in out.splitlines())
    table, summary = printed_uri(out, "table"), printed_uri(out, "summary")
    assert table.startswith(f"{storage}/study/") and table.endswith("/table.csv")
    assert summary == table.replace("table.csv", "summary.csv")


def test_table_has_one_row_per_run_read_from_its_audit_report(cli_run):
    _, out, _ = cli_run
    rows = csv_rows(printed_uri(out, "table"))
    assert [(r["setting"], r["seed"], r["segment"], r["state"]) for r in rows] == [
        ("base", "1", "0", "Completed"), ("gamma", "1", "0", "Completed")]
    for row in rows:
        report = json.loads(read_url(row["report"]))
        headline = {policy: metrics["1"] for policy, metrics in report["policies"].items()}
        assert row["verdict"] == report["verdict"]
        # The audit stage itself wrote the probe and best_constant baselines and sections.
        assert {"trained", "buy_and_hold", "best_constant", "probe"} <= headline.keys()
        assert {"ic", "ic_tstat", "hit_rate", "signal", "net_sharpe"} <= report["probe"]["horizons"]["1"].keys() and "position" in report["best_constant"]
        for policy in ("trained", "buy_and_hold", "best_constant", "probe"):
            assert row[f"sharpe_{policy}"] == str(headline[policy]["sharpe"])
        assert row["sharpe_trained_w2"] == str(report["policies"]["trained"]["2"]["sharpe"])
        measured = {check["measurement"]: check["value"] for check in report["checks"]}
        assert float(row["position_std_across_states"]) == measured["position_std_across_states"]
    assert rows[0]["report"] != rows[1]["report"]  # another gamma: another agent, another audit


def test_summary_has_one_row_per_setting_in_the_csv_and_as_artifacts(cli_run, study_run_id):
    _, out, _ = cli_run
    summary = csv_rows(printed_uri(out, "summary"))
    assert [(row["setting"], row["runs"], row["completed"]) for row in summary] == [("base", "1", "1"),
                                                                                  ("gamma", "1", "1")]
    for row in summary:  # each setting's test slices stitched: the ensemble (one seed here) against buy & hold
        low, estimate, high = (float(row[f"ensemble_sharpe{end}"]) for end in ("_low", "", "_high"))
        assert low <= estimate <= high and row["ensemble_segments_beating_bh"] in ("0/1", "1/1")
        assert float(row["ensemble_minus_bh"]) == pytest.approx(estimate - float(row["bh_sharpe"]))
        assert {"median_fees_trained", "median_probe_t_24", "healthy"} <= row.keys()
    table_artifact, summary_artifact = (flow_run_artifact(study_run_id, key)
                                        for key in ("study-table", "study-summary"))
    assert table_artifact.type == summary_artifact.type == "table"
    assert len(json.loads(table_artifact.data)) == 2 and printed_uri(out, "table") in table_artifact.description
    assert [row["setting"] for row in json.loads(summary_artifact.data)] == ["base", "gamma"]


def test_each_run_gets_its_seed_and_its_settings_overrides(study_run_id):
    runs = {run.name: run.parameters for run in subflow_runs(study_run_id)}
    assert set(runs) == {"base-seed-1-segment-0", "gamma-seed-1-segment-0"}
    assert runs["base-seed-1-segment-0"]["spec"]["seeds"] == runs["gamma-seed-1-segment-0"]["spec"]["seeds"] == [1]
    assert runs["gamma-seed-1-segment-0"]["spec"]["overrides"] == {**OVERRIDES, "train.gamma": "0.9"}


def test_study_runs_never_touch_the_champion_registry(cli_run, study_run_id):
    _, _, storage = cli_run
    for run in subflow_runs(study_run_id):
        assert run.parameters["promote_champion"] is False and "promote" not in task_states(run.id)
    assert ArtifactStore(storage).list("registry") == []


def test_rerun_of_the_same_study_is_all_cache_hits(cli_run, sequential_study, data_2018):
    _, out, storage = cli_run
    first_table = read_url(printed_uri(out, "table"))
    spec = {"seeds": "1", "timesteps": 256, "data": data_2018, "storage": storage, "overrides": OVERRIDES,
            "profile": "smoke"}
    state = sequential_study(settings=SETTINGS, segments="0", spec=spec, return_state=True)
    result = state.result()
    for run in subflow_runs(state.state_details.flow_run_id):
        states = task_states(run.id)
        assert {name: states[name] for name in STAGES} == {name: "Cached" for name in STAGES}
    assert result.table_csv.uri == printed_uri(out, "table")  # the same study: the same place, the same rows
    assert read_url(result.table_csv.uri) == first_table
