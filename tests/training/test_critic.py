import dataclasses

import numpy as np
import torch
from sb3_contrib import TQC
from sb3_contrib.tqc.policies import Critic

from cryptorl.envs import POSITION, W_COST, BatchCryptoEnv, EnvConfig, MarketData
from cryptorl.envs.execution import Execution
from cryptorl.training import CompactReplayBuffer
from cryptorl.training.critic import ExactCostCritic, ExactCostPolicy

CONFIG = EnvConfig(episode_length=8, w_cost_low=0.0, w_cost_high=2.0)


def _model(cost_per_unit: float) -> TQC:
    market = MarketData.random(200, n_features=9, seed=2)
    env = BatchCryptoEnv(market, 4, CONFIG, include_bar_index=True, seed=0)
    return TQC(ExactCostPolicy, env, replay_buffer_class=CompactReplayBuffer, replay_buffer_kwargs={"market": market},
               policy_kwargs={"net_arch": [16, 16], "n_quantiles": 5, "cost_per_unit": cost_per_unit},
               learning_starts=8, batch_size=16, seed=0, device="cpu")


def test_the_critics_subtract_the_exact_cost_of_the_trade(tmp_path):
    model = _model(cost_per_unit=0.1)
    assert isinstance(model.critic, ExactCostCritic) and isinstance(model.critic_target, ExactCostCritic)
    env = model.get_env()
    obs = {key: torch.as_tensor(value) for key, value in env.reset().items()}
    obs[POSITION] = torch.tensor([[-1.0], [0.0], [0.5], [1.0]])
    obs[W_COST] = torch.tensor([[0.0], [1.0], [2.0], [0.5]])
    action = torch.tensor([[1.0], [-0.5], [0.5], [-1.0]])
    with torch.no_grad():
        exact = model.critic(obs, action)  # (4, 2, 5)
        learned = model.critic.learned(obs, action)
        assert torch.equal(learned, Critic.forward(model.critic, obs, action))
    cost = torch.tensor([0.0, 1.0 * 0.1 * 0.5, 0.0, 0.5 * 0.1 * 2.0]).reshape(4, 1, 1)
    torch.testing.assert_close(learned - exact, cost.expand_as(exact))
    model.learn(16)  # trains through the TD targets
    model.save(tmp_path / "model.zip")
    loaded = TQC.load(tmp_path / "model.zip", custom_objects={"replay_buffer_kwargs": {}, "buffer_size": 1,
                                                               "replay_buffer_class": None})
    assert loaded.critic.cost_per_unit == 0.1
    with torch.no_grad():
        np.testing.assert_allclose(loaded.critic(obs, action).numpy(), model.critic(obs, action).numpy())


def test_the_exact_cost_is_that_of_the_position_the_execution_rule_takes():
    market = MarketData.random(200, n_features=9, seed=2)
    ruled = dataclasses.replace(CONFIG, no_trade_band=0.5)
    env = BatchCryptoEnv(market, 4, ruled, include_bar_index=True, seed=0)
    model = TQC(ExactCostPolicy, env, replay_buffer_class=CompactReplayBuffer, replay_buffer_kwargs={"market": market},
                policy_kwargs={"net_arch": [16, 16], "n_quantiles": 5, "cost_per_unit": 0.1,
                               "execution": env.execution}, learning_starts=8, batch_size=16, seed=0, device="cpu")
    obs = {key: torch.as_tensor(value) for key, value in env.reset().items()}
    obs[POSITION] = torch.tensor([[-1.0], [0.0], [0.5], [1.0]])
    obs[W_COST] = torch.ones(4, 1)
    action = torch.tensor([[1.0], [-0.25], [-0.5], [-1.0]])  # taken: 0.5, 0.0 (inside the band), 0.0, -0.5
    with torch.no_grad():
        cost = model.critic.learned(obs, action) - model.critic(obs, action)
    torch.testing.assert_close(cost, (0.1 * torch.tensor([1.5, 0.0, 0.5, 1.5])).reshape(4, 1, 1).expand_as(cost))
    assert model.critic_target.execution == Execution(band=0.5)
