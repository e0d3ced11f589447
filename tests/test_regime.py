"""The regime HMM: causal forward filter, stable state order, robust fit, clear errors, artifact round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from cryptorl import regime
from cryptorl.config import RegimeConfig
from cryptorl.errors import CheckpointError, ConfigError, DataError
from cryptorl.features import WARMUP_BARS, technical_features
from cryptorl.regime import CONTEXT_COLUMNS, STATE_COLUMNS, RegimeModel, fit_regime_model, forward_filter

WARMUP = 30
FAST = RegimeConfig(n_inits=5, n_iter=30)  # small enough to keep the file fast, 5 restarts for robustness
VOL_LEVELS = np.array([0.5, 1.0, 2.0, 4.0])  # rv_24 level of each true regime, calm to crash


def synthetic_features(n_rows: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Sticky 4-regime switching series with the HMM's column names, a NaN warm-up and an extra column."""
    rng = np.random.default_rng(seed)
    transmat = np.full((4, 4), 0.02 / 3)
    np.fill_diagonal(transmat, 0.98)
    states = np.zeros(n_rows, dtype=int)
    for t in range(1, n_rows):
        states[t] = rng.choice(4, p=transmat[states[t - 1]])
    vol, drift = VOL_LEVELS[states], np.array([0.1, 0.0, -0.1, -0.2])[states]
    frame = pd.DataFrame(
        {
            "ret_1": rng.normal(drift / 24, 0.01 * np.sqrt(vol)),
            "ret_24": rng.normal(drift, 0.05 * np.sqrt(vol)),
            "rv_24": rng.normal(vol, 0.2),
            "rv_168": rng.normal(vol, 0.4),
            "vol_z_24": rng.normal(states - 1.5, 0.5),
            "close": np.linspace(100.0, 200.0, n_rows),  # not an HMM column: must be ignored
        },
        index=pd.date_range("2021-01-01", periods=n_rows, freq="h", tz="UTC"),
    )
    frame.iloc[:WARMUP, :5] = np.nan  # the technical features' warm-up rows
    return frame, states


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_features()


@pytest.fixture(scope="module")
def model(data) -> RegimeModel:
    return fit_regime_model(data[0], seed=0, config=FAST)


@pytest.fixture(scope="module")
def context(model, data) -> pd.DataFrame:
    return model.context(data[0])


def standardised(model: RegimeModel, frame: pd.DataFrame) -> np.ndarray:
    return (frame[list(model.columns)].to_numpy()[WARMUP:] - model.center) / model.scale  # (T, F)


# --- the forward filter ---------------------------------------------------------------------------------

def test_forward_filter_matches_brute_force_path_enumeration():
    rng = np.random.default_rng(1)
    startprob = rng.dirichlet(np.ones(2))  # (K,)
    transmat = rng.dirichlet(np.ones(2), size=2)  # (K, K)
    emission = rng.uniform(0.05, 1.0, size=(5, 2))  # (T, K) p(x_t | s_t)
    probs = forward_filter(startprob, transmat, np.log(emission))
    for t in range(5):
        joint = np.zeros(2)  # P(s_t = k, x_1..x_t), summed over every path s_1..s_t
        for path in itertools.product(range(2), repeat=t + 1):
            weight = startprob[path[0]] * emission[0, path[0]]
            for step in range(1, t + 1):
                weight *= transmat[path[step - 1], path[step]] * emission[step, path[step]]
            joint[path[-1]] += weight
        np.testing.assert_allclose(probs[t], joint / joint.sum(), rtol=1e-12)


def test_forward_filter_starts_at_first_observed_row_and_predicts_over_missing_ones():
    startprob, transmat = np.array([0.3, 0.7]), np.array([[0.9, 0.1], [0.2, 0.8]])
    log_emission = np.log(np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.2, 0.6]]))
    log_emission[[0, 1, 3]] = np.nan  # warm-up rows 0-1, a gap at row 3
    probs = forward_filter(startprob, transmat, log_emission)
    assert np.isnan(probs[:2]).all()
    first = startprob * np.array([0.9, 0.1])
    np.testing.assert_allclose(probs[2], first / first.sum(), rtol=1e-12)
    np.testing.assert_allclose(probs[3], probs[2] @ transmat, rtol=1e-12)  # prior only, no evidence
    update = (probs[3] @ transmat) * np.array([0.2, 0.6])
    np.testing.assert_allclose(probs[4], update / update.sum(), rtol=1e-12)


