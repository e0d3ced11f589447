"""What the stage configs' `validate()` share: one rule per check (`require`), the value tests, and the old names
accepted with a deprecation note."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pandas as pd

from cryptorl.errors import ConfigError

SPAN_PATTERN = re.compile(r"^\s*(\d+)\s*(M|D|h|W)\s*$")  # a calendar span of WFO lengths: count and unit
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


# Old names, accepted with a one-line deprecation note: "seed" also meant the random seed.
DEPRECATED_NAMES: dict[tuple[str, str], str] = {("profile", "seed"): "reference", ("train.head", "seed"): "flatten"}


def renamed(what: str, name: Any) -> Any:
    """`name`'s current spelling for `what` ("profile", "train.head"); an old one gets a deprecation note."""
    new = DEPRECATED_NAMES.get((what, name)) if isinstance(name, str) else None
    if new is None:
        return name
    warnings.warn(
        f"{what} {name!r} is now called {new!r} (the original system's configuration, not a random "
        "seed); the old name will be removed",
        FutureWarning,
        stacklevel=3,
    )
    return new


def duration(text: str) -> pd.Timedelta | None:
    """A positive fixed duration ("1h", "4h", "1D"), else None."""
    try:
        duration = pd.Timedelta(text)
    except (ValueError, TypeError):
        return None
    return duration if duration > pd.Timedelta(0) else None


def timestamp(text: str) -> pd.Timestamp | None:
    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError):
        return None


def is_length(length: int | str) -> bool:
    """Bars (a positive int) or a positive calendar span ("18M", "30D", "2W", "500h")."""
    if isinstance(length, int):
        return length > 0
    match = SPAN_PATTERN.match(length)
    return match is not None and int(match[1]) > 0


def is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def require(ok: bool, key: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config {key}={value!r}: {fix}")
