"""Save and load CryptoMAE checkpoints on a local path or any fsspec URL (s3://, memory://).

A checkpoint carries its config, so loading rebuilds the exact architecture and checks it against the
dimensions the caller expects before a single weight is copied. Only tensors and plain containers are
stored, so `torch.load(..., weights_only=True)` can read it without executing pickled code.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import asdict, dataclass

import torch

from cryptorl.errors import ArtifactNotFoundError, CheckpointError, ConfigError, ModelDimensionsError
from cryptorl.models.foundation import DIMENSION_FIELDS, CryptoMAE, MAEConfig
from cryptorl.storage import read_url, write_url

FORMAT = "cryptorl-mae"
VERSION = 1
_FIX = "re-run pretrain_mae with --clean"


@dataclass(frozen=True)
class MAECheckpoint:
    """A loaded checkpoint: the model (eval mode, CPU) and the metadata stored beside it."""

    model: CryptoMAE
    config: MAEConfig
    columns: list[str] | None  # the feature columns the encoder was trained on, in order
    scaler_fingerprint: str | None  # identifies the scaler whose output the encoder expects


class ModelDimensionsValidator:
    """Checks that a checkpoint's architecture matches the expected one, naming every mismatch."""

    def __init__(self, expected: MAEConfig) -> None:
        self.expected = expected

    def validate(self, found: MAEConfig, source: str) -> None:
        wrong = [key for key in DIMENSION_FIELDS if getattr(found, key) != getattr(self.expected, key)]
        if not wrong:
            return
        found_text = ", ".join(f"{key}={getattr(found, key)} (expected {getattr(self.expected, key)})" for key in wrong)
        overrides = " ".join(f"mae.{key}={getattr(found, key)}" for key in wrong)
        raise ModelDimensionsError(
            f"checkpoint {source} has {found_text}: {_FIX} to retrain at the expected size, "
            f"or set {overrides} to use this checkpoint"
        )


def save_mae(
    model: CryptoMAE, path_or_url: str, *, columns: list[str] | None = None, scaler_fingerprint: str | None = None
) -> str:
    """Write `model` and its metadata to `path_or_url` atomically; returns `path_or_url`."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(model.config),
        "columns": list(columns) if columns is not None else None,
        "scaler_fingerprint": scaler_fingerprint,
        # CPU tensors, so a checkpoint written on the GPU server loads on a laptop.
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_url(path_or_url, buffer.getvalue())
    return path_or_url


def load_mae(path_or_url: str, expected: MAEConfig | None = None) -> CryptoMAE:
    """The CryptoMAE stored at `path_or_url` (eval mode, CPU), checked against `expected` if given."""
    return load_mae_checkpoint(path_or_url, expected).model


def load_mae_checkpoint(path_or_url: str, expected: MAEConfig | None = None) -> MAECheckpoint:
    """The model and metadata stored at `path_or_url`; dimensions checked against `expected` if given."""
    payload = _read_payload(path_or_url)
    config = _stored_config(payload, path_or_url)
    if expected is not None:
        ModelDimensionsValidator(expected).validate(config, path_or_url)
    model = CryptoMAE(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path_or_url} has weights that do not fit its config ({_one_line(exc)}): {_FIX}"
        ) from None
    return MAECheckpoint(model.eval(), config, payload.get("columns"), payload.get("scaler_fingerprint"))


def _read_payload(url: str) -> dict:
    try:
        data = read_url(url)
    except ArtifactNotFoundError:
        raise CheckpointError(f"checkpoint {url} not found: run pretrain_mae first or fix the path") from None
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, UnpicklingError... on bad bytes
        raise CheckpointError(
            f"checkpoint {url} is corrupt or truncated ({type(exc).__name__}): delete it and {_FIX}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{url} is not a CryptoMAE checkpoint (format {found!r}, expected {FORMAT!r}): "
            f"point to a file written by save_mae"
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {url} has format version {payload.get('version')!r}, this code reads version {VERSION}: {_FIX}"
        )
    return payload


def _stored_config(payload: dict, url: str) -> MAEConfig:
    known = {field.name for field in dataclasses.fields(MAEConfig)}
    stored = payload.get("config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"checkpoint {url} has no config: {_FIX}")
    try:
        return MAEConfig(**{key: value for key, value in stored.items() if key in known}).validate()
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {url} has an invalid config ({_one_line(exc)}): {_FIX}") from None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """The exception's message on one line (errors here are one line by contract), cut at `limit`."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
