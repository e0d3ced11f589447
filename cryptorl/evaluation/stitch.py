"""Stitch the test slices of consecutive walk-forward segments into one out-of-sample series per policy.

Segment k's agent trades its own test slice; live, the agent of segment k+1 takes over when its test slice
starts. Stitching does exactly that, and says where the slices do not tile:

- contiguous: slice k+1 starts one bar after slice k's last bar (what `wfo.step == wfo.test` gives);
- gap: bars between them belong to no test slice: nothing is traded there, and the gap is reported
  (segments, timestamps, bar count), never filled;
- overlap: both agents were out of sample on the shared bars. The newer agent takes over at its test start,
  as it would live, so segment k's bars from that timestamp on are dropped, and the overlap is reported.

Every seed's agent is stitched the same way; a segment that some seed has no series for is left out of the
stitched series for all seeds (and reported), so every seed and the seed ensemble cover the same bars. The
baselines (buy & hold, flat, momentum, probe, best_constant) do not depend on the seed: they are read from
the lowest seed's audit.

Each audited slice also ends with one bar that is not traded: a decision at the slice's last bar needs the
next close, which lies in the next slice (cryptorl/audit/backtest.py). Net returns of the stitched series
are recomputed from the stitched positions (`net_returns`), so a hand-over pays fee × |p_new − p_old| as a
live account would, instead of each audit's entry from flat; within a segment they equal the audit's own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptorl.audit.metrics import net_returns
from cryptorl.errors import DataError
from cryptorl.evaluation.series import LOG_RETURN, policies_of, position_column

TRAINED = "trained"
ENSEMBLE = "seed ensemble"
SEGMENT = "segment"
CONTIGUOUS, GAP, OVERLAP = "contiguous", "gap", "overlap"


@dataclass(frozen=True)
class SegmentSeries:
    """One (segment, seed) audit: its per-bar series and the test slice it was audited on."""

    segment: int
    seed: int
    frame: pd.DataFrame  # (T_k, 1 + 2P) the audit's series.parquet (cryptorl/evaluation/series.py)
    test_first: pd.Timestamp  # first and last bar of the test slice (the series ends one bar earlier)
    test_last: pd.Timestamp


@dataclass(frozen=True)
class Junction:
    """Where one segment's test slice meets the next one's (in test-start order)."""

    before: int  # segment numbers
    after: int
    before_last: pd.Timestamp  # last bar of the earlier slice
    after_first: pd.Timestamp  # first bar of the later slice
    kind: str  # CONTIGUOUS, GAP or OVERLAP
    bars: int  # bars in the gap, or bars both slices hold (0 when contiguous)

    def describe(self) -> str:
        span = (
            f"segment {self.before} ends {self.before_last:%Y-%m-%d %H:%M}, segment {self.after} starts "
            f"{self.after_first:%Y-%m-%d %H:%M}"
        )
        if self.kind == GAP:
            return f"gap: {span}: {self.bars} bars in no test slice, not traded"
        if self.kind == OVERLAP:
            return (
                f"overlap: {span}: {self.bars} bars in both; segment {self.before}'s are dropped "
                f"(segment {self.after}'s agent takes over at its test start)"
            )
        return f"contiguous: {span}"


@dataclass(frozen=True)
class Stitched:
    """The stitched out-of-sample series and what stitching found on the way."""

    frame: pd.DataFrame  # (T, 2 + P) UTC index: `segment`, `log_return`, `position.<label>` per policy label
    seeds: list[int]
    junctions: list[Junction]  # between consecutive stitched segments
    excluded: dict[int, list[int]]  # segment -> the seeds that have no series for it (left out for all seeds)

    @property
    def segments(self) -> list[int]:
        return list(dict.fromkeys(self.frame[SEGMENT].tolist()))

    @property
    def labels(self) -> list[str]:
        return policies_of(self.frame)

    def positions(self, label: str) -> np.ndarray:
        return self.frame[position_column(label)].to_numpy()  # (T,)

    def net(self, label: str, fee: float) -> np.ndarray:
        """Net per-bar log-returns (T,) of holding `label`'s stitched positions, paying `fee` on every change."""
        return net_returns(self.positions(label), self.frame[LOG_RETURN].to_numpy(), fee)


