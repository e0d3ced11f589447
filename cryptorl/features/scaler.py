"""Robust per-column scaling fit on the train slice only.

Median and inter-quartile range resist the crash and squeeze bars that would dominate a mean and a
std; the clip bounds what one extreme bar can do to a batch. The scaler is fit on train rows alone, so
nothing about the eval or test period leaks into the features a model is trained on, and it is stored
with each checkpoint (`to_dict`) and identified by `fingerprint()` so a model never meets data scaled
by a different scaler than the one it was trained with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cryptorl.errors import CheckpointError, DataError

_DICT_KEYS = ("columns", "median", "scale", "clip")


@dataclass(frozen=True)
class RobustScaler:
    """(x - median) / scale, clipped to +-clip, per column; NaN stays NaN."""

    columns: tuple[str, ...]
    median: tuple[float, ...]
    # The IQR (75th - 25th percentile). Where it is 0 (a column constant on most train rows) the std of
    # the train rows is used instead, and 1.0 where that is 0 too, so no column is ever divided by zero.
    scale: tuple[float, ...]
    clip: float = 5.0

    @classmethod
    def fit(cls, train: pd.DataFrame, clip: float = 5.0) -> RobustScaler:
        """Fit on the rows of `train` (NaN ignored): pass the train slice only, never eval or test rows."""
        values = _finite_matrix(train)  # (T, C)
        q25, median, q75 = np.nanpercentile(values, [25.0, 50.0, 75.0], axis=0)  # each (C,)
        iqr = q75 - q25
        std = np.nanstd(values, axis=0)
        scale = np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0))
        return cls(
            columns=tuple(str(name) for name in train.columns),
            median=tuple(median.tolist()),
            scale=tuple(scale.tolist()),
            clip=float(clip),
        )

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Scale the scaler's columns of `frame` row by row (output: those columns, same index, float64)."""
        missing = [name for name in self.columns if name not in frame.columns]
        if missing:
            raise DataError(f"frame to scale lacks column(s) {missing}: pass the columns the scaler was fit on")
        values = frame[list(self.columns)].to_numpy(np.float64)  # (T, C)
        scaled = np.clip((values - np.asarray(self.median)) / np.asarray(self.scale), -self.clip, self.clip)
        return pd.DataFrame(scaled, index=frame.index, columns=list(self.columns))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe parameters (plain lists and floats); `from_dict` rebuilds an identical scaler."""
        return {
            "columns": list(self.columns),
            "median": list(self.median),
            "scale": list(self.scale),
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustScaler:
        """Rebuild a scaler saved with `to_dict`, e.g. from a checkpoint."""
        missing = [key for key in _DICT_KEYS if key not in data]
        if missing:
            raise CheckpointError(f"scaler parameters lack key(s) {missing}: save them with RobustScaler.to_dict()")
        lengths = {key: len(data[key]) for key in ("columns", "median", "scale")}
        if len(set(lengths.values())) != 1:
            raise CheckpointError(
                f"scaler parameters have mismatched lengths {lengths}: save them with RobustScaler.to_dict()"
            )
        return cls(
            columns=tuple(map(str, data["columns"])),
            median=tuple(map(float, data["median"])),
            scale=tuple(map(float, data["scale"])),
            clip=float(data["clip"]),
        )

    def fingerprint(self) -> str:
        """sha256 of the parameters: equal fingerprints mean identical scaling, to the bit."""
        # json writes floats with repr, which round-trips exactly, so the hash sees every bit.
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _finite_matrix(train: pd.DataFrame) -> np.ndarray:
    """The train values as float64, refusing what would make a median or IQR meaningless."""
    if len(train.columns) == 0:
        raise DataError("train frame has no columns: fit the scaler on the feature frame")
    values = train.to_numpy(np.float64)  # (T, C)
    for j, name in enumerate(train.columns):
        column = values[:, j]
        if np.isinf(column).any():
            row = train.index[np.isinf(column).argmax()]
            raise DataError(f"train column {name!r} is infinite at {row}: fix the feature that produces it")
        if np.isnan(column).all():
            raise DataError(
                f"train column {name!r} is all NaN on {len(train)} rows: fit on rows after the feature warm-up"
            )
    return values
