"""The deflated Sharpe ratio and the PSR against a benchmark, on values computed by hand."""

import math

import numpy as np
import pytest

from cryptorl.audit.metrics import probabilistic_sharpe_ratio
from cryptorl.errors import ConfigError
from cryptorl.evaluation.deflated import deflated_sharpe_ratio, expected_max_sharpe

# net = [0.03, 0, 0, -0.01]: mean 0.005, deviations 0.025, -0.005, -0.005, -0.015
#   Σd² = 9e-4 -> std (ddof=1) = √3e-4 = 0.0173205 -> per-bar SR = 0.005 / 0.0173205 = 0.2886751
#   m2 = 9e-4/4 = 2.25e-4, m3 = 12e-6/4 = 3e-6, m4 = 442.5e-9/4 = 110.625e-9
#   skew = 3e-6 / 2.25e-4^1.5 = 3e-6 / 3.375e-6 = 0.8888889; kurtosis = 110.625e-9 / 5.0625e-8 = 2.1851852
#   spread = √(1 - 0.8888889 x 0.2886751 + (2.1851852 - 1)/4 x 0.2886751²) = √(1 - 0.2566001 + 0.0246914)
#          = √0.7680913 = 0.8764081
NET = np.array([0.03, 0.0, 0.0, -0.01])
# N = 10 trials, V = 1e-4 (the trials' per-bar Sharpe ratios have std 0.01):
#   Φ⁻¹(1 - 1/10) = 1.2815516, Φ⁻¹(1 - 1/(10 e)) = Φ⁻¹(0.9632121) = 1.7892418
#   SR0 = 0.01 x ((1 - 0.5772157) x 1.2815516 + 0.5772157 x 1.7892418) = 0.01 x (0.5418199 + 1.0327784)
#       = 0.0157460
SR0 = 0.0157460


def test_expected_max_sharpe_by_hand():
    assert expected_max_sharpe(10, 1e-4) == pytest.approx(SR0, abs=1e-7)
    assert expected_max_sharpe(10, 4e-4) == pytest.approx(2 * SR0, abs=1e-7)  # it scales with √V
    assert expected_max_sharpe(1, 1e-4) == 0.0  # one trial: nothing was selected


def test_psr_against_a_benchmark_by_hand():
    # z = (0.2886751 - 0.1) x √3 / 0.8764081 = 0.3267888 / 0.8764081 = 0.3728798; Φ(0.3728798) = 0.6453811
    assert probabilistic_sharpe_ratio(NET, benchmark=0.1) == pytest.approx(0.6453811, abs=1e-6)
    # against 0: z = 0.2886751 x √3 / 0.8764081 = 0.5705104; Φ = 0.7158342 (unchanged by the generalisation)
    assert probabilistic_sharpe_ratio(NET) == pytest.approx(0.7158342, abs=1e-6)


def test_dsr_is_the_psr_against_the_expected_maximum_by_hand():
    # z = (0.2886751 - 0.0157460) x √3 / 0.8764081 = 0.5393916; Φ(0.5393916) = 0.7051916
    deflated = deflated_sharpe_ratio(NET, n_trials=10, sharpe_variance=1e-4)
    assert deflated.expected_max_sharpe == pytest.approx(SR0, abs=1e-7)
    assert deflated.dsr == pytest.approx(0.7051916, abs=1e-6) and deflated.psr == pytest.approx(0.7158342, abs=1e-6)
    assert deflated.dsr < deflated.psr  # selection among 10 trials costs confidence


def test_a_flat_series_against_a_positive_benchmark():
    """SR = 0 has a spread of 1 whatever its (undefined) skew: Φ(-SR* √(n-1)) = Φ(-0.1 x 3) = 0.3820886."""
    assert probabilistic_sharpe_ratio(np.zeros(10), benchmark=0.1) == pytest.approx(0.3820886, abs=1e-6)
    assert probabilistic_sharpe_ratio(np.zeros(1), benchmark=0.1) == 0.5  # one bar: no evidence


@pytest.mark.parametrize("n_trials, variance", [(0, 1e-4), (3, -1.0)])
def test_bad_trial_statistics_are_refused(n_trials, variance):
    with pytest.raises(ConfigError, match="need at least 1 trial .* and a variance >= 0"):
        expected_max_sharpe(n_trials, variance)


def test_more_trials_raise_the_bar():
    bars = [expected_max_sharpe(n, 1e-4) for n in (2, 10, 100, 1000)]
    # N = 2: Φ⁻¹(1/2) = 0, Φ⁻¹(1 - 1/(2e)) = Φ⁻¹(0.8160603) = 0.9004526 -> SR0 = 0.01 x 0.5772157 x 0.9004526
    assert math.isclose(bars[0], 0.01 * 0.5772157 * 0.9004526, abs_tol=1e-8)
    assert bars == sorted(bars)
