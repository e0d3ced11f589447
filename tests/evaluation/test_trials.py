"""Trial records: mergeable moments, idempotent recording, pooling per (configuration, seed)."""

import dataclasses

import numpy as np
import pytest

from cryptorl.audit.metrics import sharpe_ratio
from cryptorl.evaluation.trials import (Moments, Provenance, Trial, load_trials, record_trial, trial_sharpes,
                                        trial_statistics)
from cryptorl.storage import ArtifactRef, ArtifactStore

PROVENANCE = Provenance(ArtifactRef("s3://bucket/data/BTCUSDT-1h.parquet", "d" * 64), "c" * 64, "smoke")


def trial(key: str, net: np.ndarray, seed: int = 0, segment: int = 0, configuration: str = "c" * 64) -> Trial:
    provenance = dataclasses.replace(PROVENANCE, configuration=configuration)
    return Trial.of(key, provenance, seed, segment, net, 1.0, 0.001, 8760.0, f"memory://r/{key}.json")


def test_moments_by_hand_and_merged_like_the_concatenated_series():
    # [0.03, 0, 0, -0.01]: mean 0.005, Σd² = 9e-4, Σd³ = 12e-6, Σd⁴ = 442.5e-9 (deviations 0.025, -0.005 x2, -0.015)
    moments = Moments.of(np.array([0.03, 0.0, 0.0, -0.01]))
    assert (moments.n, moments.mean) == (4, pytest.approx(0.005))
    assert (moments.m2, moments.m3, moments.m4) == (pytest.approx(9e-4), pytest.approx(12e-6), pytest.approx(442.5e-9))
    assert moments.skew == pytest.approx(0.8888889) and moments.kurtosis == pytest.approx(2.1851852)
    rng = np.random.default_rng(0)
    a, b = rng.standard_t(4, 700) * 0.01, rng.normal(0.002, 0.02, 300)
    merged, whole = Moments.of(a).merge(Moments.of(b)), Moments.of(np.concatenate([a, b]))
    for field in ("n", "mean", "m2", "m3", "m4"):
        assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-9)
    assert merged.sharpe == pytest.approx(sharpe_ratio(np.concatenate([a, b])), rel=1e-9)
    assert Moments.of(np.zeros(5)).sharpe == 0.0 == Moments.of(np.array([])).merge(Moments.of(np.zeros(1))).sharpe


def test_a_trial_is_filed_under_its_dataset_and_recorded_once():
    store = ArtifactStore("memory://trials-idempotence")
    first = record_trial(store, trial("k1", np.array([0.01, -0.005, 0.002])))
    assert first.uri == "memory://trials-idempotence/trials/btcusdt-1h/k1.json"
    again = record_trial(store, trial("k1", np.array([0.01, -0.005, 0.002])))  # the same audit, rerun later
    assert again == first  # the first record (and its time) is kept
    [loaded] = load_trials(ArtifactStore("memory://trials-idempotence/trials/btcusdt-1h"))
    assert loaded.key == "k1" and loaded.seed == 0 and loaded.data_sha256 == "d" * 64 and loaded.profile == "smoke"
    assert loaded.moments == Moments.of(np.array([0.01, -0.005, 0.002]))
    assert store.read_json("trials/btcusdt-1h/k1.json")["sharpe_annualized"] == pytest.approx(
        loaded.sharpe * np.sqrt(8760))


def test_a_trial_is_a_configuration_and_seed_pooled_over_its_segments():
    rng = np.random.default_rng(1)
    seg0, seg1, stale = rng.normal(0.001, 0.01, 200), rng.normal(-0.001, 0.01, 200), rng.normal(0.01, 0.01, 200)
    trials = [trial("a0-old", stale, segment=0), trial("a0", seg0, segment=0), trial("a1", seg1, segment=1),
              trial("b0", seg0, seed=1), trial("c0", seg1, configuration="e" * 64)]
    sharpes = trial_sharpes(trials)
    assert set(sharpes) == {("c" * 64, 0), ("c" * 64, 1), ("e" * 64, 0)}
    # the latest record of segment 0 replaces the older one (e.g. after the data grew)
    assert sharpes[("c" * 64, 0)] == pytest.approx(sharpe_ratio(np.concatenate([seg0, seg1])))
    n_trials, variance = trial_statistics(trials)
    assert n_trials == 3 and variance == pytest.approx(np.var(list(sharpes.values()), ddof=1))
    assert trial_statistics(trials[:1]) == (1, 0.0)


def test_the_configuration_fingerprint_ignores_the_seed_and_the_name_not_a_config():
    from cryptorl import stages
    from cryptorl.config import get_profile, with_overrides

    smoke = get_profile("smoke")
    fingerprint = stages.configuration_fingerprint(smoke)
    assert stages.configuration_fingerprint(dataclasses.replace(smoke, seed=7, name="renamed")) == fingerprint
    assert stages.configuration_fingerprint(with_overrides(smoke, {"train.gamma": "0.9"})) != fingerprint
    provenance = stages.provenance(ArtifactRef("/data/ETHUSDT-1h.csv.gz", "e" * 64), smoke)
    assert (provenance.dataset, provenance.configuration, provenance.profile) == ("ethusdt-1h", fingerprint, "smoke")
