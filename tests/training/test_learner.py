"""LeanTQC does sb3-contrib TQC's update, number for number, without the work nothing reads."""

import dataclasses

import pytest
import torch
from sb3_contrib import TQC
from sb3_contrib.common.utils import quantile_huber_loss as sb3_quantile_huber_loss

from cryptorl.config import get_profile
from cryptorl.envs import MarketData
from cryptorl.models import CryptoMAE, attach_encoder_cache
from cryptorl.seeding import seed_everything
from cryptorl.training.learner import LeanTQC, detached_parameters, quantile_huber_loss
from cryptorl.training.tqc import build_tqc, encoder_cache_for, make_env

PROFILE = get_profile("smoke")
MARKET = MarketData.random(900, seed=1).with_slice(100, 900)
UPDATES = 12


def _learner(learner: type[TQC], fused_optimizer: bool = False) -> TQC:
    """The smoke profile's model on a small random market, its replay buffer filled by the same rollout."""
    seed_everything(0)
    # No smoothness term: sb3-contrib's TQC, the reference here, has none (tests/training/test_tqc.py tests
    # LeanTQC's).
    config = dataclasses.replace(PROFILE.train, learning_starts=PROFILE.train.batch_size, device="cpu",
                                 fused_optimizer=fused_optimizer, smoothness=0.0)
    encoder = CryptoMAE(PROFILE.mae)
    env = make_env(MARKET, config, PROFILE.env, config.n_envs, seed=0, device=torch.device("cpu"))
    model = build_tqc(env, encoder, config, seed=0, tensorboard_dir=None, learner=learner)
    attach_encoder_cache(model.policy, encoder_cache_for(encoder, MARKET, torch.device("cpu")))
    model.learn(total_timesteps=config.batch_size + 2 * config.n_envs)
    return model


def _updated(model: TQC) -> TQC:
    seed_everything(7)  # both learners draw the same batches and actions
    model.train(UPDATES, PROFILE.train.batch_size)
    return model


def _trained_parameters(model: TQC) -> dict[str, torch.Tensor]:
    """Every parameter an update changes (the frozen encoder copies are not trained)."""
    named = {f"policy.{name}": p for name, p in model.policy.named_parameters()
             if p.requires_grad and not name.startswith("critic_target.")}
    critic_names = [name for name, p in model.critic.named_parameters() if p.requires_grad]
    target = dict(model.critic_target.named_parameters())
    named.update({f"target.{name}": target[name] for name in critic_names})
    return {**named, "log_ent_coef": model.log_ent_coef}


def test_lean_tqc_trains_bit_for_bit_the_parameters_tqc_trains():
    stock, lean = _updated(_learner(TQC)), _updated(_learner(LeanTQC))
    expected, found = _trained_parameters(stock), _trained_parameters(lean)
    assert expected.keys() == found.keys() and len(expected) > 20
    unequal = [name for name in expected if not torch.equal(expected[name], found[name])]
    assert unequal == []
    assert lean._n_updates == stock._n_updates
    assert not any(p.requires_grad for p in lean.critic_target.parameters())  # no graph through the TD target
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef", "train/ent_coef_loss"):
        assert lean.logger.name_to_value[key] == pytest.approx(stock.logger.name_to_value[key], rel=1e-12)


def test_fused_adam_stays_within_rounding_of_per_op_adam():
    """Fused Adam rounds differently; the trained weights must still agree far below the size of the updates."""
    start = _trained_parameters(_learner(LeanTQC))
    plain, fused = (_trained_parameters(_updated(_learner(LeanTQC, fused_optimizer=flag))) for flag in (False, True))
    for name in start:
        moved = (plain[name] - start[name]).abs().max().item()
        gap = (plain[name] - fused[name]).abs().max().item()
        assert gap <= 0.05 * moved + 1e-6, f"{name}: fused differs by {gap:.2e}, the updates moved it {moved:.2e}"


def test_the_actor_loss_sends_no_gradient_into_the_critic():
    model = _learner(LeanTQC)
    trainable_before = [name for name, p in model.critic.named_parameters() if p.requires_grad]
    data = model.replay_buffer.sample(PROFILE.train.batch_size)
    actions_pi, log_prob = model.actor.action_log_prob(data.observations)
    model.critic.optimizer.zero_grad()
    model._actor_step(data, actions_pi, log_prob.reshape(-1, 1), torch.tensor(0.1))
    assert all(p.grad is None for p in model.critic.parameters())
    assert all(p.grad is not None for p in model.actor.parameters() if p.requires_grad)
    assert [name for name, p in model.critic.named_parameters() if p.requires_grad] == trainable_before


def test_detached_parameters_pass_gradients_to_the_inputs_only():
    layer = torch.nn.Linear(3, 2)
    inputs = torch.randn(4, 3, requires_grad=True)
    torch.func.functional_call(layer, detached_parameters(layer), (inputs,)).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is None and inputs.grad is not None
    assert torch.equal(inputs.grad, layer.weight.sum(0).expand(4, 3))


def test_quantile_huber_loss_equals_sb3_contribs_value_and_gradient():
    generator = torch.Generator().manual_seed(3)
    current = (torch.randn(64, 2, 25, generator=generator) * 2).requires_grad_()
    target = torch.randn(64, 1, 46, generator=generator) * 2
    target[:, :, :5] = current.detach()[:, :1, :5] + torch.tensor([-1.0, 1.0, 0.0, 1e-7, -1e-7])  # the kinks
    expected = sb3_quantile_huber_loss(current, target, sum_over_quantiles=False)
    (expected_grad,) = torch.autograd.grad(expected, current)
    found = quantile_huber_loss(current, target)
    (found_grad,) = torch.autograd.grad(found, current)
    assert torch.equal(found, expected) and torch.equal(found_grad, expected_grad)
