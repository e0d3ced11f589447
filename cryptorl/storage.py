"""The artifact store: one fsspec filesystem addressed by a URL.

`file://./artifacts` (default), `s3://bucket/prefix` (s3fs; endpoint and credentials come from the
environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) and `memory://` (tests) behave alike.

Writes are atomic: a local file is written under a temporary name and renamed (keeping the permission bits
of the file it replaces; a new file gets the umask's); a remote object is written with a single PUT, which
object stores make visible all at once. So a crash never leaves a half-written artifact under its final name.
Every write returns an `ArtifactRef` (uri + sha256) that downstream stages take as input: small, hashable, and
identified by content. `update` is a read-modify-write that concurrent writers cannot interleave.
"""

from __future__ import annotations

import builtins  # `ArtifactStore.list` shadows the builtin in the class body's annotations
import errno
import fcntl
import functools
import io
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import fsspec
import pandas as pd

try:
    from botocore.exceptions import BotoCoreError
except ImportError:  # no S3 support installed (the bare GPU check of benchmarks/gpu_profile.sh): nothing raises it

    class BotoCoreError(Exception):  # type: ignore[no-redef]
        """Stands in for botocore's base error where botocore is absent."""


from cryptorl.errors import ArtifactNotFoundError, StorageError
from cryptorl.hashing import sha256_bytes

