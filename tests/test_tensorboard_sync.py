"""`cryptorl tensorboard`: a segment's TensorBoard keys mirrored from the store into a local folder."""

from __future__ import annotations

import uuid

import pytest

from cli.main import main
from cryptorl.errors import ArtifactNotFoundError
from cryptorl.storage import ArtifactStore
from cryptorl.tensorboard_sync import sync_tensorboard, tensorboard_command, tensorboard_keys

LOGS = {
    "segments/0/tqc/aaaa/tensorboard/TQC_1/events.out.tfevents.1": b"tqc events",
    "segments/0/mae/bbbb/tensorboard/events.out.tfevents.2": b"mae events",
    "segments/1/tqc/cccc/tensorboard/TQC_1/events.out.tfevents.3": b"segment 1",
}
OTHER = {"segments/0/tqc/aaaa/model.zip": b"model", "segments/0/tqc/aaaa/summary.json": b"{}"}


@pytest.fixture
def store() -> ArtifactStore:
    store = ArtifactStore(f"memory://tb-{uuid.uuid4().hex}")
    for key, data in {**LOGS, **OTHER}.items():
        store.write_bytes(key, data)
    return store


def test_only_the_segments_tensorboard_keys_are_selected(store):
    assert tensorboard_keys(store, 0) == sorted(key for key in LOGS if key.startswith("segments/0/"))
    assert tensorboard_keys(store) == sorted(LOGS)


def test_sync_mirrors_the_layout_and_skips_files_already_there(store, tmp_path):
    report = sync_tensorboard(store, tmp_path, segment=0)
    assert (report.files, report.downloaded) == (2, 2)
    for key in tensorboard_keys(store, 0):
        assert (tmp_path / key).read_bytes() == LOGS[key]
    assert not (tmp_path / "segments/0/tqc/aaaa/model.zip").exists() and not (tmp_path / "segments/1").exists()
    assert sync_tensorboard(store, tmp_path, segment=0).downloaded == 0  # stored logs never change
    everything = sync_tensorboard(store, tmp_path)  # all segments: only segment 1 is new
    assert "synced 3 TensorBoard files (1 new) from memory://" in everything.summary()


def test_a_segment_without_logs_is_one_clear_error(store, tmp_path):
    with pytest.raises(ArtifactNotFoundError, match=r"no TensorBoard logs under memory://.*/segments/7: train"):
        sync_tensorboard(store, tmp_path, segment=7)


def test_tensorboard_listens_on_localhost_only(tmp_path):
    command = tensorboard_command(tmp_path, 6123)
    assert command[1:3] == ["-m", "tensorboard.main"]
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "6123"


def test_cli_no_launch_only_syncs(store, tmp_path, capsys):
    args = ["tensorboard", "--segment", "1", "--storage", store.url, "--cache-dir", str(tmp_path), "--no-launch"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "synced 1 TensorBoard files (1 new)" in out and "--host 127.0.0.1" in out
    assert (tmp_path / "segments/1/tqc/cccc/tensorboard/TQC_1/events.out.tfevents.3").exists()
