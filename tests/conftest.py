"""Shared fixtures: the bundled data (whole, and a two-segment slice), Prefect, moto's S3."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from cryptorl.config import DEFAULT_DATA_PATH
from cryptorl.data import load_ohlcv


# Tiny networks on a 2-core CI box: two torch threads fight each other (and the Prefect server) and run
# up to 10x slower than one. CRYPTORL_TEST_THREADS=2 reruns the suite on other kernels' rounding (README, Testing).
torch.set_num_threads(int(os.environ.get("CRYPTORL_TEST_THREADS", "1")))

@pytest.fixture(scope="session", autouse=True)
def work_dir(tmp_path_factory) -> str:
    """The training stages' work dirs for this session (never ~/.cache: two xdist workers may train the same
    fingerprint at once)."""
    path = str(tmp_path_factory.mktemp("work"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRYPTORL_WORK_DIR", path)
        yield path


@pytest.fixture(scope="session")
def bundled_ohlcv() -> pd.DataFrame:
    """The real BTC/USDT 1h bars, gaps filled (55,868 bars)."""
    return load_ohlcv(DEFAULT_DATA_PATH)


@pytest.fixture(scope="module")
def data_2018(tmp_path_factory) -> str:
    """The bundled bars up to 2018-10-10: exactly two smoke segments (0 and 1)."""
    frame = pd.read_parquet(DEFAULT_DATA_PATH)
    path = tmp_path_factory.mktemp("data") / "btc-to-2018-10.parquet"
    frame[frame["timestamp"] < pd.Timestamp("2018-10-10", tz="UTC")].to_parquet(path, index=False)
    return str(path)


@pytest.fixture
def moto_endpoint(monkeypatch):
    """moto's S3 server on 127.0.0.1 (no network), this process's boto3/s3fs pointed at it; yields its stop."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()  # an instance cached by an earlier test talks to another endpoint
    running = [True]

    def stop() -> None:
        server.stop()
        running[0] = False

    yield stop
    if running[0]:
        server.stop()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One ephemeral Prefect server for the session, with results isolated in a temporary folder."""
    import tasks  # noqa: F401  (applies the Prefect settings measured on these machines)
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(tmp_path_factory.mktemp("prefect-results"))}):
        with prefect_test_harness(server_startup_timeout=120):
            yield
