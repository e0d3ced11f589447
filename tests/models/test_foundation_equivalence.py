"""CryptoMAE's own Transformer layers against torch's nn.TransformerEncoderLayer, which they replaced for speed.

The reference is a CryptoMAE whose encoder and decoder are torch's modules holding the same weights: the
implementation behind every checkpoint and cached pretraining made before the replacement.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from cryptorl.config import PROFILES
from cryptorl.models import MAEConfig, load_mae_checkpoint, save_mae
from cryptorl.models.foundation import CryptoMAE, EncoderLayer, random_bar_mask
from cryptorl.models.pretrain import make_optimizer, train_step

# Two layers exercise the encoder's copies; a small batch keeps each step a few milliseconds.
CONFIG = dataclasses.replace(PROFILES["smoke"].mae, n_layers=2, batch_size=16)
# The same arithmetic in float64 agrees to float64 rounding (measured: ~1e-15 relative); float32 results sit
# within float32 rounding of the float64 ones, measured below 1e-6 of each tensor's largest magnitude on the
# AVX2, default-capability, 1- and 2-thread kernels: bounds 100x above what any machine's kernels move.
CLOSE64 = {"rtol": 1e-10, "atol": 1e-12}
FLOAT32_BOUND = 1e-4


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


def forward_backward(layer: nn.Module, x: torch.Tensor, gradient: torch.Tensor) -> list[torch.Tensor]:
    """The layer's output, then the gradients of <output, gradient> for the input and every parameter."""
    x = x.detach().clone().requires_grad_()
    output = layer(x)
    return [output.detach(), *torch.autograd.grad(output, [x, *layer.parameters()], gradient)]


def scaled_error(found: torch.Tensor, truth: torch.Tensor) -> float:
    """The largest deviation of `found` from `truth`, in units of truth's largest magnitude."""
    return ((found.double() - truth).abs().max() / truth.abs().max()).item()


def test_layer_outputs_and_gradients_match_torch_in_training_and_inference():
    torch.manual_seed(0)
    ours = EncoderLayer(CONFIG)
    theirs = torch_layer(CONFIG)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, CONFIG.window, CONFIG.d_model)
    gradient = torch.randn(4, CONFIG.window, CONFIG.d_model)
    # The same arithmetic: in float64 both layers agree to float64 rounding, output and every gradient.
    truth = forward_backward(copy.deepcopy(theirs).double(), x.double(), gradient.double())
    for mine, reference in zip(forward_backward(copy.deepcopy(ours).double(), x.double(), gradient.double()), truth):
        torch.testing.assert_close(mine, reference, **CLOSE64)
    # Sound float32 numerics: each layer's float32 result is within float32 rounding of the float64 one.
    for layer in (ours, theirs):
        errors = [scaled_error(found, exact) for found, exact in zip(forward_backward(layer, x, gradient), truth)]
        assert max(errors) < FLOAT32_BOUND, errors
    with torch.no_grad():  # torch's inference fast path is another fused kernel, held to the same bound
        exact = copy.deepcopy(theirs).double().eval()(x.double())
        assert max(scaled_error(layer.eval()(x), exact) for layer in (ours, theirs)) < FLOAT32_BOUND


def test_pretraining_steps_match_torch_layers_and_the_per_parameter_adamw():
    # In float64, so that the comparison measures the arithmetic, not the machine's float32 kernels.
    torch.manual_seed(0)
    model = CryptoMAE(CONFIG).double().train()
    reference = torch_reference(model).double().train()
    optimizers = [make_optimizer(model, CONFIG),
                  torch.optim.AdamW(reference.parameters(), lr=CONFIG.lr, weight_decay=CONFIG.weight_decay)]
    series = torch.randn(200, CONFIG.input_dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    losses = []
    for step in range(6):
        batch_ends = torch.arange(CONFIG.window - 1 + step, 200, 8)[: CONFIG.batch_size]  # (B,)
        pair = []
        for network, optimizer in zip((model, reference), optimizers):
            torch.manual_seed(step)  # the same masks for both
            pair.append(train_step(network, optimizer, series, batch_ends, CONFIG))
        losses.append(pair)
    for ours, theirs in losses:
        torch.testing.assert_close(ours, theirs, **CLOSE64)
    # The trained functions agree; parameters need not: the key bias shifts every score of a query alike, so
    # its gradient is rounding noise that Adam's normalisation turns into lr-sized steps in both models.
    with torch.no_grad():
        torch.testing.assert_close(model.eval().encode(series[None, :CONFIG.window]),
                                   reference.eval().encode(series[None, :CONFIG.window]), **CLOSE64)


def test_a_checkpoint_of_torch_layers_loads_and_encodes_alike(tmp_path):
    torch.manual_seed(0)
    reference = torch_reference(CryptoMAE(CONFIG)).eval()
    path = save_mae(reference, str(tmp_path / "encoder.pt"))
    loaded = load_mae_checkpoint(path, expected=CONFIG).model
    x = torch.randn(3, CONFIG.window, CONFIG.input_dim)
    with torch.no_grad():
        exact = copy.deepcopy(reference).double().encode(x.double())
        assert scaled_error(loaded.encode(x), exact) < FLOAT32_BOUND


def test_mask_is_the_bars_of_lowest_noise_rank():
    # The definition the mask had before a single argsort and a scatter replaced two argsorts.
    noise = torch.rand(50, CONFIG.window, generator=torch.Generator().manual_seed(4))
    expected = noise.argsort(dim=1).argsort(dim=1) < CONFIG.n_masked
    assert torch.equal(random_bar_mask(50, CONFIG, generator=torch.Generator().manual_seed(4)), expected)
