"""Walk-forward segmentation: train / eval / test slices with purge gaps, numbered from 0.

Segment k's train slice starts at `first_train_start + k * step`. Between train and eval, and between
eval and test, `purge_bars` bars are dropped: the first eval observation window (64 bars of history)
then lies entirely after the last train bar, so nothing the agent is evaluated on was seen in training.
Lengths are bars (int, or a digit string) or calendar spans: "18M" (months), "30D" (days), "500h" (hours).
Slices are half-open bar ranges [start, stop) of positions in the (gap-filled, regular) bar index.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cryptorl.config import OBSERVATION_WINDOW, SPAN_PATTERN, WFOConfig
from cryptorl.errors import ConfigError, DataError
from cryptorl.features import WARMUP_BARS

SLICE_NAMES = ("train", "eval", "test")


@dataclass(frozen=True)
class BarRange:
    """Half-open range of bar positions [start, stop) with its first and last timestamps."""

    start: int
    stop: int
    first: pd.Timestamp
    last: pd.Timestamp

    @property
    def bars(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Segment:
    index: int
    train: BarRange
    eval: BarRange
    test: BarRange

    def slice(self, name: str) -> BarRange:
        if name not in SLICE_NAMES:
            raise ConfigError(f"unknown slice {name!r}: use one of {', '.join(SLICE_NAMES)}")
        return getattr(self, name)

    def describe(self) -> str:
        fmt = "%Y-%m-%d %H:%M"
        parts = [
            f"{name} {r.first:{fmt}} .. {r.last:{fmt}} ({r.bars} bars)"
            for name, r in ((n, self.slice(n)) for n in SLICE_NAMES)
        ]
        return f"segment {self.index}: " + " | ".join(parts)


def make_segments(index: pd.DatetimeIndex, config: WFOConfig) -> list[Segment]:
    """All segments whose test slice ends within `index` (a sorted, regular bar index)."""
    config.validate()
    first = pd.Timestamp(config.first_train_start, tz="UTC")
    segments: list[Segment] = []
    while True:
        segment = _segment_at(index, len(segments), first, config)
        if segment is None:
            return segments
        segments.append(segment)


def coverage_line(index: pd.DatetimeIndex, config: WFOConfig) -> str:
    """What `latest` trains and what it leaves idle: the bars after the newest segment's test slice (used by no
    segment yet) and how many more bars complete the next segment of the grid."""
    segments = make_segments(index, config)
    bar = _bar(index)
    horizon = len(index) + int(pd.Timedelta(days=3 * 366) / bar)  # enough for any segment of a few years
    future = pd.date_range(index[-1] + bar, periods=horizon, freq=bar)  # the grid's bars to come
    upcoming = _segment_at(
        index.append(future), len(segments), pd.Timestamp(config.first_train_start, tz="UTC"), config
    )
    after = (
        f"; segment {upcoming.index} completes in {upcoming.test.stop - len(index):,} more bars "
        f"(its test slice ends {upcoming.test.last:%Y-%m-%d %H:%M})"
        if upcoming is not None
        else ""
    )
    if not segments:
        return f"no segment is complete yet{after}"
    newest = segments[-1]
    idle = len(index) - newest.test.stop
    return (
        f"latest is segment {newest.index}: its test slice ends {newest.test.last:%Y-%m-%d %H:%M}; "
        f"{idle:,} newer bar{'s' * (idle != 1)} (to {index[-1]:%Y-%m-%d %H:%M}) are in no segment yet{after}"
    )


def get_segment(index: pd.DatetimeIndex, config: WFOConfig, number: int) -> Segment:
    segments = make_segments(index, config)
    if not 0 <= number < len(segments):
        span = f"0..{len(segments) - 1}" if segments else "none"
        raise ConfigError(
            f"segment {number} does not exist: the data {index[0]:%Y-%m-%d} .. {index[-1]:%Y-%m-%d} "
            f"holds segments {span} with this WFO config; pick one of those or add data"
        )
    return segments[number]


def span_start_bar(spec: Segment) -> int:
    """Where a segment's stored span starts: `window - 1` bars before the train start (a full first observation)."""
    return spec.train.start - (OBSERVATION_WINDOW - 1)


