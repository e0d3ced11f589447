"""The object store goes away: the store retries, then fails with one clear line and leaves nothing half-written;
once the store is back, the same stage run completes."""

from __future__ import annotations

import pytest

import cryptorl.storage
from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile
from cryptorl.errors import StorageError
from cryptorl.storage import ArtifactStore
from tests.integration.conftest import s3_env, start_moto

pytestmark = pytest.mark.integration

BUCKET = "cryptorl-faults"


@pytest.fixture
def flaky_s3(monkeypatch):
    """A moto S3 of its own (this test stops and restarts it); retries shortened so the test stays fast."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    server, endpoint = start_moto()
    servers = [server]
    for key, value in {**s3_env(endpoint), "AWS_MAX_ATTEMPTS": "1"}.items():  # botocore's own retries off
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cryptorl.storage, "_TRANSIENT_ATTEMPTS", 2)
    s3fs.S3FileSystem.clear_instance_cache()
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)

    def restart() -> None:
        port = int(endpoint.rsplit(":", 1)[1])
        servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
        servers[-1].start()  # moto keeps its buckets in this process: the restarted server still has them

    try:
        yield server, restart
    finally:
        servers[-1].stop()
        s3fs.S3FileSystem.clear_instance_cache()


def run_split(store: ArtifactStore) -> stages.SegmentArtifacts:
    profile = get_profile("smoke")
    return stages.split_segment(store, stages.source_ref(str(DEFAULT_DATA_PATH)), 0, profile.data, profile.features,
                                profile.wfo)


def test_an_unreachable_store_fails_cleanly_and_a_rerun_completes_once_it_is_back(flaky_s3):
    server, restart = flaky_s3
    store = ArtifactStore(f"s3://{BUCKET}/run")
    server.stop()
    with pytest.raises(StorageError, match=rf"cannot write s3://{BUCKET}/run/segments/0/split/\w+/features.parquet "
                                           r"after 2 attempt\(s\): .+; check that the store is reachable") as error:
        run_split(store)
    assert "\n" not in str(error.value)

    restart()
    assert store.list("segments") == []  # nothing half-written
    artifacts = run_split(store)
    assert store.read_frame(artifacts.features).shape[1] == 51  # 50 features + close
    assert store.exists(store.key_of(artifacts.meta))
