"""Storage faults of real life, on moto's S3 behind a proxy on 127.0.0.1 that answers 503 (S3's
ServiceUnavailable) to the requests we choose: a short outage within the store's retry budget, an outage
between two writes of one stage, and data whose content changed at the same path.
(tests/integration/test_storage_faults.py covers a store that is down for longer than the retries.)"""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile
from cryptorl.errors import StorageError
from cryptorl.storage import ArtifactStore

BUCKET = "cryptorl-faults"
PROFILE = get_profile("smoke")
_HOP_HEADERS = ("expect", "transfer-encoding", "content-length", "connection")
_UNAVAILABLE = b"<Error><Code>ServiceUnavailable</Code><Message>outage</Message></Error>"


@dataclass
class FaultyS3:
    """What the proxy saw and which requests it fails: `fail(method, path)` decides, per request."""

    upstream: tuple[str, int]
    fail: Callable[[str, str], bool] = lambda method, path: False
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)

    def fail_first_puts(self, count: int) -> None:
        remaining = [count]

        def fail(method: str, path: str) -> bool:
            if method == "PUT" and remaining[0] > 0:
                remaining[0] -= 1
                return True
            return False

        self.fail = fail

    def puts(self) -> list[tuple[str, int]]:
        return [(path, status) for method, path, status in self.requests if method == "PUT"]


def _handler(s3: FaultyS3) -> type[BaseHTTPRequestHandler]:
    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # aiobotocore sends `Expect: 100-continue` and keeps connections open

        def relay(self) -> None:
            if self.headers.get("Expect", "").lower() == "100-continue":
                self.send_response_only(100)
                self.end_headers()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if s3.fail(self.command, self.path):
                status, headers, data = 503, [], _UNAVAILABLE
            else:
                status, headers, data = self.forward(body)
            s3.requests.append((self.command, self.path, status))
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in (*_HOP_HEADERS, "server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_HEADERS}
            connection = http.client.HTTPConnection(*s3.upstream, timeout=30)
            connection.request(self.command, self.path, body=body, headers={**headers, "Content-Length": str(len(body))})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

        def log_message(self, *args) -> None:
            pass

    return Relay


@pytest.fixture
def faulty_s3(monkeypatch) -> Iterator[FaultyS3]:
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    s3 = FaultyS3(moto.get_host_and_port())
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _handler(s3))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.server_address[1]}", "AWS_ACCESS_KEY_ID": "t",
                       "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_MAX_ATTEMPTS": "1"}.items():  # botocore's own retries off: the store's are under test
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield s3
    finally:
        proxy.shutdown()
        moto.stop()
        s3fs.S3FileSystem.clear_instance_cache()


def _split(store: ArtifactStore, data: str = str(DEFAULT_DATA_PATH)) -> stages.SegmentArtifacts:
    return stages.split_segment(store, stages.source_ref(data), 0, PROFILE.data, PROFILE.features, PROFILE.wfo)


def _relative(store: ArtifactStore, prefix: str) -> list[str]:
    return [key.removeprefix(prefix) for key in store.list(prefix)]


def _cache_records(store: ArtifactStore) -> list[str]:
    """Prefect result records stored under a task's cache key (a sha256: tasks/caching.py)."""
    return [key for key in store.list("prefect-results") if re.fullmatch(r"[0-9a-f]{64}", key.rsplit("/", 1)[1])]


def test_a_short_outage_within_the_retry_budget_completes_the_stage_once(faulty_s3):
    clean, blipped = ArtifactStore(f"s3://{BUCKET}/clean"), ArtifactStore(f"s3://{BUCKET}/blipped")
    _split(clean)
    faulty_s3.requests.clear()
    faulty_s3.fail_first_puts(2)  # the first write fails twice, then S3 is back
    artifacts = _split(blipped)

    assert [status for _, status in faulty_s3.puts()][:3] == [503, 503, 200]
    assert blipped.read_frame(artifacts.features).shape[1] == 51  # 50 features + close
    assert _relative(blipped, "segments") == _relative(clean, "segments")  # every key once, nothing extra
    assert len(faulty_s3.puts()) == 2 + len(_relative(clean, "segments"))  # one good PUT per key


def test_an_outage_between_two_writes_of_a_stage_leaves_no_stage_and_the_rerun_completes_it(faulty_s3):
    store = ArtifactStore(f"s3://{BUCKET}/half")
    faulty_s3.fail = lambda method, path: method == "PUT" and path.endswith("/meta.json")  # down after features
    with pytest.raises(StorageError, match=r"cannot write s3://.+/segments/0/split/\w+/meta.json after 4 "
                                           r"attempt\(s\): OSError: .+; check that the store is reachable"):
        _split(store)
    [written] = store.list("segments")  # the half stage: no artifacts returned, so no task result points at it
    assert written.endswith("/features.parquet")

    faulty_s3.fail = lambda method, path: False
    artifacts = _split(store)
    assert store.key_of(artifacts.features) == written  # the same content-keyed prefix, completed in place
    assert sorted(store.list("segments")) == sorted([written, store.key_of(artifacts.meta)])
    assert store.read_json(artifacts.meta)["feature_names"] == list(store.read_frame(artifacts.features).columns[:-1])


def test_data_changed_at_the_same_path_recomputes_the_dependent_stages(tmp_path):
    data = tmp_path / "bars.parquet"
    frame = pd.read_parquet(DEFAULT_DATA_PATH).iloc[:10500]
    frame.to_parquet(data, index=False)
    store = ArtifactStore(f"file://{tmp_path}/store")
    first = _split(store, str(data))
    first_regime = stages.fit_hmm(store, first, PROFILE.regime, 0)

    revised = frame.copy()  # the exchange revised a few train bars: same file name, other content
    revised.loc[500:520, ["open", "high", "low", "close"]] *= 1.02
    revised.to_parquet(data, index=False)
    second = _split(store, str(data))
    second_regime = stages.fit_hmm(store, second, PROFILE.regime, 0)

    assert second.features.uri != first.features.uri and second.features.sha256 != first.features.sha256
    assert second_regime.context.uri != first_regime.context.uri
    assert len({key.split("/")[3] for key in store.list("segments/0/hmm")}) == 2  # both fits kept, none reused


def test_a_stage_failed_by_an_outage_leaves_no_cached_result_and_the_rerun_recomputes_it(prefect_harness, faulty_s3):
    """Prefect's cache record, written only when the task returns, is the one pointer to a finished stage."""
    from prefect import flow

    from tasks.caching import result_storage_for
    from tasks.split_segment import split_segment
    from tests.flows.prefect_helpers import task_states

    store = ArtifactStore(f"s3://{BUCKET}/flow")

    @flow(name="split-only")
    def split_only() -> stages.SegmentArtifacts:
        return split_segment.with_options(result_storage=result_storage_for(store))(
            store.url, stages.source_ref(str(DEFAULT_DATA_PATH)), 0, PROFILE.data, PROFILE.features, PROFILE.wfo)

    faulty_s3.fail = lambda method, path: method == "PUT" and path.endswith("/meta.json")
    failed = split_only(return_state=True)
    assert failed.is_failed() and _cache_records(store) == []  # (the failed run's exception is stored by run id)
    faulty_s3.fail = lambda method, path: False
    rerun = split_only(return_state=True)
    assert task_states(rerun.state_details.flow_run_id) == {"split_segment": "Completed"}
    assert store.exists(store.key_of(rerun.result().meta)) and len(_cache_records(store)) == 1
    cached = split_only(return_state=True)  # the completed stage, and only it, is found again
    assert task_states(cached.state_details.flow_run_id) == {"split_segment": "Cached"}
