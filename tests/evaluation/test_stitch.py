"""Stitching segments' test slices: contiguous, gap and overlap junctions, seeds, the ensemble, net returns."""

import numpy as np
import pandas as pd
import pytest

from cryptorl.audit.metrics import net_returns
from cryptorl.errors import DataError
from cryptorl.evaluation.stitch import CONTIGUOUS, ENSEMBLE, GAP, OVERLAP, SegmentSeries, seed_label, stitch

BAR = pd.Timedelta("1h")
T0 = pd.Timestamp("2018-08-01 00:00", tz="UTC")
FEE = 0.001


def piece(segment: int, seed: int, first: pd.Timestamp, test_bars: int, trained: list[float] | None = None,
          rng_seed: int = 0) -> SegmentSeries:
    """A series as the audit stores it: decision bars = the test slice but its last bar."""
    n = test_bars - 1
    index = pd.date_range(first, periods=n, freq="h", name="timestamp")
    log_returns = np.random.default_rng(rng_seed).normal(0.0, 0.01, n)
    positions = {"buy_and_hold": np.ones(n), "trained": np.asarray(trained if trained is not None else
                                                                     np.sign(np.sin(np.arange(n) + seed)))}
    columns = {"log_return": log_returns}
    for policy, held in positions.items():
        columns[f"position.{policy}"], columns[f"net.{policy}"] = held, net_returns(held, log_returns, FEE)
    return SegmentSeries(segment, seed, pd.DataFrame(columns, index=index), first, first + (test_bars - 1) * BAR)


def test_contiguous_segments_join_and_the_hand_over_pays_the_position_change():
    first, second = piece(0, 0, T0, 10, [1.0] * 9), piece(1, 0, T0 + 10 * BAR, 10, [-1.0] * 9, rng_seed=1)
    stitched = stitch([second, first], BAR)  # any order: by test start
    assert stitched.segments == [0, 1] and len(stitched.frame) == 18
    [junction] = stitched.junctions
    assert (junction.kind, junction.bars, junction.before, junction.after) == (CONTIGUOUS, 0, 0, 1)
    net = stitched.net(seed_label(0), FEE)
    np.testing.assert_allclose(net[:9], first.frame["net.trained"])  # within a segment: the audit's own net
    np.testing.assert_allclose(net[10:], second.frame["net.trained"][1:])
    # the hand-over from +1 to -1 pays 2 x fee, not the audit's entry from flat (1 x fee)
    assert net[9] == pytest.approx(-1.0 * second.frame["log_return"].iloc[0] - 2 * FEE)
    assert ENSEMBLE not in stitched.labels  # one seed: no ensemble row


def test_a_gap_is_reported_and_not_filled():
    stitched = stitch([piece(0, 0, T0, 10), piece(1, 0, T0 + 15 * BAR, 10)], BAR)
    [junction] = stitched.junctions
    # slice 0 ends at T0+9h, slice 1 starts at T0+15h: T0+10h .. T0+14h are in no test slice
    assert (junction.kind, junction.bars) == (GAP, 5)
    assert junction.describe() == ("gap: segment 0 ends 2018-08-01 09:00, segment 1 starts 2018-08-01 15:00: "
                                   "5 bars in no test slice, not traded")
    assert len(stitched.frame) == 18 and stitched.frame.index[9] == T0 + 15 * BAR


def test_an_overlap_is_reported_and_the_newer_agent_takes_over_at_its_test_start():
    older, newer = piece(0, 0, T0, 10), piece(1, 0, T0 + 7 * BAR, 10, rng_seed=1)
    stitched = stitch([older, newer], BAR)
    [junction] = stitched.junctions
    assert (junction.kind, junction.bars) == (OVERLAP, 3)  # T0+7h, 8h, 9h are in both slices
    assert "3 bars in both; segment 0's are dropped" in junction.describe()
    assert (stitched.frame["segment"] == 0).sum() == 7  # T0 .. T0+6h: older's decisions before the take-over
    assert stitched.frame.index.is_monotonic_increasing and stitched.frame.index.is_unique
    assert stitched.frame.loc[T0 + 7 * BAR, "log_return"] == newer.frame["log_return"].iloc[0]


def test_seeds_are_stitched_alike_and_the_ensemble_is_their_mean_position():
    pieces = [piece(0, 0, T0, 4, [1.0, 1.0, 0.0]), piece(0, 1, T0, 4, [0.0, -1.0, 0.0]), piece(1, 0, T0 + 4 * BAR, 4),
              piece(1, 1, T0 + 4 * BAR, 4), piece(2, 0, T0 + 8 * BAR, 4)]  # segment 2 lacks seed 1
    stitched = stitch(pieces, BAR)
    assert stitched.seeds == [0, 1] and stitched.segments == [0, 1] and stitched.excluded == {2: [1]}
    assert stitched.labels == ["buy_and_hold", "trained seed 0", "trained seed 1", ENSEMBLE]
    np.testing.assert_allclose(stitched.positions(ENSEMBLE)[:3], [0.5, 0.0, 0.0])
    # by hand on segment 0: ensemble positions 0.5, 0, 0 over log-returns r0, r1, r2, fee 0.001:
    #   bar 0: 0.5 r0 - 0.001 x 0.5; bar 1: 0 x r1 - 0.001 x 0.5; bar 2: 0 - 0
    r = pieces[0].frame["log_return"].to_numpy()
    np.testing.assert_allclose(stitched.net(ENSEMBLE, FEE)[:3], [0.5 * r[0] - 0.0005, -0.0005, 0.0])


def test_refuses_a_segment_given_twice_and_seeds_on_different_bars():
    with pytest.raises(DataError, match="segment 0 seed 0 is given twice"):
        stitch([piece(0, 0, T0, 4), piece(0, 0, T0, 4)], BAR)
    with pytest.raises(DataError, match="segment 0: seed 1's series covers other bars than seed 0's"):
        stitch([piece(0, 0, T0, 4), piece(0, 1, T0 + BAR, 4)], BAR)
    with pytest.raises(DataError, match="no segment has an audited series for every seed"):
        stitch([piece(0, 0, T0, 4), piece(1, 1, T0 + 4 * BAR, 4)], BAR)
