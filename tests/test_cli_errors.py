"""A CryptoRLError raised inside a flow's task, after the CLI's up-front checks passed, reaches the user of
`cryptorl run` as one line and exit 2: a store that breaks under a stage, a stored encoder of another size,
data the regime fit cannot use. The CLI runs as a subprocess on the test Prefect server, as a user runs it
(the mechanism of tests/flows/test_fail_fast.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from cryptorl.config import get_profile
from cryptorl.models import CryptoMAE, load_mae_checkpoint, save_mae

RUN_ARGS = ("--timesteps", "8", "--set", "mae.max_epochs=1")  # the stages' work is not under test


def _cli_run(data: str, store: Path) -> subprocess.CompletedProcess:
    from prefect.settings import get_current_settings

    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url, "OMP_NUM_THREADS": "1",
           "CRYPTORL_WORK_DIR": str(store.parent / "work")}  # a failed tqc stage leaves its work dir behind
    return subprocess.run([sys.executable, "-m", "cli.main", "run", "--data", data, "--storage",
                           f"file://{store}", *RUN_ARGS], env=env, capture_output=True, text=True, timeout=300)


def _block_tqc_prefix(store: Path) -> None:
    """A file where the tqc stage's directory belongs: the store's root stays writable (the CLI's probe
    passes), split, HMM and MAE complete, the tqc stage cannot write its model."""
    (store / "segments" / "0").mkdir(parents=True)
    (store / "segments" / "0" / "tqc").write_text("not a directory")


def _storage_case(data: str, store: Path, tmp_path: Path) -> str:
    _block_tqc_prefix(store)
    return data


def _dimensions_case(data: str, store: Path, tmp_path: Path) -> str:
    """A first run stores the segment's MAE (its task result cached), then its checkpoint is replaced by one
    of another d_model: the rerun's tqc stage loads it against the profile's MAE config."""
    _block_tqc_prefix(store)
    assert _cli_run(data, store).returncode == 2
    (store / "segments" / "0" / "tqc").unlink()
    [stored] = store.glob("segments/0/mae/*/checkpoint.pt")
    original = load_mae_checkpoint(str(stored))
    config = get_profile("smoke").mae
    smaller = CryptoMAE(replace(config, d_model=config.d_model // 2, dim_feedforward=config.dim_feedforward // 2))
    save_mae(smaller, str(stored), columns=original.columns, scaler_fingerprint=original.scaler_fingerprint)
    return data


def _flat_price_case(data: str, store: Path, tmp_path: Path) -> str:
    """A feed stuck on one price (a stablecoin pair, a frozen exchange API): valid OHLCV, enough bars, but
    every return is 0, so the regime fit has nothing to fit."""
    frame = pd.read_parquet(data)
    frame[["open", "high", "low", "close"]] = 1.0
    path = tmp_path / "flat.parquet"
    frame.to_parquet(path, index=False)
    return str(path)


@pytest.mark.parametrize("prepare, phrase, error", [
    (_storage_case, "cannot write", r"cannot write {store}/segments/0/tqc/\w+/model.zip after 1 attempt\(s\): .+"),
    (_dimensions_case, "checkpoint", r"checkpoint {store}/segments/0/mae/\w+/checkpoint.pt has .*d_model=16.*"),
    (_flat_price_case, "regime fit", r"regime fit: column 'ret_1' is constant \(0\) on the \d+ training rows; .+"),
], ids=["StorageError", "ModelDimensionsError", "DataError"])
def test_an_error_inside_a_task_is_one_line_and_exit_2(prepare, phrase, error, prefect_harness, data_2018, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    result = _cli_run(prepare(data_2018, store, tmp_path), store)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if phrase in line] == [lines[-1]], result.stderr[-3000:]
    expected = "cryptorl: error: " + error.replace("{store}", re.escape(f"file://{store}"))
    assert re.fullmatch(expected, lines[-1]), lines[-1]
