"""Shared fixtures: the bundled data, loaded once per session."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cryptorl.config import DEFAULT_DATA_PATH
from cryptorl.data import load_ohlcv


# Tiny networks on a 2-core CI box: two torch threads fight each other (and the Prefect server) and run
# up to 10x slower than one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bundled_ohlcv() -> pd.DataFrame:
    """The real BTC/USDT 1h bars, gaps filled (55,868 bars)."""
    return load_ohlcv(DEFAULT_DATA_PATH)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One ephemeral Prefect server for the session, with results isolated in a temporary folder."""
    import tasks  # noqa: F401  (applies the Prefect settings measured on these machines)
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(tmp_path_factory.mktemp("prefect-results"))}):
        with prefect_test_harness(server_startup_timeout=120):
            yield
