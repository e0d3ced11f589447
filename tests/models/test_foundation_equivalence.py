"""CryptoMAE's own Transformer layers against torch's nn.TransformerEncoderLayer, which they replaced for speed.

The reference is a CryptoMAE whose encoder and decoder are torch's modules holding the same weights: the
implementation behind every checkpoint and cached pretraining made before the replacement.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from cryptorl.models import MAEConfig, load_mae_checkpoint, save_mae
from cryptorl.models.foundation import CryptoMAE, EncoderLayer, random_bar_mask
from cryptorl.models.pretrain import make_optimizer, train_step

# Two layers exercise the encoder's copies; a small batch keeps each step a few milliseconds.
CONFIG = dataclasses.replace(MAEConfig.smoke(), n_layers=2, batch_size=16)
CLOSE = {"rtol": 1e-5, "atol": 1e-6}


def torch_layer(config: MAEConfig) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(config.d_model, config.n_heads, config.dim_feedforward, config.dropout,
                                      activation="gelu", batch_first=True, norm_first=True)


def torch_reference(model: CryptoMAE) -> CryptoMAE:
    """A copy of `model` running torch's layers with its weights (a strict load: the same state_dict keys)."""
    c = model.config
    reference = copy.deepcopy(model)
    reference.encoder = nn.TransformerEncoder(torch_layer(c), c.n_layers, norm=nn.LayerNorm(c.d_model),
                                              enable_nested_tensor=False)
    reference.decoder = torch_layer(c)
    reference.load_state_dict(model.state_dict())
    return reference


def test_a_seed_gives_torch_layers_names_and_initial_weights():
    config = dataclasses.replace(CONFIG, dropout=0.1)
    torch.manual_seed(0)
    ours = EncoderLayer(config).state_dict()
    torch.manual_seed(0)
    theirs = torch_layer(config).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_layer_outputs_and_gradients_match_torch_in_training_and_inference():
    torch.manual_seed(0)
    ours = EncoderLayer(CONFIG)
    theirs = torch_layer(CONFIG)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, CONFIG.window, CONFIG.d_model, requires_grad=True)
    output = [layer(x) for layer in (ours, theirs)]
    gradient = torch.randn_like(output[0])
    grads = [torch.autograd.grad(out, [x, *layer.parameters()], gradient) for out, layer in zip(output, (ours, theirs))]
    torch.testing.assert_close(output[0], output[1], **CLOSE)
    for mine, reference in zip(*grads):
        torch.testing.assert_close(mine, reference, **CLOSE)
    with torch.no_grad():  # torch's inference fast path is another fused kernel: a looser bound
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-5, atol=1e-5)


def test_pretraining_steps_match_torch_layers_and_the_per_parameter_adamw():
    torch.manual_seed(0)
    model = CryptoMAE(CONFIG).train()
    reference = torch_reference(model).train()
    optimizers = [make_optimizer(model, CONFIG),
                  torch.optim.AdamW(reference.parameters(), lr=CONFIG.lr, weight_decay=CONFIG.weight_decay)]
    series = torch.randn(200, CONFIG.input_dim, generator=torch.Generator().manual_seed(1))  # (T, F)
    losses = []
    for step in range(6):
        batch_ends = torch.arange(CONFIG.window - 1 + step, 200, 8)[: CONFIG.batch_size]  # (B,)
        pair = []
        for network, optimizer in zip((model, reference), optimizers):
            torch.manual_seed(step)  # the same masks for both
            pair.append(train_step(network, optimizer, series, batch_ends, CONFIG))
        losses.append(pair)
    for ours, theirs in losses:
        torch.testing.assert_close(ours, theirs, **CLOSE)
    # The trained functions agree; parameters need not: the key bias shifts every score of a query alike, so
    # its gradient is rounding noise that Adam's normalisation turns into lr-sized steps in both models.
    with torch.no_grad():
        torch.testing.assert_close(model.eval().encode(series[None, :CONFIG.window]),
                                   reference.eval().encode(series[None, :CONFIG.window]), rtol=1e-4, atol=1e-5)


def test_a_checkpoint_of_torch_layers_loads_and_encodes_alike(tmp_path):
    torch.manual_seed(0)
    reference = torch_reference(CryptoMAE(CONFIG)).eval()
    path = save_mae(reference, str(tmp_path / "encoder.pt"))
    loaded = load_mae_checkpoint(path, expected=CONFIG).model
    x = torch.randn(3, CONFIG.window, CONFIG.input_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), reference.encode(x), rtol=1e-5, atol=1e-5)


def test_mask_is_the_bars_of_lowest_noise_rank():
    # The definition the mask had before a single argsort and a scatter replaced two argsorts.
    noise = torch.rand(50, CONFIG.window, generator=torch.Generator().manual_seed(4))
    expected = noise.argsort(dim=1).argsort(dim=1) < CONFIG.n_masked
    assert torch.equal(random_bar_mask(50, CONFIG, generator=torch.Generator().manual_seed(4)), expected)
