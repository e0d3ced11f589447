"""CryptoMAE checkpoints: round trips, dimension checks that name every mismatch, bad files."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cryptorl.config import PROFILES
from cryptorl.errors import CheckpointError, ModelDimensionsError
from cryptorl.models import CryptoMAE, MAEConfig, load_mae, load_mae_checkpoint, save_mae

SMOKE = PROFILES["smoke"].mae


@pytest.fixture()
def saved(tmp_path) -> tuple[CryptoMAE, str]:
    torch.manual_seed(0)
    model = CryptoMAE(SMOKE).eval()
    path = str(tmp_path / "mae" / "encoder.pt")  # the folder does not exist yet
    save_mae(model, path, columns=[f"f{i}" for i in range(50)], scaler_fingerprint="abc123")
    return model, path


def test_round_trip_gives_the_same_outputs_and_metadata(saved):
    model, path = saved
    loaded = load_mae_checkpoint(path, expected=SMOKE)
    x = torch.randn(2, 64, 50)
    with torch.no_grad():
        assert torch.equal(loaded.model.encode(x), model.encode(x))
    assert loaded.config == SMOKE
    assert loaded.columns == [f"f{i}" for i in range(50)] and loaded.scaler_fingerprint == "abc123"
    assert not loaded.model.training


def test_save_leaves_no_temporary_file(saved, tmp_path):
    assert [p.name for p in (tmp_path / "mae").iterdir()] == ["encoder.pt"]


def test_round_trip_through_an_fsspec_url():
    model = CryptoMAE(SMOKE).eval()
    url = "memory://checkpoints/test-round-trip/encoder.pt"
    save_mae(model, url)
    x = torch.randn(1, 64, 50)
    with torch.no_grad():
        assert torch.equal(load_mae(url).encode(x), model.encode(x))
    assert load_mae_checkpoint(url).columns is None


MISMATCHES = [("d_model", 64), ("n_heads", 4), ("n_layers", 2), ("dim_feedforward", 128), ("input_dim", 40),
              ("window", 32)]


@pytest.mark.parametrize("field, expected_value", MISMATCHES)
def test_each_mismatched_dimension_is_named_with_expected_and_found(saved, field, expected_value):
    _, path = saved
    expected = dataclasses.replace(SMOKE, **{field: expected_value})
    found_value = getattr(SMOKE, field)
    with pytest.raises(ModelDimensionsError,
                       match=rf"checkpoint .*encoder\.pt has {field}={found_value} \(expected {expected_value}\): "
                             rf"re-run pretrain_mae with --clean .* or set mae\.{field}={found_value}"):
        load_mae(path, expected=expected)


def test_several_mismatches_are_all_named(saved):
    _, path = saved
    with pytest.raises(ModelDimensionsError, match=r"d_model=32 \(expected 256\), n_heads=2 \(expected 4\), "
                                                   r"n_layers=1 \(expected 2\), dim_feedforward=64 \(expected 1024\)"):
        load_mae(path, expected=MAEConfig())


def test_training_fields_do_not_count_as_a_mismatch(saved):
    _, path = saved
    assert isinstance(load_mae(path, expected=dataclasses.replace(SMOKE, lr=0.5, mask_ratio=0.25)), CryptoMAE)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint .*nowhere\.pt not found: run pretrain_mae first"):
        load_mae(str(tmp_path / "nowhere.pt"))


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"checkpoint .*corrupt\.pt is corrupt or truncated .*--clean$"):
        load_mae(str(path))


def test_truncated_file(saved, tmp_path):
    _, path = saved
    truncated = tmp_path / "truncated.pt"
    data = open(path, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint .*truncated\.pt is corrupt or truncated"):
        load_mae(str(truncated))


def test_wrong_format(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "something-else", "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=r"other\.pt is not a CryptoMAE checkpoint \(format 'something-else'"):
        load_mae(str(path))


def test_weights_that_do_not_fit_the_stored_config(tmp_path):
    save_mae(CryptoMAE(SMOKE), str(tmp_path / "good.pt"))
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    payload["state_dict"].pop("mask_token")
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt has weights that do not fit its config .*mask_token"):
        load_mae(str(tmp_path / "bad.pt"))
