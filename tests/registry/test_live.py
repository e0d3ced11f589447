"""cryptorl/champion/live.py on real tiny models: the audit's numbers reproduced, no look-ahead, one-line refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from cryptorl.config import SignalConfig
from cryptorl.errors import ConfigError, DataError, ModelDimensionsError, StorageError
from cryptorl.champion.live import compute_signal, load_model, model_path, signal_lines, slice_metrics
from cryptorl.champion.registry import ChampionRecord, Member, create_version
from cryptorl.storage import ArtifactRef, ArtifactStore


@pytest.fixture(scope="module")
def challenger(trained):
    return trained.real[1, 0]


@pytest.fixture(scope="module")
def model(trained, challenger):
    return load_model(ArtifactStore(trained.store_url), challenger.refs, trained.profile, "segment 1 seed 0")


@pytest.fixture(scope="module")
def report(trained, challenger):
    return ArtifactStore(trained.store_url).read_json(challenger.audit.report)


def test_re_scoring_a_model_on_its_own_test_slice_gives_its_audit_numbers(trained, model, report):
    first, last = (pd.Timestamp(report["test_slice"][end]) for end in ("first", "last"))
    metrics = slice_metrics([model], trained.ohlcv, first, last)
    audited = report["policies"]["trained"]["1"]
    assert metrics.n_bars == audited["n_bars"] == 119
    # The audit asked the actor for 4 w_costs at once, this for 1: the same numbers up to float rounding.
    for name in ("sharpe", "turnover", "net_log_return", "exposure"):
        assert getattr(metrics, name) == pytest.approx(audited[name], rel=1e-4, abs=1e-9), name


def test_the_regime_context_is_the_stored_forward_filter_bit_for_bit(trained, model, challenger, report):
    path = model_path(model, trained.ohlcv, start=pd.Timestamp(report["test_slice"]["first"]))
    stored = ArtifactStore(trained.store_url).read_frame(challenger.regime.context)
    common = path.context.index.intersection(stored.index)
    assert len(common) == 120  # the whole test slice; the later bars are new to the model
    pd.testing.assert_frame_equal(path.context.loc[common], stored.loc[common], check_exact=True)
    assert path.timestamps[-1] == trained.ohlcv.index[-1] and np.all(np.abs(path.positions) <= 1)


def test_the_position_at_a_bar_uses_bars_up_to_it_only(trained, model):
    """Truncation invariance: the path on bars[:t+1] is the path on all bars, cut at t, to the bit."""
    index = trained.ohlcv.index
    start = index[-40]
    full = model_path(model, trained.ohlcv, start=start)
    for kept in (1, 17, 39):  # decisions kept: up to start + kept - 1
        cut = model_path(model, trained.ohlcv.loc[:index[-41 + kept]], start=start)
        np.testing.assert_array_equal(cut.positions, full.positions[:kept])
        np.testing.assert_array_equal(cut.held, full.held[:kept])
        pd.testing.assert_frame_equal(cut.context, full.context.iloc[:kept], check_exact=True)


def test_a_given_held_position_replaces_the_path_s_only_before_the_last_decision(trained, model):
    start = trained.ohlcv.index[-20]
    own = model_path(model, trained.ohlcv, start=start)
    given = model_path(model, trained.ohlcv, start=start, held=-1.0)
    assert own.held[0] == 0.0 and own.held[-1] == own.positions[-2]  # flat at the start, then its own targets
    assert given.held[-1] == -1.0 and given.positions[-1] != own.positions[-1]  # the agent reads the position
    np.testing.assert_array_equal(given.positions[:-1], own.positions[:-1])
    with pytest.raises(ConfigError, match=r"held position 1.5 is outside \[-1, 1\]"):
        model_path(model, trained.ohlcv, held=1.5)


def test_too_few_bars_for_the_warm_up_and_the_window_is_one_line(trained, model):
    with pytest.raises(DataError, match=r"^short.parquet: 263 bars is too few: the features need 200 warm-up bars "
                                        r"and the agent a 64-bar window .* at least 264 bars; pass more history$"):
        model_path(model, trained.ohlcv.iloc[:263], source="short.parquet")


def test_a_checkpoint_that_does_not_match_its_configs_names_it_with_expected_and_found(trained, challenger):
    store = ArtifactStore(trained.store_url)
    wider = dataclasses.replace(trained.profile, mae=dataclasses.replace(trained.profile.mae, d_model=64))
    with pytest.raises(ModelDimensionsError, match=r"^m: checkpoint file://\S+/checkpoint.pt has mae.d_model=32 "
                                                   r"\(expected 64\): the checkpoint does not match"):
        load_model(store, challenger.refs, wider, "m")
    deeper = dataclasses.replace(trained.profile,
                                 train=dataclasses.replace(trained.profile.train, net_arch=(64, 64, 64)))
    with pytest.raises(ModelDimensionsError, match=r"checkpoint file://\S+/model.zip has train.net_arch=\(64, 64\) "
                                                   r"\(expected \(64, 64, 64\)\)"):
        load_model(store, challenger.refs, deeper, "m")


def test_an_artifact_that_changed_since_it_was_registered_is_refused(trained, challenger):
    refs = dataclasses.replace(challenger.refs, tqc_model=ArtifactRef(challenger.refs.tqc_model.uri, "0" * 64))
    with pytest.raises(StorageError, match=r"model.zip changed since it was written \(sha256 mismatch\)"):
        load_model(ArtifactStore(trained.store_url), refs, trained.profile, "m")


def test_an_ensemble_champion_signals_the_mean_of_its_members_positions(trained, tmp_path):
    store_url = f"file://{tmp_path}"
    challengers = trained.challengers(store_url)
    record = ChampionRecord(
        version=1, dataset="btcusdt-1h", promoted_at=pd.Timestamp("2026-01-05", tz="UTC"), decision="d1", segment=1,
        profile=dataclasses.replace(trained.profile, seed=0), verdict="healthy", test_sharpe=1.0,
        test_first=pd.Timestamp("2018-08-11 08:00", tz="UTC"), test_last=pd.Timestamp("2018-08-16 07:00", tz="UTC"),
        data=challengers[1, 0].data, members=tuple(Member(seed, challengers[1, seed].refs) for seed in (0, 1)),
        replaces=None)
    store = ArtifactStore(store_url)
    assert create_version(store, record)
    signal = compute_signal(store, record.data.uri, config=SignalConfig(float("inf"), run_in_bars=48))
    paths = [model_path(load_model(store, challengers[1, seed].refs, dataclasses.replace(trained.profile, seed=seed),
                                   f"seed {seed}"), trained.ohlcv, start=signal.path_start) for seed in (0, 1)]
    assert signal.seeds == (0, 1) and signal.position == pytest.approx(np.mean([p.positions[-1] for p in paths]))
    assert signal.held == pytest.approx(np.mean([p.held[-1] for p in paths]))
    assert "segment 1, seed ensemble 0, 1, profile smoke" in signal_lines(signal)[3]