def warmup_shortfall(index: pd.DatetimeIndex, spec: Segment) -> str | None:
    """Why the data cannot run this segment (its first observation window would overlap the features' warm-up
    rows, which may be NaN), with the fix; None when it can. Needs only the bars' index."""
    if span_start_bar(spec) >= WARMUP_BARS:
        return None
    need = index[0] + (WARMUP_BARS + OBSERVATION_WINDOW) * (index[1] - index[0])
    return (
        f"segment {spec.index} trains from {spec.train.first:%Y-%m-%d %H:%M}, but the features need {WARMUP_BARS} "
        f"warm-up bars plus a {OBSERVATION_WINDOW}-bar window before it; set wfo.first_train_start to "
        f"{need:%Y-%m-%d %H:%M} or later, or add earlier data"
    )


def check_warmup(index: pd.DatetimeIndex, spec: Segment, source: str) -> None:
    """Refuse a segment the data cannot run (`warmup_shortfall`), naming the data source."""
    shortfall = warmup_shortfall(index, spec)
    if shortfall:
        raise DataError(f"{source}: {shortfall}")


def _segment_at(index: pd.DatetimeIndex, number: int, first: pd.Timestamp, config: WFOConfig) -> Segment | None:
    """Segment `number`, or None when its test slice would run past the end of the data."""
    train_start = _advance(index, _position_at_or_after(index, first), config.step, times=number)
    train_stop = None if train_start is None else _advance(index, train_start, config.train)
    eval_start = None if train_stop is None else train_stop + config.purge_bars
    eval_stop = None if eval_start is None else _advance(index, eval_start, config.eval)
    test_start = None if eval_stop is None else eval_stop + config.purge_bars
    test_stop = None if test_start is None else _advance(index, test_start, config.test)
    if None in (train_start, train_stop, eval_start, eval_stop, test_start, test_stop):
        return None  # a later slice is None whenever an earlier one is
    return Segment(number, *_ranges(index, train_start, train_stop, eval_start, eval_stop, test_start, test_stop))


def _ranges(index: pd.DatetimeIndex, *bounds: int | None) -> tuple[BarRange, ...]:
    """(start, stop) pairs of bar positions as bar ranges with their first and last timestamps."""
    positions = [int(bound) for bound in bounds if bound is not None]
    return tuple(
        BarRange(start, stop, index[start], index[stop - 1])
        for start, stop in zip(positions[::2], positions[1::2], strict=True)
    )


def _position_at_or_after(index: pd.DatetimeIndex, when: pd.Timestamp) -> int:
    return int(index.searchsorted(when, side="left"))


def _advance(index: pd.DatetimeIndex, start: int, length: int | str, times: int = 1) -> int | None:
    """Position `times` lengths (bars, or a calendar span; WFOConfig.validate checked it) after `start`, or None
    when that runs past the end of the data."""
    if start >= len(index):
        return None
    if isinstance(length, int):
        stop = start + length * times
        return stop if stop <= len(index) else None
    target = index[start] + _as_offset(length) * times
    if target > index[-1] + _bar(index):
        return None
    return _position_at_or_after(index, target)


def _bar(index: pd.DatetimeIndex) -> pd.Timedelta:
    return index[1] - index[0] if len(index) > 1 else pd.Timedelta(hours=1)


def _as_offset(length: str) -> pd.DateOffset:
    match = SPAN_PATTERN.match(length)
    assert match is not None, length  # WFOConfig.validate refuses any other length
    count, unit = int(match[1]), match[2]
    return {
        "M": pd.DateOffset(months=count),
        "D": pd.DateOffset(days=count),
        "W": pd.DateOffset(weeks=count),
        "h": pd.DateOffset(hours=count),
    }[unit]