DEFAULT_STORE_URL = "file://./artifacts"
STORE_ENV_VAR = "CRYPTORL_STORAGE"
# The stores we run and test. fsspec knows many more, but some (ftp, sftp, http) connect while the URL is
# opened and fail with whatever their network library raises; refusing them up front is one clear line.
SUPPORTED_PROTOCOLS = ("file", "s3", "memory")
_STORE_FORMS = "use file://PATH, s3://BUCKET/PREFIX or memory://PATH"
_TRANSIENT_ATTEMPTS = 4  # remote stores only: 0.5 s, 1 s, 2 s backoff between attempts
# The reachability probe asks once: no botocore retries, and a dead endpoint costs seconds, not minutes.
_PROBE_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 5, "read_timeout": 10}}
}
_REACHABLE: set[str] = set()  # store URLs this process has probed and found reachable
_MEMORY_CREATE_LOCK = threading.Lock()
_UPDATE_ATTEMPTS = 8  # S3 updates that lost the race to another writer, before giving up
_UMASK = os.umask(0)  # read once at import (setting it is the only way), then restored
os.umask(_UMASK)
T = TypeVar("T")


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: where it is and what it contains."""

    uri: str
    sha256: str


def default_store_url() -> str:
    return os.environ.get(STORE_ENV_VAR, DEFAULT_STORE_URL)


class ArtifactStore:
    """Read and write artifacts under one root URL; keys are '/'-separated relative paths."""

    def __init__(self, url: str | None = None) -> None:
        url = default_store_url() if url is None else url
        if not url.strip():  # an empty --storage or $CRYPTORL_STORAGE is a mistake, never "the default"
            raise StorageError(
                f"the artifact store URL is empty; {_STORE_FORMS} (--storage or ${STORE_ENV_VAR}; "
                f"unset, it is {DEFAULT_STORE_URL})"
            )
        self.url = _normalise_url(url)
        self.protocol = self.url.split("://", 1)[0]
        if self.protocol not in SUPPORTED_PROTOCOLS:
            raise StorageError(
                f"artifact store {self.url!r}: protocol {self.protocol!r} is not supported; "
                f"{_STORE_FORMS} (--storage or ${STORE_ENV_VAR})"
            )
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"cannot open artifact store {self.url!r}: {exc}; {_STORE_FORMS}") from None
        self.is_local = self.protocol == "file"

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # -- addressing ---------------------------------------------------------------------------
    def path(self, key: str) -> str:
        """The filesystem path of `key` (what fsspec calls the path inside the store)."""
        return f"{self.root.rstrip('/')}/{key.lstrip('/')}"

    def uri(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key.lstrip('/')}"

    def key_of(self, ref_or_uri: ArtifactRef | str) -> str:
        uri = ref_or_uri.uri if isinstance(ref_or_uri, ArtifactRef) else ref_or_uri
        prefix = self.url.rstrip("/") + "/"
        if not uri.startswith(prefix):
            raise StorageError(f"artifact {uri!r} is not in store {self.url!r}: open the store it was written to")
        return uri[len(prefix) :]

    def check_reachable(self) -> None:
        """Fail in seconds, before any work, when the store cannot be written: one request, no retries.

        Without it an unreachable or misconfigured store surfaces only at the first write, after the split
        stage and the transient-error retries (~100 s). Local: the root (or its nearest existing parent) is a
        writable directory. S3: the bucket answers a listing of the store's prefix, the request every run makes.
        A store found reachable is not asked again by this process (one probe per command).
        """
        if self.url in _REACHABLE:
            return
        if self.is_local:
            _check_writable_dir(Path(self.root), self.url)
        elif self.protocol in _PROBE_OPTIONS:
            _probe_bucket(
                fsspec.filesystem(self.protocol, skip_instance_cache=True, **_PROBE_OPTIONS[self.protocol]),
                self.root,
                self.url,
            )
        _REACHABLE.add(self.url)

    def check_exists(self) -> None:
        """Fail in one line when a store that is to be READ does not exist: a mistyped --storage must not read as
        an empty store ("no champion yet"). Local: its root is a directory; S3: its bucket answers and its prefix
        holds something; memory: its root exists."""
        if self.protocol == "s3":
            self.check_reachable()
            holds = self._retry(lambda: self.fs.exists(self.root) and bool(self.fs.ls(self.root)), f"list {self.url}")
        else:
            holds = self._retry(lambda: self.fs.isdir(self.root), f"stat {self.url}")
        if not holds:
            raise StorageError(
                f"artifact store {self.url} does not exist (nothing at {self.root}); check --storage / "
                f"${STORE_ENV_VAR}: a store holds segments/ and registry/ once a run has written it"
            )

    # -- bytes ----------------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> ArtifactRef:
        self._retry(lambda: self._write_atomic(self.path(key), data), f"write {self.uri(key)}")
        return ArtifactRef(self.uri(key), sha256_bytes(data))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create `key` holding `data` only if it does not exist yet; True if this call created it.

        Two concurrent calls on one key never both return True: a local file is hard-linked from a
        temporary file (the link fails if the name exists, and the content appears whole), `memory://`
        checks and writes under a process lock, `s3://` sends one conditional PUT (`If-None-Match: *`,
        honoured by AWS S3 and by moto; an S3-compatible store that ignores it is not safe here). A key
        that already holds exactly `data` also counts as created: the retry of a PUT whose answer was lost.
        """
        path, create = self.path(key), self._exclusive_writer()

        def attempt() -> bool:
            try:
                create(path, data)
                return True
            except FileExistsError:
                return sha256_bytes(self.fs.cat_file(path)) == sha256_bytes(data)

        return self._retry(attempt, f"create {self.uri(key)}")

    def update(self, key: str, change: Callable[[bytes], bytes | None]) -> bytes | None:
        """Replace `key`'s content by `change(content)` (nothing when it returns None); what was written.

        Concurrent updates of one key never lose each other: locally the file's directory is locked (`flock`, so
        no lock file is left behind; updates in one directory wait for each other) from the read to the atomic
        rename; `memory://` updates under a process lock;
        on `s3://` the new content is a PUT conditional on the ETag that was read (`If-Match`, honoured by AWS
        S3 and moto), and when another writer got in first the whole update runs again on its content.
        """
        path = self.path(key)
        if self.is_local and Path(path).parent.is_dir():  # (a missing one: the read says not found)
            with _locked(Path(path).parent):
                return self._change_once(key, change)
        if self.protocol != "s3":
            with _MEMORY_CREATE_LOCK:
                return self._change_once(key, change)
        for _ in range(_UPDATE_ATTEMPTS):
            etag = self._retry(lambda: self.fs.info(path)["ETag"], f"stat {self.uri(key)}")
            changed = change(self.read_bytes(key))  # if it changed since the stat, the PUT below fails: no harm
            if changed is None:
                return None
            try:
                put = functools.partial(self._put_if_match, path, changed, etag)
                self._retry(put, f"update {self.uri(key)}")
                return changed
            except _LostRace:
                continue  # another writer got in first: update its content
        raise StorageError(
            f"cannot update {self.uri(key)}: {_UPDATE_ATTEMPTS} other writers changed it while this "
            "update ran; run it again"
        )

    def _put_if_match(self, path: str, data: bytes, etag: str) -> None:
        try:
            self.fs.pipe_file(path, data, IfMatch=etag)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # s3fs's translation of 412 PreconditionFailed
                raise _LostRace(path) from None
            raise

    def _change_once(self, key: str, change: Callable[[bytes], bytes | None]) -> bytes | None:
        changed = change(self.read_bytes(key))
        if changed is not None:
            self.write_bytes(key, changed)
        return changed

    def read_bytes(self, ref_or_key: ArtifactRef | str) -> bytes:
        """Read an artifact; with an ArtifactRef, also check its content hash."""
        key = self.key_of(ref_or_key) if isinstance(ref_or_key, ArtifactRef) else ref_or_key
        data = self._retry(lambda: self.fs.cat_file(self.path(key)), f"read {self.uri(key)}")
        if isinstance(ref_or_key, ArtifactRef) and sha256_bytes(data) != ref_or_key.sha256:
            raise StorageError(
                f"artifact {ref_or_key.uri} changed since it was written (sha256 mismatch): "
                "re-run the stage that produced it with --clean"
            )
        return data

    def exists(self, key: str) -> bool:
        return bool(self._retry(lambda: self.fs.exists(self.path(key)), f"stat {self.uri(key)}"))

    def list(self, prefix: str = "") -> list[str]:
        """Keys of all files under `prefix`, sorted."""
        base = self.path(prefix)
        found = self._retry(lambda: self.fs.find(base) if self.fs.exists(base) else [], f"list {self.uri(prefix)}")
        root = self.root.rstrip("/") + "/"
        return sorted(p[len(root) :] if p.startswith(root) else p for p in (self.fs._strip_protocol(f) for f in found))

    # -- typed helpers ----------------------------------------------------------------------------
    def write_json(self, key: str, value: Any) -> ArtifactRef:
        return self.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, ref_or_key: ArtifactRef | str) -> Any:
        return json.loads(self.read_bytes(ref_or_key))

    def write_frame(self, key: str, frame: pd.DataFrame) -> ArtifactRef:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, engine="pyarrow", index=True)
        return self.write_bytes(key, buffer.getvalue())

    def read_frame(self, ref_or_key: ArtifactRef | str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes(ref_or_key)), engine="pyarrow")

    def upload_dir(self, local_dir: str | Path, key_prefix: str) -> builtins.list[ArtifactRef]:
        """Copy every file under `local_dir` (e.g. TensorBoard logs) to `key_prefix/...`."""
        local_dir = Path(local_dir)
        return [
            self.write_bytes(f"{key_prefix}/{file.relative_to(local_dir).as_posix()}", file.read_bytes())
            for file in sorted(local_dir.rglob("*"))
            if file.is_file()
        ]

    def download_prefix(self, key_prefix: str, local_dir: str | Path) -> builtins.list[Path]:
        """Copy every artifact under `key_prefix` into `local_dir`, keeping the relative layout."""
        written = []
        for key in self.list(key_prefix):
            target = Path(local_dir) / key[len(key_prefix) :].lstrip("/")
            _atomic_local_write(target, self.read_bytes(key))
            written.append(target)
        return written

    # -- internals ---------------------------------------------------------------------------------
    def _write_atomic(self, path: str, data: bytes) -> None:
        if self.is_local:
            _atomic_local_write(Path(path), data)
        else:
            self.fs.pipe_file(path, data)  # one PUT: the object appears whole or not at all

    def _exclusive_writer(self) -> Callable[[str, bytes], None]:
        """This store's create-if-absent write (FileExistsError when the path exists); see `create_exclusive`."""
        if self.is_local:
            return lambda path, data: _exclusive_local_write(Path(path), data)
        if self.protocol == "memory":
            return self._exclusive_memory_write
        return lambda path, data: self.fs.pipe_file(path, data, mode="create")  # s3: PUT with If-None-Match: *

    def _exclusive_memory_write(self, path: str, data: bytes) -> None:
        with _MEMORY_CREATE_LOCK:  # the memory filesystem lives in this process only
            if self.fs.exists(path):
                raise FileExistsError(path)
            self.fs.pipe_file(path, data)

    def _retry(self, action: Callable[[], T], what: str) -> T:
        """Run `action`; on a remote store retry transient I/O errors with exponential backoff."""
        attempts = 1 if self.is_local else _TRANSIENT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return action()
            except FileNotFoundError:
                raise ArtifactNotFoundError(
                    f"cannot {what}: not found; re-run the stage that writes it (or check the store URL)"
                ) from None
            # s3fs surfaces an unreachable endpoint as botocore's EndpointConnectionError, not an OSError.
            except (OSError, ConnectionError, TimeoutError, BotoCoreError) as exc:
                if attempt == attempts:
                    raise StorageError(
                        f"cannot {what} after {attempts} attempt(s): {type(exc).__name__}: {exc}; "
                        "check that the store is reachable and its credentials"
                    ) from None
                time.sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


