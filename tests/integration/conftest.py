"""Real services on 127.0.0.1 for the integration tests: moto's S3, a Prefect server, process workers.

Everything started here is stopped by PID in a finalizer, also when a test fails. Child processes run
in their own session (start_new_session) and are stopped with their whole process group; the flow-run
processes a worker starts (each in its own session too) are stopped with their worker. The servers are
shared by all integration tests (package scope) and stopped when they are done. Durations go to `timings`
and are printed at the end (`pytest -s` shows them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from uuid import UUID

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BUCKET = "cryptorl-it"
HEALTH_TIMEOUT_S = 180  # 11-22 s measured; other people's tests share these 2 cores
WORKER_READY_TIMEOUT_S = 120
FLOW_RUN_TIMEOUT_S = 600
STOP_TIMEOUT_S = 30
# pytest-timeout per integration test: above the servers' start, the workers' and one flow run's own limits
# (180 + 120 + 600 s), which the first test of a module may all wait for, so their clearer errors come first.
INTEGRATION_TEST_TIMEOUT_S = 1200


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test under tests/integration the integration timeout, unless it sets its own."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(INTEGRATION_TEST_TIMEOUT_S))


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.5) -> float:
    """Seconds until `ready()` held; AssertionError naming `what` after `timeout_s`."""
    started = time.monotonic()
    while not ready():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} not ready after {timeout_s} s")
        time.sleep(poll_s)
    return time.monotonic() - started


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prefect_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any PREFECT_* setting of the caller, plus a private PREFECT_HOME."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


class Service:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path,
                 preexec_fn: Callable[[], Any] | None = None) -> None:
        self.name, self.log_path = name, log
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True, preexec_fn=preexec_fn)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def executed(self, flow_run_id: UUID) -> bool:
        """Whether this worker ran that flow run: only the run's own process logs its UI link here (a worker
        that lost the race for a run also logs 'submitting flow run', then 'Aborted submission')."""
        return f"/runs/flow-run/{flow_run_id}" in self.log()

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after STOP_TIMEOUT_S."""
        for pid in child_pids(self.pid):  # a worker's flow runs live in sessions of their own
            _signal_group(pid, signal.SIGKILL)
        if not self.running():
            return
        _signal_group(self.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _signal_group(pid: int, number: int) -> None:
    try:
        os.killpg(pid, number)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class S3:
    endpoint: str
    env: dict[str, str]  # AWS_* settings that point s3fs and botocore at the moto server


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    home: Path


@pytest.fixture(scope="package")
def timings():
    """Durations worth reporting, printed when the integration tests are done."""
    recorded: dict[str, float] = {}
    yield recorded
    print("\nintegration timings:")
    for name, seconds in recorded.items():
        print(f"  {name}: {seconds:.1f} s")


@pytest.fixture(scope="package")
def integration_started(timings):
    started = time.monotonic()
    yield
    timings["integration tests, all (servers, workers, runs)"] = time.monotonic() - started


def start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def s3_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="package")
def moto_s3(integration_started):
    """moto's S3 on a free port with the bucket `cryptorl-it`; this process's s3fs points at it too."""
    import boto3
    import s3fs

    server, endpoint = start_moto()
    env = s3_env(endpoint)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep another endpoint
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            yield S3(endpoint, env)
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="package")
def prefect_server(tmp_path_factory, timings, integration_started):
    """`prefect server start` in the foreground (SQLite in a temporary PREFECT_HOME); this process's client uses it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server = Service("prefect-server", [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                        "--port", str(port)],
                     prefect_env(home / "home", PREFECT_UI_ENABLED="false"), home / "server.log")
    try:
        timings["prefect server start -> /api/health"] = wait_until(
            lambda: _healthy(api_url) or not server.running(), HEALTH_TIMEOUT_S, "prefect server")
        assert server.running(), f"prefect server exited:\n{server.log()[-3000:]}"
        restart_client_services()
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield PrefectServer(api_url, home)
    finally:
        restart_client_services()  # a later ephemeral server (prefect_harness) gets its own
        server.stop()


def restart_client_services() -> None:
    """Drop the process-wide events and API-log workers: each one stays bound to the server it first talked
    to, so after the ephemeral test server this process's events (task runs!) would go to the wrong server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    EventsWorker.drain_all()
    APILogWorker.drain_all()


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def prefect_cli(server: PrefectServer, *args: str, timeout_s: float = 300) -> str:
    result = subprocess.run([str(VENV_BIN / "prefect"), "--no-prompt", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=timeout_s,
                            env=prefect_env(server.home / "cli-home", PREFECT_API_URL=server.api_url))
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="package")
def deployed(prefect_server, timings) -> PrefectServer:
    """The `gpu` pool and every deployment of prefect.yaml, as a user would create them."""
    started = time.monotonic()
    prefect_cli(prefect_server, "work-pool", "create", "gpu", "--type", "process")
    timings["work-pool create"] = time.monotonic() - started
    started = time.monotonic()
    prefect_cli(prefect_server, "deploy", "--all")
    timings["prefect deploy --all (3 deployments)"] = time.monotonic() - started
    return prefect_server