def test_forward_filter_survives_evidence_that_underflows():
    """The prior rules out state 1; the bar's evidence favours it by e^1000 (exp underflows to 0)."""
    probs = forward_filter(np.array([1.0, 0.0]), np.eye(2), np.array([[-1000.0, 0.0]]))
    np.testing.assert_array_equal(probs, [[1.0, 0.0]])


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_every_covariance_type_fits_filters_and_round_trips(data, covariance_type):
    fitted = fit_regime_model(data[0], config=RegimeConfig(covariance_type=covariance_type, n_inits=2, n_iter=5))
    z = standardised(fitted, data[0])
    ours = regime._emission_log_likelihood(z, fitted.hmm.means_, fitted.hmm.covars_)  # (T, K)
    np.testing.assert_allclose(ours, fitted.hmm._compute_log_likelihood(z), rtol=1e-10)
    context = fitted.context(data[0])
    np.testing.assert_allclose(context.iloc[WARMUP:][list(STATE_COLUMNS)].sum(axis=1), 1.0, atol=1e-12)
    reloaded = RegimeModel.from_bytes(fitted.to_bytes()).context(data[0])
    assert np.array_equal(reloaded.to_numpy(), context.to_numpy(), equal_nan=True)


def test_filter_is_not_the_smoother(model, data, context):
    """predict_proba (forward-backward) uses future bars: it differs from the filter except at the last bar."""
    smoothed = model.hmm.predict_proba(standardised(model, data[0]))  # (T, K) P(s_t | x_1..x_T)
    filtered = context.iloc[WARMUP:][list(STATE_COLUMNS)].to_numpy()  # (T, K) P(s_t | x_1..x_t)
    assert np.abs(smoothed - filtered).max() > 0.1
    np.testing.assert_allclose(smoothed[-1], filtered[-1], atol=1e-9)


# --- the context frame ----------------------------------------------------------------------------------

def test_context_has_five_columns_on_the_input_index(data, context):
    assert list(context.columns) == list(CONTEXT_COLUMNS) and len(CONTEXT_COLUMNS) == 5
    assert context.index.equals(data[0].index)
    assert context.iloc[:WARMUP].isna().all().all()
    valid = context.iloc[WARMUP:]
    assert np.isfinite(valid.to_numpy()).all()
    np.testing.assert_allclose(valid[list(STATE_COLUMNS)].sum(axis=1), 1.0, atol=1e-12)
    assert valid["regime_entropy"].between(0.0, 1.0).all() and valid["regime_entropy"].max() > 0.1


def test_context_recovers_the_true_regimes_in_volatility_order(data, context):
    guessed = context.iloc[WARMUP:][list(STATE_COLUMNS)].to_numpy().argmax(axis=1)
    assert (guessed == data[1][WARMUP:]).mean() > 0.95  # state k is the k-th calmest regime


def test_context_is_exactly_truncation_invariant(model, data, context):
    frame = data[0]
    for cut in (WARMUP - 1, WARMUP, WARMUP + 1, 500, len(frame) - 2):
        prefix = model.context(frame.iloc[: cut + 1])
        assert np.array_equal(prefix.to_numpy(), context.iloc[: cut + 1].to_numpy(), equal_nan=True), cut


def test_missing_value_after_warmup_carries_the_predicted_prior(model, data, context):
    frame = data[0].copy()
    frame.iloc[600, frame.columns.get_loc("ret_1")] = np.nan
    frame.iloc[601, frame.columns.get_loc("rv_24")] = np.inf
    gapped = model.context(frame)
    prior = context.iloc[599][list(STATE_COLUMNS)].to_numpy() @ model.hmm.transmat_
    np.testing.assert_allclose(gapped.iloc[600][list(STATE_COLUMNS)], prior, rtol=1e-12)
    np.testing.assert_allclose(gapped.iloc[601][list(STATE_COLUMNS)], prior @ model.hmm.transmat_, rtol=1e-12)
    assert gapped.iloc[:600].equals(context.iloc[:600]) and np.isfinite(gapped.iloc[WARMUP:].to_numpy()).all()


# --- the fit --------------------------------------------------------------------------------------------

def test_state_order_is_stable_across_seeds(model, data):
    other = fit_regime_model(data[0], seed=1, config=FAST)
    for fitted in (model, other):
        rv_24 = fitted.hmm.means_[:, fitted.columns.index("rv_24")] * fitted.scale[2] + fitted.center[2]
        np.testing.assert_allclose(rv_24, VOL_LEVELS, atol=0.1)  # ascending, one state per true regime
    np.testing.assert_allclose(other.hmm.means_, model.hmm.means_, atol=1e-3)
    np.testing.assert_allclose(other.hmm.transmat_, model.hmm.transmat_, atol=1e-3)


def test_reordering_undoes_any_state_permutation(model):
    hmm, shuffle = model.hmm, np.array([2, 0, 3, 1])
    shuffled = regime._build_hmm("diag", hmm.startprob_[shuffle], hmm.transmat_[np.ix_(shuffle, shuffle)],
                                 hmm.means_[shuffle], hmm._covars_[shuffle])
    restored = regime._order_by_volatility(shuffled, model.columns)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        assert np.array_equal(getattr(restored, name), getattr(hmm, name)), name


