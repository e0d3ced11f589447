"""Bad input fails fast and in one line: a dead store before any task, a task's CryptoRLError on the console."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from cryptorl.errors import StorageError
from tests.flows.prefect_helpers import task_states

pytestmark = pytest.mark.timeout(600)  # above its CLI subprocess's own 300 s limit, which fails more clearly


@pytest.fixture
def dead_s3(monkeypatch):
    """s3fs pointed at a port nobody listens on: a stopped MinIO or moto, a wrong AWS_ENDPOINT_URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    return "s3://bucket/run"


def _flow(name: str):
    from flows.full_wfo import full_wfo
    from flows.study import study
    from flows.wfo_segment import wfo_segment

    return {"wfo-segment": (wfo_segment, {}), "full-wfo": (full_wfo, {}),
            "study": (study, {"settings": {"baseline": {}}})}[name]


@pytest.mark.parametrize("name", ["wfo-segment", "full-wfo", "study"])
def test_each_flow_checks_the_store_before_any_task(name, prefect_harness, dead_s3):
    """A run started from the UI has no CLI in front of it: the flow itself asks the store first."""
    flow, params = _flow(name)
    started = time.monotonic()
    state = flow(spec={"storage": dead_s3}, return_state=True, **params)
    assert time.monotonic() - started < 20  # the store's retries after the split stage took ~100 s
    assert state.is_failed() and task_states(state.state_details.flow_run_id) == {}
    with pytest.raises(StorageError, match=r"artifact store s3://bucket/run is unreachable"):
        state.result()


def test_a_task_raised_error_is_one_console_line_and_a_traceback_in_the_run_logs(prefect_harness, data_2018,
                                                                                  tmp_path):
    """`cryptorl run` whose split task cannot write (the store's `segments` is a file): the console shows the
    CLI's one line, the run's logs in the Prefect API keep Prefect's tracebacks."""
    from prefect.settings import get_current_settings

    store = tmp_path / "store"
    store.mkdir()
    (store / "segments").write_text("a file where the segments directory belongs")
    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "cli.main", "run", "--data", data_2018, "--storage",
                             f"file://{store}"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(lines) <= 6, result.stderr  # Prefect's progress lines + 1
    assert [line for line in lines if "cannot write" in line] == [lines[-1]]
    assert lines[-1].startswith(f"cryptorl: error: cannot write file://{store}/segments/0/split/")
    assert any("Traceback" in message and "cannot write" in message for message in _run_logs(f"file://{store}"))


def _run_logs(storage: str) -> list[str]:
    """The API's log messages of the failed `wfo-segment` run on `storage`."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        runs = [run for run in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["wfo-segment"])))
                if run.parameters["spec"]["storage"] == storage]
        assert len(runs) == 1 and runs[0].state.is_failed()
        return [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))]
