"""The CLI: one-line summaries on success; one line and exit code 2 on bad input, never a traceback."""

import re
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from cli.main import main
from cryptorl.config import DEFAULT_DATA_PATH


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=120)


def test_data_validate_prints_one_summary_line(capsys):
    assert main(["data", "validate", str(DEFAULT_DATA_PATH)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert "55,868 bars" in out[0] and "28 gaps filled (128 flat bars)" in out[0]


@pytest.fixture
def broken_csv(tmp_path):
    frame = pd.read_parquet(DEFAULT_DATA_PATH).head(50)
    frame.loc[10, "high"] = frame.loc[10, "low"] - 1.0
    path = tmp_path / "broken.csv"
    frame.to_csv(path, index=False)
    return path


def test_bad_data_exits_2_with_one_line_and_no_traceback(broken_csv):
    result = run_cli("data", "validate", str(broken_csv))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryptorl: error: ")
    assert "broken.csv" in lines[0] and "high" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "absent.parquet")]) == 2
    err = capsys.readouterr().err
    assert "absent.parquet" in err and len(err.strip().splitlines()) == 1


def test_segments_lists_numbered_date_ranges(capsys):
    assert main(["segments", "--profile", "cpu"]) == 0
    *lines, coverage = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("segment 0: train 2018-01-01 00:00 .. 2018-12-31 23:00")
    assert all(line.startswith(f"segment {i}: ") for i, line in enumerate(lines))
    assert coverage.startswith(f"latest is segment {len(lines) - 1}: its test slice ends ")


def test_a_week_of_appended_bars_moves_latest_to_the_segment_it_completes(tmp_path, capsys):
    """Retraining on the newest bars (README "Retraining"): the grid stays, and `segments` (like `wfo` and the
    retrain-latest flow) says what `latest` trains and which bars no segment uses yet."""
    bars = pd.read_parquet(DEFAULT_DATA_PATH)
    dataset, week = tmp_path / "btc.parquet", tmp_path / "week.parquet"
    cut, end = pd.Timestamp("2023-06-30", tz="UTC"), pd.Timestamp("2023-07-07", tz="UTC")
    bars[bars["timestamp"] < cut].to_parquet(dataset, index=False)
    bars[(bars["timestamp"] >= cut) & (bars["timestamp"] < end)].to_parquet(week, index=False)
    assert main(["segments", "--profile", "cpu", "--data", str(dataset)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "latest is segment 24: its test slice ends 2023-05-06 07:00; 1,312 newer bars (to 2023-06-29 23:00) are in "
        "no segment yet; segment 25 completes in 152 more bars (its test slice ends 2023-07-06 07:00)")
    assert main(["data", "append", str(week), "--into", str(dataset)]) == 0
    assert "168 bars added" in capsys.readouterr().out
    assert main(["segments", "--profile", "cpu", "--data", str(dataset)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "latest is segment 25: its test slice ends 2023-07-06 07:00; 16 newer bars (to 2023-07-06 23:00) are in "
        "no segment yet; segment 26 completes in 1,472 more bars (its test slice ends 2023-09-06 07:00)")


@pytest.mark.parametrize("args, message", [
    (["run", "--segment", "999"], "segment 999 does not exist"),
    (["run", "--profile", "huge"], "unknown profile 'huge'"),
    (["run", "--set", "regime.n_states"], "is not STAGE.KEY=VALUE"),
    (["run", "--set", "regime.n_states=1"], "invalid config regime.n_states=1"),
    (["audit", "--policy", "constant:2"], "constant position 2.0 is outside [-1, 1]"),
    (["audit", "--policy", "yolo"], "unknown policy spec 'yolo'"),
    (["run", "--storage", "ftp://nowhere/x"], "artifact store 'ftp://nowhere/x': protocol 'ftp' is not supported"),
    (["run", "--seeds", "0,x"], "seeds '0,x': write comma-separated non-negative integers"),
    (["wfo", "--seeds", "-1"], "seeds '-1': write comma-separated non-negative integers"),
])
def test_run_rejects_bad_input_before_starting_prefect(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def no_segment_flow(monkeypatch):
    """Importing the segment flow fails: a command that gets that far has started Prefect."""
    monkeypatch.setitem(sys.modules, "flows.wfo_segment", None)


@pytest.fixture
def late_data(tmp_path):
    """The bundled bars from 2017-12-28 on: too few before segment 0's train start for the feature warm-up."""
    frame = pd.read_parquet(DEFAULT_DATA_PATH)
    path = tmp_path / "late.parquet"
    frame[frame["timestamp"] >= pd.Timestamp("2017-12-28", tz="UTC")].to_parquet(path, index=False)
    return str(path)


@pytest.mark.parametrize("command", [["run", "--segment", "0"], ["wfo", "--segments", "0-1"]])
def test_data_too_late_for_the_warm_up_fails_before_any_flow(command, late_data, no_segment_flow, capsys):
    assert main([*command, "--data", late_data]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"cryptorl: error: {late_data}: segment 0 trains from 2018-01-01")
    assert "set wfo.first_train_start to 2018-01" in err[0]


def test_segments_marks_a_segment_the_data_cannot_run(late_data, capsys):
    """`segments` lists what `run` and `wfo` would accept, and says why it would refuse the others."""
    assert main(["segments", "--profile", "cpu", "--data", late_data]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("segment 0: cannot run: segment 0 trains from 2018-01-01 00:00, but the features need")
    assert lines[1].startswith("segment 1: train 2018-03-01 00:00")


def test_segments_on_data_too_short_for_any_segment_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "short.parquet"
    pd.read_parquet(DEFAULT_DATA_PATH).iloc[:3000].to_parquet(path, index=False)
    assert main(["segments", "--profile", "cpu", "--data", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert re.match(rf"cryptorl: error: {path}: no walk-forward segment fits its 3,\d{{3}} bars \(2017-08-17 .. "
                    r"2017-12-2\d\) with wfo.train=12M, eval=2M, test=2M; add data", captured.err)


def test_an_unreachable_store_fails_in_seconds_before_any_flow(no_segment_flow, monkeypatch, capsys):
    with socket.socket() as probe:  # a port nobody listens on: a stopped MinIO or moto
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    started = time.monotonic()
    assert main(["run", "--storage", "s3://bucket/run"]) == 2
    assert time.monotonic() - started < 20  # the store's retries after the split stage took ~100 s
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cryptorl: error: artifact store s3://bucket/run is unreachable")
