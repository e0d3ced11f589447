"""One exception hierarchy for the whole library.

Every error a user can cause (bad data, bad config, wrong checkpoint, unreachable store) is a
`CryptoRLError` whose message is one line: what went wrong, where, and how to fix it. The CLI turns
any `CryptoRLError` into that line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations


class CryptoRLError(Exception):
    """Base class of every error CryptoRL raises on purpose."""


class DataError(CryptoRLError, ValueError):
    """Input market data is missing, malformed or inconsistent."""


class ConfigError(CryptoRLError, ValueError):
    """A configuration value is invalid; the message names the key and the fix."""


class StorageError(CryptoRLError, OSError):
    """The artifact store cannot be reached or an artifact cannot be read/written."""


class ArtifactNotFoundError(StorageError):
    """The store is reachable but holds nothing under that key."""


class CheckpointError(CryptoRLError, ValueError):
    """A checkpoint file is missing, corrupt, truncated or of the wrong kind."""


class ModelDimensionsError(CheckpointError):
    """A checkpoint's model dimensions do not match the expected configuration."""
