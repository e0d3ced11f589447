"""The TQC runner end to end on small synthetic data: trains, saves a loadable model, resumes, reproduces."""

import dataclasses

import numpy as np
import pytest
import torch

from cryptorl.config import TrainConfig
from cryptorl.envs import MarketData
from cryptorl.models import attach_encoder_cache
from cryptorl.training.learner import LeanTQC
from cryptorl.training.tqc import (build_tqc, encoder_cache_for, load_trained_model, make_env, train_tqc,
                                   training_env_config)
from tests.tiny import TINY_ENV, TINY_TRAIN, tiny_encoder

ENCODER, ENV, CONFIG = tiny_encoder(), TINY_ENV, TINY_TRAIN


@pytest.fixture(scope="module")
def markets():
    span = MarketData.random(400, seed=0)
    return span.with_slice(100, 300), span.with_slice(300, 400)


def run(markets, tmp_path, config=CONFIG, seed=3):
    return train_tqc(*markets, ENCODER, config, ENV, seed=seed, work_dir=tmp_path, progress=False)


@pytest.mark.parametrize("use_encoder_cache", [True, False])
def test_training_saves_a_model_that_loads_and_acts(markets, tmp_path, use_encoder_cache):
    config = dataclasses.replace(CONFIG, use_encoder_cache=use_encoder_cache)
    result = run(markets, tmp_path, config)
    assert result.timesteps == 64 and result.updates > 0 and result.resumed_from == 0
    model = load_trained_model(result.model_path, device="cpu")
    env = make_env(markets[1], config, ENV, 4, seed=0, device=torch.device("cpu"))
    if use_encoder_cache:
        attach_encoder_cache(model.policy, encoder_cache_for(ENCODER, markets[1], torch.device("cpu")))
    actions, _ = model.predict(env.reset(), deterministic=True)
    assert actions.shape == (4, 1) and np.all(np.abs(actions) <= 1)
    assert any(result.tensorboard_dir.rglob("events.out.tfevents*"))


def test_training_resumes_from_the_latest_checkpoint(markets, tmp_path):
    run(markets, tmp_path)
    resumed = run(markets, tmp_path, dataclasses.replace(CONFIG, total_timesteps=128))
    assert resumed.resumed_from == 64 and resumed.timesteps == 128


def test_same_seed_gives_the_same_policy_another_seed_another(markets, tmp_path):
    def policy_weights(work_dir, seed):
        return load_trained_model(run(markets, work_dir, seed=seed).model_path, "cpu").policy.state_dict()

    first, second = policy_weights(tmp_path / "a", seed=3), policy_weights(tmp_path / "b", seed=3)
    other = policy_weights(tmp_path / "c", seed=4)
    assert first.keys() == second.keys() == other.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_gradient_steps_scale_with_envs():
    assert TrainConfig().gradient_steps == 128  # the seed: 1024 envs x 0.125
    assert dataclasses.replace(CONFIG, n_envs=64, replay_ratio=0.25).gradient_steps == 16


def test_the_fee_multiplier_weighs_the_training_reward_only(markets, tmp_path):
    config = dataclasses.replace(CONFIG, fee_multiplier=3.0)
    assert training_env_config(ENV, config).fee == 3 * ENV.fee and training_env_config(ENV, CONFIG) is ENV
    model = load_trained_model(run(markets, tmp_path, config).model_path, device="cpu")
    assert model.critic.cost_per_unit == pytest.approx(3 * ENV.fee * ENV.reward_scale)  # what the train env charged


def test_the_smoothness_term_is_the_cost_weighted_squared_action_change_over_real_transitions(markets):
    env = make_env(markets[0], CONFIG, ENV, CONFIG.n_envs, 0, torch.device("cpu"))
    model = build_tqc(env, ENCODER, dataclasses.replace(CONFIG, smoothness=2.0), seed=0, tensorboard_dir=None)
    assert isinstance(model, LeanTQC) and model.smoothness == 2.0
    attach_encoder_cache(model.policy, encoder_cache_for(ENCODER, markets[0], torch.device("cpu")))
    model.learn(48)  # trains with the term
    data = model.replay_buffer.sample(16)
    n_real = 16 // (CONFIG.counterfactual_actions + 1)
    with torch.no_grad():
        now, after = (model.actor({k: v[:n_real] for k, v in obs.items()}, deterministic=True)
                      for obs in (data.observations, data.next_observations))
        w_cost = data.observations["w_cost"][:n_real]  # (n, 1): a cost-free episode is not smoothed
        expected = (w_cost * (now - after).pow(2)).mean().item()
        assert model._action_change(data).item() == pytest.approx(expected, rel=1e-6)
