"""Stationary block bootstrap: the block sums are the resampled bars' sums, intervals cover, pairing, seeding."""

import math

import numpy as np
import pytest

from cryptorl.audit.metrics import sharpe_ratio
from cryptorl.errors import ConfigError
from cryptorl.evaluation.bootstrap import bootstrap_sharpe, percentile_interval, resample_blocks


def explicit_indices(starts: np.ndarray, lengths: np.ndarray, n_bars: int) -> list[np.ndarray]:
    """Each resample's bar indices, block by block: start, start + 1, ... wrapping around the end."""
    return [np.concatenate([(start + np.arange(length)) % n_bars for start, length in zip(row_starts, row_lengths)])
            for row_starts, row_lengths in zip(starts, lengths)]


def test_blocks_tile_each_resample_with_geometric_lengths():
    starts, lengths = resample_blocks(500, 200, 10, np.random.default_rng(0))
    assert (lengths.sum(axis=1) == 500).all() and (starts >= 0).all() and (starts < 500).all()
    # Each bar after the first starts a new block with probability 1/10: 1 + 499/10 = 50.9 blocks per resample.
    assert 49.5 < np.mean((lengths > 0).sum(axis=1)) < 52.3


def test_sharpe_from_block_sums_equals_the_sharpe_of_the_resampled_bars():
    """The prefix-sum shortcut resamples exactly the bars an explicit index construction picks."""
    series = np.random.default_rng(1).normal(0.001, 0.01, 300)
    sharpe = bootstrap_sharpe(series, n_resamples=20, mean_block=7, seed=5)[:, 0]  # (20,)
    starts, lengths = resample_blocks(300, 20, 7, np.random.default_rng(5))  # the same draws
    expected = [sharpe_ratio(series[indices]) for indices in explicit_indices(starts, lengths, 300)]
    np.testing.assert_allclose(sharpe, expected, rtol=1e-9)


def test_the_interval_covers_a_known_sharpe_about_95_percent_of_the_time():
    """iid normal returns with per-bar Sharpe 0.05: the 95 % interval holds it in ~95 % of 200 samples."""
    rng = np.random.default_rng(2)
    true_sharpe, n_bars, covered = 0.05, 1500, 0
    for replication in range(200):
        series = rng.normal(true_sharpe, 1.0, n_bars)
        interval = percentile_interval(sharpe_ratio(series), bootstrap_sharpe(series, 400, 24, replication)[:, 0])
        covered += interval.low <= true_sharpe <= interval.high
    assert 0.89 <= covered / 200 <= 0.99  # binomial sd at 0.95 of 200 draws: 1.5 %


def test_paired_resamples_cancel_what_two_series_share():
    rng = np.random.default_rng(3)
    market = rng.normal(0.0, 0.01, 2000)
    strategy = market + rng.normal(0.0002, 0.001, 2000)  # buy & hold plus a small independent edge
    boot = bootstrap_sharpe(np.stack([strategy, market]), 1000, 24, seed=0)  # (1000, 2)
    paired = boot[:, 0] - boot[:, 1]
    unpaired = boot[:, 0] - np.random.default_rng(4).permutation(boot[:, 1])
    assert np.std(paired) < 0.2 * np.std(unpaired)
    identical = bootstrap_sharpe(np.stack([market, market]), 100, 24, seed=0)
    assert (identical[:, 0] == identical[:, 1]).all()  # the same bars: the difference is exactly 0


def test_the_same_seed_gives_the_same_resamples_and_another_seed_others():
    series = np.random.default_rng(5).normal(0.0, 1.0, 1000)
    first, again = (bootstrap_sharpe(series, 600, 24, seed=11, bars_per_year=8760) for _ in range(2))
    assert (first == again).all() and not (first == bootstrap_sharpe(series, 600, 24, seed=12)).all()
    assert first.shape == (600, 1)
    per_bar = bootstrap_sharpe(series, 600, 24, seed=11)
    np.testing.assert_allclose(first, per_bar * math.sqrt(8760))  # annualisation as in audit/metrics.py


def test_a_series_without_dispersion_resamples_to_zero():
    assert (bootstrap_sharpe(np.zeros(100), 50, 10) == 0.0).all()


@pytest.mark.parametrize("n_bars, n_resamples, mean_block", [(1, 10, 5), (100, 0, 5), (100, 10, 0.5)])
def test_bad_bootstrap_settings_are_refused(n_bars, n_resamples, mean_block):
    with pytest.raises(ConfigError, match="need at least 2 bars, 1 resample and a mean block of at least 1 bar"):
        resample_blocks(n_bars, n_resamples, mean_block, np.random.default_rng(0))
