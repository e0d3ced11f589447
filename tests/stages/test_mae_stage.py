"""The pretrain_mae stage on the bundled data: it learns, it stores a checkpoint that validates on load."""

import dataclasses

import pytest

from cryptorl import stages
from cryptorl.config import DEFAULT_DATA_PATH, get_profile
from cryptorl.errors import ModelDimensionsError
from cryptorl.storage import ArtifactStore

PROFILE = get_profile("smoke")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    store = ArtifactStore(f"file://{tmp_path_factory.mktemp('store')}")
    split = stages.split_segment(store, stages.source_ref(str(DEFAULT_DATA_PATH)), 0, PROFILE.data,
                                 PROFILE.features, PROFILE.wfo)
    return store, split, stages.pretrain_mae(store, split, PROFILE.mae, PROFILE.seed)


def test_pretrained_encoder_beats_the_naive_baseline_on_eval(stored):
    store, _, mae = stored
    history = store.read_json(mae.history)
    assert history["best_eval_loss"] < 0.8 * history["baseline_eval_loss"]
    assert len(history["history"]) == history["epochs_run"] >= 1
    assert any("events.out.tfevents" in key for key in store.list(store.key_of(mae.tensorboard)))


def test_checkpoint_carries_columns_and_scaler_identity(stored):
    store, split, mae = stored
    from cryptorl.models import load_mae_checkpoint

    checkpoint = load_mae_checkpoint(mae.checkpoint.uri, expected=PROFILE.mae)
    meta = store.read_json(split.meta)
    assert checkpoint.columns == meta["feature_names"]
    assert checkpoint.scaler_fingerprint == meta["scaler_fingerprint"]


def test_loading_with_other_dimensions_names_checkpoint_and_fix(stored):
    store, _, mae = stored
    wrong = dataclasses.replace(PROFILE.mae, d_model=64)
    with pytest.raises(ModelDimensionsError, match=r"checkpoint.pt has d_model=32 \(expected 64\): re-run pretrain_mae with --clean.*mae.d_model=32"):
        stages.load_segment_encoder(mae, wrong)


def test_same_seed_gives_the_same_losses_and_weights(stored):
    store, split, mae = stored
    first_history = store.read_json(mae.history)["history"]
    again = stages.pretrain_mae(store, split, PROFILE.mae, PROFILE.seed)
    assert store.read_json(again.history)["history"] == first_history
    assert again.checkpoint == mae.checkpoint  # bit-identical weights: same uri, same sha256
