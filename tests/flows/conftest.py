"""Fixtures shared by the flow tests."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptorl.config import DEFAULT_DATA_PATH


@pytest.fixture(scope="module")
def data_2018(tmp_path_factory) -> str:
    """The bundled bars up to 2018-10-10: exactly two smoke segments (0 and 1)."""
    frame = pd.read_parquet(DEFAULT_DATA_PATH)
    path = tmp_path_factory.mktemp("data") / "btc-to-2018-10.parquet"
    frame[frame["timestamp"] < pd.Timestamp("2018-10-10", tz="UTC")].to_parquet(path, index=False)
    return str(path)