def test_convergence_report(model, data):
    assert model.n_states == 4 and len(model.inits) == FAST.n_inits
    assert all(isinstance(r.converged, bool) and 1 <= r.n_iter <= FAST.n_iter for r in model.inits)
    kept = max((r for r in model.inits if r.error is None), key=lambda r: r.log_likelihood)
    assert model.log_likelihood == kept.log_likelihood and model.converged == kept.converged
    assert len({r.seed for r in model.inits}) == FAST.n_inits  # distinct derived restart seeds
    assert model.n_train_rows == len(data[0]) - WARMUP


def test_a_failing_restart_is_reported_and_skipped(data, monkeypatch):
    original_fit, calls = regime._FlooredGaussianHMM.fit, []

    def fit_failing_first(self, x):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("startprob_ must sum to 1 (got nan)")
        return original_fit(self, x)

    monkeypatch.setattr(regime._FlooredGaussianHMM, "fit", fit_failing_first)
    fitted = fit_regime_model(data[0], seed=0, config=RegimeConfig(n_inits=2, n_iter=10))
    assert fitted.inits[0].error == "startprob_ must sum to 1 (got nan)" and fitted.inits[0].log_likelihood is None
    assert fitted.log_likelihood == fitted.inits[1].log_likelihood


def test_all_restarts_failing_is_a_clear_error(data, monkeypatch):
    def fit_always_failing(self, x):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    monkeypatch.setattr(regime._FlooredGaussianHMM, "fit", fit_always_failing)
    with pytest.raises(DataError, match=r"all 2 HMM initialisations failed on 1170 rows .*not positive definite"):
        fit_regime_model(data[0], config=RegimeConfig(n_inits=2))


def test_constant_column_is_a_clear_error(data):
    frame = data[0].assign(rv_168=3.0)
    with pytest.raises(DataError, match=r"column 'rv_168' is constant .* remove it from regime.columns"):
        fit_regime_model(frame, config=FAST)


def test_too_few_rows_is_a_clear_error(data):
    with pytest.raises(DataError, match=r"only 100 training rows .* need at least 200 .* longer train slice"):
        fit_regime_model(data[0].iloc[: WARMUP + 100], config=FAST)


def test_missing_column_is_a_clear_error(data, model):
    with pytest.raises(DataError, match=r"regime fit: features lack column\(s\) vol_z_24"):
        fit_regime_model(data[0].drop(columns="vol_z_24"), config=FAST)
    with pytest.raises(DataError, match=r"regime context: features lack column\(s\) rv_24"):
        model.context(data[0].drop(columns="rv_24"))


def test_other_state_counts_are_refused_up_front(data):
    with pytest.raises(ConfigError, match=r"regime.n_states=3: .* exactly 5 columns .* use 4"):
        fit_regime_model(data[0], config=RegimeConfig(n_states=3))


# --- the artifact ---------------------------------------------------------------------------------------

def test_bytes_round_trip_reproduces_the_model(model, data, context):
    loaded = RegimeModel.from_bytes(model.to_bytes())
    assert np.array_equal(loaded.context(data[0]).to_numpy(), context.to_numpy(), equal_nan=True)
    assert (loaded.columns, loaded.inits, loaded.converged) == (model.columns, model.inits, model.converged)
    assert (loaded.log_likelihood, loaded.n_train_rows) == (model.log_likelihood, model.n_train_rows)


def test_corrupt_bytes_are_a_checkpoint_error(model):
    with pytest.raises(CheckpointError, match=r"cannot load regime model seg-3/regime\.npz: .* re-run the fit_hmm"):
        RegimeModel.from_bytes(model.to_bytes()[:100], source="seg-3/regime.npz")


# --- the bundled BTC/USDT data --------------------------------------------------------------------------

def test_real_features_context_is_causal_and_meaningful(bundled_ohlcv):
    """Fit on ~8000 bars of 2017-18, read out 2017-2023: exact truncation invariance, sensible states."""
    features = technical_features(bundled_ohlcv)  # (T, 50), NaN on the first WARMUP_BARS rows
    fitted = fit_regime_model(features.iloc[: WARMUP_BARS + 8000], seed=0, config=RegimeConfig(n_inits=2, n_iter=30))
    context = fitted.context(features)
    for cut in (WARMUP_BARS - 1, WARMUP_BARS, WARMUP_BARS + 1, WARMUP_BARS + 8000, 20_000):
        prefix = fitted.context(features.iloc[: cut + 1])
        assert np.array_equal(prefix.to_numpy(), context.iloc[: cut + 1].to_numpy(), equal_nan=True), cut
    assert context.iloc[:WARMUP_BARS].isna().all().all() and np.isfinite(context.iloc[WARMUP_BARS:].to_numpy()).all()
    # Out of sample: the stormiest state owns the COVID crash day, the calmest the quiet summer of 2023.
    assert context.loc["2020-03-13", "p_state_3"].mean() > 0.9
    assert context.loc["2023-07", "p_state_0"].mean() > 0.9
