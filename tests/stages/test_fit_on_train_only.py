"""Fit on train only, at stage level: bars outside a segment's train slice never move a fitted parameter.

The real stages run on the bundled bars up to 2018-10 (segment 0 of the smoke profile), once as they are and
once with only some non-train bars perturbed. The scaler's parameters (split `meta.json`), the HMM's stored
model and the MAE's weights must stay identical bit for bit; the scaled features of the perturbed bars must
change (so the perturbation did reach the pipeline). A scaler, HMM or MAE fitted on the whole span fails here.

The MAE is early-stopped on the eval slice: by design, eval bars choose *which* epoch is kept. With one epoch
there is nothing to choose, so any move of its weights would be eval bars leaking into the gradient steps.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile
from cryptorl.models import load_mae_checkpoint
from cryptorl.storage import ArtifactStore

SMOKE = get_profile("smoke")
PROFILE = dataclasses.replace(SMOKE, regime=dataclasses.replace(SMOKE.regime, n_inits=1),
                              mae=dataclasses.replace(SMOKE.mae, max_epochs=1, steps_per_epoch=5))
SEGMENT = 0


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What one run of split → fit_hmm → pretrain_mae fitted, and the split it fitted on."""

    segment: stages.SegmentData
    hmm_model: bytes  # the stored model.bin: parameters + fit metadata, pickle-free
    mae_weights: dict[str, torch.Tensor]


def run_stages(store: ArtifactStore, data_path: str) -> Fitted:
    split = stages.split_segment(store, stages.source_ref(data_path), SEGMENT, PROFILE.data, PROFILE.features,
                                 PROFILE.wfo)
    regime = stages.fit_hmm(store, split, PROFILE.regime, PROFILE.seed)
    mae = stages.pretrain_mae(store, split, PROFILE.mae, PROFILE.seed)  # seeded inside (cryptorl.seeding)
    weights = load_mae_checkpoint(mae.checkpoint.uri, expected=PROFILE.mae).model.state_dict()
    return Fitted(stages.load_segment(store, split), store.read_bytes(regime.model), weights)


def perturb_bars(raw: pd.DataFrame, rows: pd.Series, seed: int) -> pd.DataFrame:
    """Scale each chosen bar's OHLC by one random factor (so high >= low holds) and its volume by another."""
    perturbed = raw.copy()
    rng = np.random.default_rng(seed)
    n = int(rows.sum())
    price_factor = np.exp(rng.normal(0.0, 0.03, n))  # (n,)
    for column in ("open", "high", "low", "close"):
        perturbed.loc[rows, column] = raw.loc[rows, column].to_numpy() * price_factor
    perturbed.loc[rows, "volume"] = raw.loc[rows, "volume"].to_numpy() * np.exp(rng.normal(0.0, 0.5, n))
    return perturbed


def slice_bounds(segment: stages.SegmentData, name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    info = segment.meta["slices"][name]
    return pd.Timestamp(info["first"]), pd.Timestamp(info["last"])


def eval_and_test_bars(raw: pd.DataFrame, segment: stages.SegmentData) -> pd.Series:
    chosen = pd.Series(False, index=raw.index)
    for name in ("eval", "test"):
        first, last = slice_bounds(segment, name)
        chosen |= raw["timestamp"].between(first, last)
    return chosen


def bars_between_and_after_slices(raw: pd.DataFrame, segment: stages.SegmentData) -> pd.Series:
    """The purge gaps (train→eval, eval→test) and every bar after the test slice (later segments' bars)."""
    (_, train_last), (eval_first, eval_last), (test_first, test_last) = (
        slice_bounds(segment, name) for name in ("train", "eval", "test"))
    stamps = raw["timestamp"]
    return (((stamps > train_last) & (stamps < eval_first)) | ((stamps > eval_last) & (stamps < test_first))
            | (stamps > test_last))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Fitted]:
    tmp = tmp_path_factory.mktemp("fit-on-train")
    store = ArtifactStore(f"file://{tmp}/store")
    raw = pd.read_parquet(DEFAULT_DATA_PATH)
    raw = raw[raw["timestamp"] < pd.Timestamp("2018-10-10", tz="UTC")].reset_index(drop=True)
    original = tmp / "original.parquet"
    raw.to_parquet(original, index=False)
    fitted = {"original": run_stages(store, str(original))}
    choices: dict[str, Callable[[pd.DataFrame, stages.SegmentData], pd.Series]] = {
        "eval_and_test": eval_and_test_bars, "between_and_after": bars_between_and_after_slices}
    for seed, (name, choose) in enumerate(choices.items()):
        rows = choose(raw, fitted["original"].segment)
        assert rows.sum() > 100, f"{name}: too few bars perturbed ({rows.sum()})"
        path = tmp / f"{name}.parquet"
        perturb_bars(raw, rows, seed).to_parquet(path, index=False)
        fitted[name] = run_stages(store, str(path))
    return fitted


PERTURBATIONS = ("eval_and_test", "between_and_after")


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_scaler_parameters_do_not_move(runs, perturbation):
    original, perturbed = runs["original"].segment, runs[perturbation].segment
    assert perturbed.slices == original.slices
    assert perturbed.meta["scaler"] == original.meta["scaler"]
    assert perturbed.meta["scaler_fingerprint"] == original.meta["scaler_fingerprint"]


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_hmm_parameters_do_not_move(runs, perturbation):
    assert runs[perturbation].hmm_model == runs["original"].hmm_model


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_mae_weights_do_not_move(runs, perturbation):
    original, perturbed = runs["original"].mae_weights, runs[perturbation].mae_weights
    assert original.keys() == perturbed.keys()
    moved = [name for name in original if not torch.equal(original[name], perturbed[name])]
    assert moved == []


def test_train_features_stay_and_perturbed_features_move(runs):
    """The perturbation reaches the split: eval/test features change, train features do not."""
    original, perturbed = runs["original"].segment, runs["eval_and_test"].segment
    columns = original.feature_names
    pd.testing.assert_frame_equal(perturbed.slice_frame("train")[columns], original.slice_frame("train")[columns],
                                  check_exact=True)
    for name in ("eval", "test"):
        assert not np.array_equal(perturbed.slice_frame(name)[columns].to_numpy(),
                                  original.slice_frame(name)[columns].to_numpy())
