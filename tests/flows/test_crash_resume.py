"""A training process killed (SIGKILL) after its first rotating checkpoint resumes from it when the same
segment runs again; a checkpoint whose write was cut short is skipped with a warning, never loaded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from stable_baselines3.common.save_util import load_from_zip_file

from cryptorl.envs import BatchCryptoEnv, EnvConfig, MarketData
from cryptorl.storage import ArtifactStore
from cryptorl.training.callbacks import RotatingCheckpointCallback, learn_until, list_checkpoints, resume_or_create
from cryptorl.training.tqc import load_trained_model

TIMESTEPS = 2048
# Smoke's 8 envs: a checkpoint every 2048 // 8 = 256 env-steps (32 vec-steps), the first soon after the
# replay buffer's 256 warm-up steps; MAE for one epoch only (resume is under test, not learning).
RUN_ARGS = ("--timesteps", str(TIMESTEPS), "--set", "mae.max_epochs=1", "--set", "train.checkpoints=8")
FIRST_CHECKPOINT_TIMEOUT_S = 240


def _cli_run(data: str, store: Path, work: Path) -> subprocess.Popen:
    """`cryptorl run` as a user starts it, in its own process group, on the test Prefect server."""
    from prefect.settings import get_current_settings

    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url, "OMP_NUM_THREADS": "1",
           "CRYPTORL_WORK_DIR": str(work)}
    return subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--data", data, "--storage",
                             f"file://{store}", *RUN_ARGS], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _checkpoint_steps(work: Path) -> list[int]:
    """Steps of the rotating checkpoints in the tqc stage's work directories under `work`."""
    return sorted(step for stage_dir in work.glob("*/checkpoints") for step, _ in list_checkpoints(stage_dir))


def _kill_after_first_checkpoint(process: subprocess.Popen, work: Path) -> int:
    """SIGKILL the run's process group once a `ckpt_*.zip` exists; the newest checkpoint step left behind."""
    deadline = time.monotonic() + FIRST_CHECKPOINT_TIMEOUT_S
    while not _checkpoint_steps(work):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no checkpoint appeared (rc={process.poll()}):\n{process.communicate()[1][-3000:]}")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return _checkpoint_steps(work)[-1]


def test_a_killed_training_resumes_from_its_checkpoint_and_completes(prefect_harness, data_2018, tmp_path):
    store_dir, work = tmp_path / "store", tmp_path / "work"
    killed_at = _kill_after_first_checkpoint(_cli_run(data_2018, store_dir, work), work)
    store = ArtifactStore(f"file://{store_dir}")
    assert 0 < killed_at < TIMESTEPS
    assert not [key for key in store.list("segments/0/tqc") if key.endswith("summary.json")]  # no half stage

    rerun = _cli_run(data_2018, store_dir, work)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]
    # What a user reads at the end of a run: the verdict, the money against the baselines, the probe per horizon,
    # the promotion decision with the floor, and what `signal` says now.
    printed = stdout.splitlines()
    assert any(line.startswith("verdict (trained): ") for line in printed)
    assert any(line.startswith("net at the real fee over the test slice (w_cost 1): trained Sharpe ") and
               "fees " in line and "buy_and_hold " in line for line in printed)
    assert any(line.startswith("probe (ridge on the inputs, fit on train): 1 bar: IC ") for line in printed)
    [promotion] = [line for line in printed if line.startswith("promotion ")]
    assert "not healthy" in promotion or "floor (flat " in promotion
    assert [line for line in printed if line.startswith("signal: ")][0].startswith(
        "signal: bar " if "accepted" in promotion else "signal: no champion for data source")

    [summary_key] = [key for key in store.list("segments/0/tqc") if key.endswith("summary.json")]
    summary = store.read_json(summary_key)
    assert summary["resumed_from"] == killed_at and summary["timesteps"] == TIMESTEPS, _task_lines(stderr)
    model_path = tmp_path / "model.zip"
    model_path.write_bytes(store.read_bytes(summary_key.replace("summary.json", "model.zip")))
    assert load_trained_model(model_path, device="cpu").num_timesteps == TIMESTEPS
    assert [key for key in store.list("segments/0/audit") if key.endswith("report.json")]
    assert not list(work.iterdir())  # the stage's work directory is removed once everything is uploaded


def _task_lines(console: str) -> list[str]:
    return [line for line in console.splitlines() if "Task run" in line]


def _tiny_tqc(market: MarketData):
    from sb3_contrib import TQC

    env = BatchCryptoEnv(market, 4, EnvConfig(episode_length=8), include_bar_index=True, seed=0)
    return TQC("MultiInputPolicy", env, learning_starts=16, buffer_size=1000, batch_size=16, seed=0, device="cpu",
               policy_kwargs={"net_arch": [16, 16], "n_quantiles": 5})


def test_a_truncated_checkpoint_is_skipped_with_a_warning_and_never_loaded(tmp_path):
    market = MarketData.random(160, n_features=6, seed=5)
    trained = _tiny_tqc(market)
    learn_until(trained, 64, callback=RotatingCheckpointCallback(tmp_path, save_freq_steps=32, keep_last=5))
    assert resume_or_create(lambda: _tiny_tqc(market), tmp_path).num_timesteps == 64  # before the damage
    newest = tmp_path / "ckpt_64.zip"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a write cut short

    with pytest.warns(RuntimeWarning, match=r"skipping checkpoint .*ckpt_64.zip: not a complete checkpoint"):
        resumed = resume_or_create(lambda: _tiny_tqc(market), tmp_path)
    assert resumed.num_timesteps == 32  # from ckpt_32, the newest complete one
    _, saved, _ = load_from_zip_file(tmp_path / "ckpt_32.zip", device="cpu")
    for name, tensor in saved["policy"].items():
        assert torch.equal(tensor, resumed.policy.state_dict()[name]), name