class Workers:
    """Process workers started like on the GPU server: deployments/start-worker.sh, S3 from the environment.

    All workers of one instance share the store `store_url` (their CRYPTORL_STORAGE).
    """

    def __init__(self, server: PrefectServer, s3: S3, store_url: str, root: Path, timings: dict[str, float]) -> None:
        self.server, self.s3, self.store_url, self.root, self.timings = server, s3, store_url, root, timings
        self.started: dict[str, Service] = {}

    def start(self, name: str, *args: str) -> Service:
        env = prefect_env(self.root / f"{name}-home", PREFECT_API_URL=self.server.api_url,
                          PREFECT_WORKER_QUERY_SECONDS="1", **self.s3.env,
                          CRYPTORL_STORAGE=self.store_url, CRYPTORL_HOME=str(REPO),
                          CRYPTORL_ENV_FILE=str(self.root / "no-such.env"),
                          CRYPTORL_WORK_DIR=str(self.root / f"{name}-work"))
        # Started like `start-worker.sh &` from a non-interactive shell: SIGINT ignored on entry.
        worker = Service(name, [str(REPO / "deployments" / "start-worker.sh"), "--name", name, *args], env,
                         self.root / f"{name}.log", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        self.started[name] = worker
        self.timings[f"worker {name} start"] = wait_until(
            lambda: f"Worker '{name}' started" in worker.log() or not worker.running(), WORKER_READY_TIMEOUT_S,
            f"worker {name}")
        assert worker.running(), f"worker {name} exited:\n{worker.log()[-3000:]}"
        return worker

    def stop_all(self) -> None:
        for worker in self.started.values():
            worker.stop()


@pytest.fixture(scope="module")
def workers(request, deployed, moto_s3, tmp_path_factory, timings):
    """Workers of one test module, storing under `s3://cryptorl-it/<module>`; stopped when the module ends."""
    store_url = f"s3://{BUCKET}/{request.module.__name__.rsplit('.', 1)[-1]}"
    pool = Workers(deployed, moto_s3, store_url, tmp_path_factory.mktemp("workers"), timings)
    try:
        yield pool
    finally:
        pool.stop_all()


@dataclass(frozen=True)
class FinishedRun:
    id: UUID
    state: str
    start_latency_s: float  # created -> running, server clock
    run_s: float  # running -> finished, server clock


def trigger(deployment: str, parameters: dict[str, Any]) -> FinishedRun:
    """Create a run of `deployment` and wait until it finishes (FLOW_RUN_TIMEOUT_S)."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    created = run_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False)
    with get_client(sync_client=True) as client:
        wait_until(lambda: client.read_flow_run(created.id).state.is_final(), FLOW_RUN_TIMEOUT_S,
                   f"flow run {created.id} of {deployment}", poll_s=1.0)
        run = client.read_flow_run(created.id)
    return FinishedRun(run.id, run.state.name, (run.start_time - run.created).total_seconds(),
                       (run.end_time - run.start_time).total_seconds())
