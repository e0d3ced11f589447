import os
import time
from pathlib import Path

import pandas as pd
import pytest

from cryptorl.errors import StorageError
from cryptorl.storage import ArtifactRef, ArtifactStore


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    if request.param == "file":
        return ArtifactStore(f"file://{tmp_path}/store")
    return ArtifactStore(f"memory://cryptorl-test-{os.getpid()}-{id(request)}")


def test_round_trips_bytes_json_and_frames(store):
    ref = store.write_bytes("a/b.bin", b"\x00\x01")
    assert store.read_bytes(ref) == b"\x00\x01" and ref.uri == store.uri("a/b.bin")
    assert store.read_json(store.write_json("a/c.json", {"x": [1, 2]})) == {"x": [1, 2]}
    frame = pd.DataFrame({"v": [1.5, 2.5]}, index=pd.date_range("2020", periods=2, freq="h", tz="UTC"))
    pd.testing.assert_frame_equal(store.read_frame(store.write_frame("f.parquet", frame)), frame, check_freq=False)
    assert store.list("a") == ["a/b.bin", "a/c.json"]


def test_ref_detects_changed_content(store):
    ref = store.write_bytes("x.bin", b"one")
    store.write_bytes("x.bin", b"two")
    with pytest.raises(StorageError, match=r"x.bin changed since it was written.*--clean"):
        store.read_bytes(ref)


def test_missing_artifact_is_a_clear_error(store):
    with pytest.raises(StorageError, match=r"cannot read .*nope.bin: not found"):
        store.read_bytes("nope.bin")


def test_foreign_ref_is_refused(store):
    with pytest.raises(StorageError, match=r"is not in store"):
        store.read_bytes(ArtifactRef("file:///elsewhere/x", "0"))


def test_local_writes_leave_no_temporary_files(tmp_path):
    store = ArtifactStore(str(tmp_path))
    store.write_bytes("d/x.bin", b"1" * 1000)
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["x.bin"]


def test_failed_local_write_leaves_nothing_behind(tmp_path, monkeypatch):
    store = ArtifactStore(str(tmp_path))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError, match=r"cannot write .*x.bin.*disk full"):
        store.write_bytes("d/x.bin", b"data")
    assert list((tmp_path / "d").iterdir()) == []


def test_relative_paths_become_absolute_file_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ArtifactStore("file://./artifacts").url == f"file://{Path(tmp_path).resolve()}/artifacts"
    assert ArtifactStore("artifacts").url == f"file://{Path(tmp_path).resolve()}/artifacts"


def test_directory_upload_and_download(tmp_path):
    source = tmp_path / "logs"
    (source / "run").mkdir(parents=True)
    (source / "run" / "events.out").write_bytes(b"tb")
    store = ArtifactStore(f"memory://dirs-{os.getpid()}")
    store.upload_dir(source, "seg/tb")
    written = store.download_prefix("seg/tb", tmp_path / "copy")
    assert [p.read_bytes() for p in written] == [b"tb"]
    assert written[0] == tmp_path / "copy" / "run" / "events.out"


def test_an_unsupported_protocol_is_refused_before_connecting():
    with pytest.raises(StorageError, match=r"artifact store 'ftp://nowhere/x': protocol 'ftp' is not supported; "
                                           r"use file://PATH, s3://BUCKET/PREFIX or memory://PATH"):
        ArtifactStore("ftp://nowhere/x")


def test_a_local_store_under_a_file_is_not_writable(tmp_path):
    (tmp_path / "taken").write_text("a file, not a directory")
    ArtifactStore(f"file://{tmp_path}/new/store").check_reachable()  # a new store below a writable directory
    with pytest.raises(StorageError, match=r"taken is not a writable directory; fix its permissions"):
        ArtifactStore(f"file://{tmp_path}/taken/store").check_reachable()


@pytest.fixture
def moto_s3(moto_endpoint):
    """moto's S3 with the bucket `present`; yields its stop."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="present")
    return moto_endpoint


def test_the_s3_probe_accepts_a_new_prefix_and_names_a_missing_bucket(moto_s3):
    ArtifactStore("s3://present/new-store").check_reachable()
    with pytest.raises(StorageError, match=r"s3://absent/x: bucket 'absent' does not exist; create it"):
        ArtifactStore("s3://absent/x").check_reachable()


def test_a_stopped_s3_endpoint_fails_the_probe_in_seconds_with_one_line(moto_s3):
    moto_s3()  # stop it: a closed port, what a dead MinIO or a wrong AWS_ENDPOINT_URL looks like
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"s3://present/run is unreachable \(EndpointConnectionError: .+\); "
                                           r"check AWS_ENDPOINT_URL") as error:
        ArtifactStore("s3://present/run").check_reachable()
    assert time.monotonic() - started < 5  # the store's own retries would take ~100 s
    assert "\n" not in str(error.value) and os.environ["AWS_ENDPOINT_URL"] in str(error.value)