class _LostRace(Exception):
    """A conditional PUT found the object changed since it was read (not an OSError: never retried as such)."""


def update_url(url: str, change: Callable[[bytes], bytes | None]) -> bytes | None:
    """`ArtifactStore.update` of a full artifact URL (a path works too)."""
    parent, _, name = _normalise_url(url).rpartition("/")
    return ArtifactStore(parent).update(name, change)


def write_url(url: str, data: bytes) -> ArtifactRef:
    """Atomically write `data` to a full artifact URL (a path works too)."""
    parent, _, name = _normalise_url(url).rpartition("/")
    return ArtifactStore(parent).write_bytes(name, data)


def read_url(url: str) -> bytes:
    """Read the artifact at a full URL; a missing one raises ArtifactNotFoundError."""
    parent, _, name = _normalise_url(url).rpartition("/")
    return ArtifactStore(parent).read_bytes(name)


def _normalise_url(url: str) -> str:
    """Plain paths and relative file:// URLs become absolute file:// URLs."""
    if "://" not in url:
        url = f"file://{url}"
    if url.startswith("file://"):
        url = f"file://{Path(url[len('file://') :]).expanduser().resolve()}"
    return url.rstrip("/")


def _exclusive_local_write(target: Path, data: bytes) -> None:
    """Hard-link a complete temporary file to `target`: the link fails (FileExistsError) if `target` exists."""
    _publish_through_temp(target, data, os.link)


