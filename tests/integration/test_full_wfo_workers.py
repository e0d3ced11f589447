"""full-wfo via deployments: two segments trained at once on two workers, results in the bucket, one summary."""

from __future__ import annotations

import time

import pytest

from cryptorl.storage import ArtifactStore
from tests.flows.prefect_helpers import flow_run_artifact, task_states

pytestmark = pytest.mark.integration

SPEC = {"profile": "smoke", "timesteps": 256, "overrides": {"mae.max_epochs": "1"}}


@pytest.fixture(scope="module")
def two_workers(workers):
    return [workers.start(name, "--limit", "1") for name in ("gpu-1", "gpu-2")]  # one run at a time each


@pytest.fixture(scope="module")
def full_run(two_workers, timings):
    from flows.full_wfo import full_wfo

    started = time.monotonic()
    state = full_wfo(segments="0-1", via_deployments=True, spec=SPEC, return_state=True)
    timings["full-wfo, 2 segments on 2 workers"] = time.monotonic() - started
    return state.state_details.flow_run_id, state.result()


def test_each_segment_runs_on_its_own_worker(full_run, two_workers):
    _, outcomes = full_run
    assert [(o.segment, o.state) for o in outcomes] == [(0, "Completed"), (1, "Completed")]
    ran_on = {o.segment: [w.name for w in two_workers if w.executed(o.flow_run_id)] for o in outcomes}
    assert sorted(name for names in ran_on.values() for name in names) == ["gpu-1", "gpu-2"]


def test_both_segments_store_their_artifacts_under_their_own_prefix(full_run, workers):
    store = ArtifactStore(workers.store_url)
    for segment in (0, 1):
        keys = store.list(f"segments/{segment}")
        assert any(key.startswith(f"segments/{segment}/tqc/") and key.endswith("/model.zip") for key in keys)
        assert any(key.startswith(f"segments/{segment}/audit/") and key.endswith("/report.json") for key in keys)


def test_the_summary_links_both_reports_in_the_bucket(full_run, workers):
    flow_run_id, _ = full_run
    states = task_states(flow_run_id)  # the parent's own tasks are recorded on this server too
    assert (states["plan_segments"], states["summarize"]) == ("Completed", "Completed")
    summary = flow_run_artifact(flow_run_id, "wfo-summary")
    for segment in (0, 1):
        [row] = [line for line in summary.data.splitlines() if line.startswith(f"| {segment} |")]
        assert f"]({workers.store_url}/segments/{segment}/audit/" in row and "/report.json) |" in row
