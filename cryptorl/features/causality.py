"""Truncation invariance: the executable form of "a feature at bar t depends only on bars <= t".

If `fn` is causal, running it on `frame.iloc[:cut + 1]` must give, on those rows, exactly (bit for bit)
what running it on the whole frame gives. A forward shift, a centred window, a whole-series statistic or a
back-fill changes some value, so comparing with exact equality (never allclose) catches each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from cryptorl.errors import DataError


def check_truncation_invariance(
    fn: Callable[[pd.DataFrame], pd.DataFrame], frame: pd.DataFrame, cut_points: Iterable[int]
) -> list[str]:
    """Names of `fn`'s output columns that differ between fn(frame.iloc[:cut+1]) and fn(frame) on rows
    0..cut, for any cut; an empty list means `fn` looked at no future bar at these cuts.

    A column present in only one of the two outputs counts as differing.
    """
    full = fn(frame)
    differing: set[str] = set()
    for cut in cut_points:
        if not 0 <= cut < len(frame):
            raise DataError(f"cut point {cut} is outside the frame of {len(frame)} rows: use 0 <= cut < {len(frame)}")
        prefix = fn(frame.iloc[: cut + 1])
        differing |= set(prefix.columns).symmetric_difference(full.columns)
        for name in prefix.columns.intersection(full.columns):
            expected = full[name].to_numpy(np.float64)[: cut + 1]  # (cut + 1,)
            if not np.array_equal(prefix[name].to_numpy(np.float64), expected, equal_nan=True):
                differing.add(name)
    return sorted(differing)
