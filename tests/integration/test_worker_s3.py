"""A real Prefect server, process workers and moto's S3: deploy, trigger `wfo-segment`, read the results back.

The second run goes to another worker (a fresh process on another PREFECT_HOME) and must be served
entirely from the cache in the bucket.
"""

from __future__ import annotations

import re
import signal

import pytest

from cryptorl.storage import ArtifactStore
from cryptorl.tensorboard_sync import sync_tensorboard
from tests.flows.prefect_helpers import task_states
from tests.integration.conftest import trigger, wait_until

pytestmark = pytest.mark.integration

SEGMENT_DEPLOYMENT = "wfo-segment/wfo-segment"
# Smoke scale: the orchestration is under test, not learning.
PARAMETERS = {"segment": 0, "spec": {"profile": "smoke", "timesteps": 256, "overrides": {"mae.max_epochs": "1"}}}
STAGES = ("split_segment", "fit_hmm", "pretrain_mae", "train_tqc", "audit")


@pytest.fixture(scope="module")
def worker_a(workers):
    return workers.start("worker-a")


@pytest.fixture(scope="module")
def cold_run(worker_a, timings):
    run = trigger(SEGMENT_DEPLOYMENT, PARAMETERS)
    timings["wfo-segment trigger -> running (cold)"] = run.start_latency_s
    timings["wfo-segment run on S3, cold"] = run.run_s
    return run


@pytest.fixture(scope="module")
def worker_a_stop_seconds(worker_a, cold_run, timings) -> float:
    """One SIGTERM to worker A (started with SIGINT ignored, like a `&` job of a script)."""
    worker_a.process.send_signal(signal.SIGTERM)
    seconds = wait_until(lambda: not worker_a.running(), 60, "worker-a exit after one SIGTERM", poll_s=0.2)
    timings["worker-a stop after one SIGTERM"] = seconds
    return seconds


@pytest.fixture(scope="module")
def cached_run(workers, worker_a_stop_seconds, timings):
    """The rerun on worker B, and the segment's objects in the bucket before it started."""
    keys_before = ArtifactStore(workers.store_url).list("segments/0")
    worker_b = workers.start("worker-b")
    run = trigger(SEGMENT_DEPLOYMENT, PARAMETERS)
    timings["wfo-segment trigger -> running (cached)"] = run.start_latency_s
    timings["wfo-segment run on S3, all cached"] = run.run_s
    return run, worker_b, keys_before


def test_the_triggered_run_completes_on_the_worker(cold_run, worker_a):
    assert cold_run.state == "Completed"
    states = task_states(cold_run.id)
    assert {name: states[name] for name in STAGES} == {name: "Completed" for name in STAGES}
    assert worker_a.executed(cold_run.id)


def test_the_audit_artifacts_belong_to_the_flow_run(cold_run):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[cold_run.id])))
    types = {artifact.key: artifact.type for artifact in artifacts}
    assert types.get("segment-0-audit") == "markdown" and types.get("segment-0-metrics") == "table"


def test_checkpoints_logs_reports_and_cached_results_land_in_the_bucket(cold_run, workers, tmp_path):
    store = ArtifactStore(workers.store_url)
    keys = store.list("segments/0")
    for pattern in (r"mae/\w+/checkpoint\.pt", r"tqc/\w+/model\.zip", r"tqc/\w+/tensorboard/.+",
                    r"mae/\w+/tensorboard/.+", r"audit/\w+/report\.json", r"audit/\w+/plots/.+\.png"):
        assert any(re.fullmatch(rf"segments/0/{pattern}", key) for key in keys), f"no {pattern} in {store.url}"
    assert len(store.list("prefect-results")) >= len(STAGES)  # Prefect's cached task results
    assert sync_tensorboard(store, tmp_path, segment=0).downloaded >= 2  # `cryptorl tensorboard` reads the bucket


def test_a_single_sigterm_stops_a_worker(worker_a_stop_seconds, worker_a):
    assert not worker_a.running()  # within wait_until's 60 s; the stop time itself is in `timings`
    assert "Worker 'worker-a' stopped!" in worker_a.log()


def test_another_worker_serves_the_rerun_from_the_bucket_cache(cached_run, workers):
    run, worker_b, keys_before = cached_run
    assert run.state == "Completed"
    assert worker_b.executed(run.id)
    states = task_states(run.id)
    assert {name: states[name] for name in STAGES} == {name: "Cached" for name in STAGES}
    assert ArtifactStore(workers.store_url).list("segments/0") == keys_before  # no stage ran again