def seed_label(seed: int) -> str:
    """The stitched label of one seed's trained agent, e.g. 'trained seed 0'."""
    return f"{TRAINED} seed {seed}"


def stitch(pieces: list[SegmentSeries], bar: pd.Timedelta) -> Stitched:
    """One series per policy over every segment all seeds have, in test-start order (see the module docstring).

    With more than one seed, the seed ensemble (`ensemble_positions`) is added as its own policy.
    """
    by_segment = _by_segment(pieces)
    seeds = sorted({piece.seed for piece in pieces})
    excluded = {
        segment: sorted(set(seeds) - set(runs)) for segment, runs in by_segment.items() if set(runs) != set(seeds)
    }
    complete = sorted(
        (runs for segment, runs in by_segment.items() if segment not in excluded),
        key=lambda runs: next(iter(runs.values())).test_first,
    )
    if not complete:
        raise DataError(
            "no segment has an audited series for every seed: nothing to stitch; rerun the segments whose runs failed"
        )
    junctions = [_junction(_first(a), _first(b), bar) for a, b in itertools.pairwise(complete)]
    takeovers = [_first(runs).test_first for runs in complete[1:]] + [None]
    frames = [_segment_frame(runs, seeds, takeover) for runs, takeover in zip(complete, takeovers, strict=True)]
    frame = pd.concat(frames)
    if len(seeds) > 1:
        frame[position_column(ENSEMBLE)] = ensemble_positions(frame[[position_column(seed_label(s)) for s in seeds]])
    return Stitched(frame, seeds, junctions, excluded)


def ensemble_positions(positions: pd.DataFrame) -> pd.Series:
    """The seed ensemble: at each bar the mean of the seeds' positions (T, S) -> (T,).

    Holding the mean position is what splitting the account equally among the seeds' agents would hold;
    its net return (`Stitched.net`) pays the fee on the mean's changes, less than the seeds' fees summed
    when they trade against each other.
    """
    return positions.mean(axis=1)


def _by_segment(pieces: list[SegmentSeries]) -> dict[int, dict[int, SegmentSeries]]:
    grouped: dict[int, dict[int, SegmentSeries]] = {}
    for piece in pieces:
        if piece.seed in grouped.setdefault(piece.segment, {}):
            raise DataError(
                f"segment {piece.segment} seed {piece.seed} is given twice: stitch one audit per segment and seed"
            )
        grouped[piece.segment][piece.seed] = piece
    return grouped


def _first(runs: dict[int, SegmentSeries]) -> SegmentSeries:
    return runs[min(runs)]


def _junction(before: SegmentSeries, after: SegmentSeries, bar: pd.Timedelta) -> Junction:
    missing = round((after.test_first - before.test_last) / bar) - 1  # < 0: bars both slices hold
    kind = CONTIGUOUS if missing == 0 else GAP if missing > 0 else OVERLAP
    return Junction(before.segment, after.segment, before.test_last, after.test_first, kind, abs(missing))


def _segment_frame(runs: dict[int, SegmentSeries], seeds: list[int], takeover: pd.Timestamp | None) -> pd.DataFrame:
    """One segment's rows before `takeover`: baselines from the lowest seed, the trained agent of every seed."""
    base = _first(runs)
    keep = base.frame.index < takeover if takeover is not None else np.ones(len(base.frame), dtype=bool)
    columns = {SEGMENT: base.segment, LOG_RETURN: base.frame[LOG_RETURN]}
    columns.update(
        {
            position_column(policy): base.frame[position_column(policy)]
            for policy in policies_of(base.frame)
            if policy != TRAINED
        }
    )
    for seed in seeds:
        frame = runs[seed].frame
        if not frame.index.equals(base.frame.index):
            raise DataError(
                f"segment {base.segment}: seed {seed}'s series covers other bars than seed {base.seed}'s; "
                "every seed of a segment must be audited on the same test slice"
            )
        columns[position_column(seed_label(seed))] = frame[position_column(TRAINED)]
    return pd.DataFrame(columns, index=base.frame.index)[keep]
