"""CryptoMAE: config validation, shapes, masking semantics, and that a tiny model can learn."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cryptorl.config import PROFILES
from cryptorl.errors import ConfigError, DataError
from cryptorl.models.foundation import (CryptoMAE, MAEConfig, gather_windows, masked_mse, random_bar_mask,
                                        valid_window_ends)

SMOKE = PROFILES["smoke"].mae


@pytest.mark.parametrize("overrides, key", [
    ({"d_model": 30, "n_heads": 4}, "mae.d_model=30"),
    ({"n_heads": 0}, "mae.n_heads=0"),
    ({"n_layers": 0}, "mae.n_layers=0"),
    ({"mask_ratio": 0.0}, "mae.mask_ratio=0.0"),
    ({"mask_ratio": 1.0}, "mae.mask_ratio=1.0"),
    ({"dropout": 1.0}, "mae.dropout=1.0"),
    ({"lr": 0.0}, "mae.lr=0.0"),
    ({"patience": 0}, "mae.patience=0"),
])
def test_validate_names_the_key_and_the_fix(overrides, key):
    with pytest.raises(ConfigError, match=rf"^invalid config {key}: \S.+$"):
        dataclasses.replace(SMOKE, **overrides).validate()


def test_profiles_are_valid_and_defaults_are_the_seed():
    for config in (MAEConfig(), PROFILES["smoke"].mae, PROFILES["cpu"].mae):
        assert config.validate() is config
    seed = MAEConfig()
    assert (seed.d_model, seed.n_heads, seed.n_layers, seed.dim_feedforward, seed.window, seed.input_dim,
            seed.mask_ratio) == (256, 4, 2, 1024, 64, 50, 0.5)


def test_encode_and_reconstruct_shapes():
    model = CryptoMAE(SMOKE)
    x = torch.randn(3, 64, 50)
    assert model.encode(x).shape == (3, 64, SMOKE.d_model)
    assert model(x, random_bar_mask(3, SMOKE)).shape == (3, 64, 50)


def test_wrong_input_shape_is_a_data_error():
    with pytest.raises(DataError, match=r"shape \(2, 64, 55\), expected \(B, 64, 50\).*no HMM columns"):
        CryptoMAE(SMOKE).encode(torch.randn(2, 64, 55))


def test_mask_hides_exactly_the_configured_number_of_bars():
    mask = random_bar_mask(100, SMOKE, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (100, 64) and mask.dtype == torch.bool
    assert (mask.sum(dim=1) == 32).all()
    assert not torch.equal(mask[0], mask[1])  # a different pattern per window


def test_loss_ignores_unmasked_bars():
    target = torch.randn(4, 64, 50)
    mask = random_bar_mask(4, SMOKE, generator=torch.Generator().manual_seed(1))
    prediction = torch.randn(4, 64, 50)
    changed = torch.where(mask.unsqueeze(-1), prediction, prediction + 100.0)  # only visible bars change
    assert masked_mse(changed, target, mask) == masked_mse(prediction, target, mask)
    assert masked_mse(prediction + 1.0, target, mask) != masked_mse(prediction, target, mask)


def test_masked_bars_do_not_leak_into_the_reconstruction():
    model = CryptoMAE(SMOKE).eval()
    x = torch.randn(2, 64, 50)
    mask = random_bar_mask(2, SMOKE, generator=torch.Generator().manual_seed(2))
    tampered = torch.where(mask.unsqueeze(-1), torch.randn_like(x) * 50, x)  # masked bars rewritten
    with torch.no_grad():
        assert torch.equal(model(x, mask), model(tampered, mask))


def test_tiny_model_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = CryptoMAE(SMOKE)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(2, 64, 50)
    mask = random_bar_mask(2, SMOKE, generator=torch.Generator().manual_seed(3))
    first = model.loss(x, mask).item()
    for _ in range(200):
        loss = model.loss(x, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() <= 0.1 * first


def test_valid_window_ends_skip_windows_touching_nan():
    values = np.ones((10, 2))
    values[5, 1] = np.nan
    # Windows of 3 bars: ends 2..9; those containing row 5 (ends 5, 6, 7) are excluded.
    assert valid_window_ends(values, 3).tolist() == [2, 3, 4, 8, 9]
    assert valid_window_ends(values[:2], 3).tolist() == []


def test_gather_windows_end_at_each_bar():
    series = torch.arange(20.0).reshape(10, 2)  # row t holds (2t, 2t+1)
    windows = gather_windows(series, torch.tensor([2, 9]), 3)
    assert windows.shape == (2, 3, 2)
    assert windows[:, :, 0].tolist() == [[0.0, 2.0, 4.0], [14.0, 16.0, 18.0]]
