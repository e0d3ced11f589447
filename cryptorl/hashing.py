"""Content fingerprints: the identity of data, configs and code, used for cache keys and artifact paths.

A fingerprint depends on content only (never on file paths, timestamps or object ids), so the same
inputs give the same key on any machine and a changed input changes exactly the keys that depend on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """Deterministic JSON of configs/refs: dataclasses as dicts, keys sorted, tuples as lists."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), default=str)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def fingerprint(*parts: Any) -> str:
    """sha256 of the canonical JSON of `parts` (configs, content hashes, code versions)."""
    return sha256_bytes(canonical_json(list(parts)).encode())


@cache
def code_version(*modules: str) -> str:
    """sha256 over the source of the named library modules/packages (e.g. "features", "regime.py").

    A stage keys its cache on the code it runs, so editing the HMM code recomputes the HMM stage but
    not the feature split. Paths are relative to the `cryptorl` package.
    """
    digest = hashlib.sha256()
    for name in sorted(modules):
        target = PACKAGE_ROOT / name
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for file in files:
            digest.update(str(file.relative_to(PACKAGE_ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()
