import pandas as pd
import pytest

from cryptorl.config import OBSERVATION_WINDOW, WFOConfig, get_profile
from cryptorl.errors import ConfigError
from cryptorl.wfo import get_segment, make_segments

HOURS = pd.date_range("2018-01-01", "2020-12-31 23:00", freq="h", tz="UTC")


def test_segments_in_bars_are_contiguous_with_purge_gaps():
    config = WFOConfig(first_train_start="2018-01-01", train=1000, eval=200, test=100, step=300, purge_bars=64)
    segments = make_segments(HOURS, config)
    first = segments[0]
    assert (first.train.start, first.train.stop) == (0, 1000)
    assert (first.eval.start, first.eval.stop) == (1064, 1264)
    assert (first.test.start, first.test.stop) == (1328, 1428)
    assert segments[1].train.start == 300
    assert [s.index for s in segments] == list(range(len(segments)))
    assert segments[-1].test.stop <= len(HOURS) < segments[-1].test.stop + 300


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_no_observation_window_straddles_two_slices(profile, bundled_ohlcv):
    for segment in make_segments(bundled_ohlcv.index, get_profile(profile).wfo):
        # The first eval/test window (bars t-63..t) starts after the previous slice's last bar.
        assert segment.eval.start - (OBSERVATION_WINDOW - 1) > segment.train.stop - 1
        assert segment.test.start - (OBSERVATION_WINDOW - 1) > segment.eval.stop - 1
        assert segment.train.first < segment.eval.first < segment.test.first


def test_calendar_spans_follow_month_boundaries(bundled_ohlcv):
    segments = make_segments(bundled_ohlcv.index, get_profile("smoke").wfo)
    assert segments[0].train.first == pd.Timestamp("2018-01-01", tz="UTC")
    assert segments[0].train.last == pd.Timestamp("2018-06-30 23:00", tz="UTC")
    assert segments[1].train.first == pd.Timestamp("2018-02-01", tz="UTC")
    assert segments[-1].test.last <= bundled_ohlcv.index[-1]


def test_test_slices_of_later_segments_only_move_forward(bundled_ohlcv):
    segments = make_segments(bundled_ohlcv.index, get_profile("cpu").wfo)
    assert all(b.test.first > a.test.first for a, b in zip(segments, segments[1:]))


def test_purge_shorter_than_window_is_refused():
    with pytest.raises(ConfigError, match=r"wfo.purge_bars=10.*at least the observation window \(64"):
        make_segments(HOURS, WFOConfig(purge_bars=10))


@pytest.mark.parametrize("length", ["6X", "-3", "0", "M6"])
def test_bad_lengths_name_the_key(length):
    with pytest.raises(ConfigError, match=r"wfo.train="):
        make_segments(HOURS, WFOConfig(train=length))


def test_missing_segment_lists_the_available_ones():
    config = WFOConfig(train="12M", eval="3M", test="3M", step="3M")
    with pytest.raises(ConfigError, match=r"segment 99 does not exist.*segments 0\.\.\d+"):
        get_segment(HOURS, config, 99)
