"""Content-addressed cache keys and result storage on the artifact store.

Prefect's DEFAULT policy includes the run id (never hits across runs) and INPUTS would hash file paths.
Our key is the content of the inputs: an `ArtifactRef` counts by its sha256 only, configs by value,
plus the task's own source and the version of the library code the stage runs.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from prefect.context import TaskRunContext
from prefect.filesystems import LocalFileSystem, RemoteFileSystem

from cryptorl.hashing import code_version, fingerprint
from cryptorl.storage import ArtifactRef, ArtifactStore

CacheKeyFn = Callable[[TaskRunContext, dict[str, Any]], str]


def content_cache_key(*code_modules: str) -> CacheKeyFn:
    """A cache_key_fn keyed on input content, the task source and the named library modules."""

    def cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        source = inspect.getsource(context.task.fn)
        return fingerprint(source, code_version(*code_modules), _content_only(parameters))

    return cache_key


def _content_only(value: Any) -> Any:
    """Replace every ArtifactRef (also inside dataclasses) by its content hash: paths never count."""
    if isinstance(value, ArtifactRef):
        return value.sha256
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__type__": type(value).__name__,
            **{f.name: _content_only(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, dict):
        return {k: _content_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_content_only(v) for v in value]
    return value


def result_storage_for(store: ArtifactStore) -> str:
    """Save (idempotently) a storage block for task results under `<store>/prefect-results`.

    Prefect only accepts saved blocks as result storage; the block holds a base path only, never
    credentials (s3fs reads those from the environment).
    """
    name = f"cryptorl-results-{fingerprint(store.url)[:12]}"
    if store.is_local:
        LocalFileSystem(basepath=store.path("prefect-results")).save(name, overwrite=True)
        return f"local-file-system/{name}"
    RemoteFileSystem(basepath=store.uri("prefect-results")).save(name, overwrite=True)
    return f"remote-file-system/{name}"