def _check_writable_dir(root: Path, url: str) -> None:
    existing = next(path for path in (root, *root.parents) if path.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(
            f"artifact store {url}: {existing} is not a writable directory; fix its permissions "
            f"or pick another --storage / ${STORE_ENV_VAR}"
        )


def _probe_bucket(fs: fsspec.AbstractFileSystem, root: str, url: str) -> None:
    """List `root` once: an absent prefix is a new store, an absent bucket or any error is one clear line."""
    bucket = root.split("/", 1)[0]
    try:
        fs.ls(root)
    except FileNotFoundError:
        if not fs.exists(bucket):
            raise StorageError(
                f"artifact store {url}: bucket {bucket!r} does not exist; create it or fix --storage / ${STORE_ENV_VAR}"
            ) from None
    except PermissionError as exc:
        raise StorageError(
            f"artifact store {url}: access denied ({one_line(exc)}); check AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and the bucket's policy"
        ) from None
    except (OSError, BotoCoreError) as exc:
        raise StorageError(
            f"artifact store {url} is unreachable ({type(exc).__name__}: {one_line(exc)}); check "
            "AWS_ENDPOINT_URL, the network and the credentials"
        ) from None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive `flock` on `directory` for the block: one holder at a time across processes and threads."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def _atomic_local_write(target: Path, data: bytes) -> None:
    _publish_through_temp(target, data, os.replace)


def _publish_through_temp(target: Path, data: bytes, publish: Callable[[str, Path], None]) -> None:
    """Write `data` to a temporary file beside `target`, then `publish(temporary, target)` it in one step:
    a reader sees the whole file or none. The temporary file never outlives the call."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")  # owner-only
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # The mode the file has (other readers keep their access), or a new file's under the umask.
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_UMASK)
        publish(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone already after os.replace; the leftover of os.link or a failure
