import dataclasses

import numpy as np
import pytest
import torch
from sb3_contrib import TQC
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize

from cryptorl.envs import BAR_INDEX, MARKET, POSITION, W_COST, BatchCryptoEnv, EnvConfig, MarketData
from cryptorl.errors import ConfigError
from cryptorl.training import CompactReplayBuffer

CONFIG = EnvConfig(episode_length=8, w_cost_low=0.1, w_cost_high=1.0, no_trade_band=0.0)  # identity execution
N_ENVS = 4


@pytest.fixture(scope="module")
def market() -> MarketData:
    return MarketData.random(200, n_features=9, seed=11)


def _tqc(env: BatchCryptoEnv, market: MarketData, **kwargs) -> TQC:
    return TQC("MultiInputPolicy", env, replay_buffer_class=CompactReplayBuffer,
               replay_buffer_kwargs={"market": market}, policy_kwargs={"net_arch": [16, 16], "n_quantiles": 5},
               batch_size=32, seed=0, device="cpu", **kwargs)


@pytest.mark.parametrize("handle_timeout_termination", [True, False])
def test_samples_equal_dict_replay_buffer_fed_through_sb3(market, handle_timeout_termination):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True, seed=0)
    model = _tqc(env, market)  # only for its _store_transition: the exact path SB3 uses to fill buffers
    spaces = (env.observation_space, env.action_space)
    kwargs = {"device": "cpu", "n_envs": N_ENVS, "handle_timeout_termination": handle_timeout_termination}
    buffers = [CompactReplayBuffer(100, *spaces, market=market, **kwargs), DictReplayBuffer(100, *spaces, **kwargs)]
    rng = np.random.default_rng(0)
    model._last_obs = env.reset()
    for _ in range(40):  # 40 rows into 25: the ring buffer wraps
        actions = rng.uniform(-1, 1, (N_ENVS, 1)).astype(np.float32)
        new_obs, rewards, dones, infos = env.step(actions)
        last_obs = model._last_obs
        for buffer in buffers:
            model._last_obs = last_obs
            model._store_transition(buffer, actions, new_obs, rewards, dones, infos)
    compact, reference = buffers
    assert compact.full and compact.dones.any() and compact.timeouts.any() == handle_timeout_termination
    rows = np.arange(25).repeat(4)
    samples = []
    for buffer in buffers:
        np.random.seed(3)  # the same env column per row in both buffers
        samples.append(buffer._get_samples(rows))
    for name in ("actions", "rewards", "dones"):
        assert torch.equal(getattr(samples[0], name), getattr(samples[1], name)), name
    for field in ("observations", "next_observations"):
        got, expected = getattr(samples[0], field), getattr(samples[1], field)
        assert set(got) == set(expected)
        for key in expected:
            assert torch.equal(got[key], expected[key]), (field, key)
    assert samples[0].dones.sum() == (0 if handle_timeout_termination else compact.dones.sum())


def test_tqc_learns_with_the_compact_buffer(market):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True, seed=1)
    model = _tqc(env, market, learning_starts=160, buffer_size=1000)
    model.learn(total_timesteps=240)
    buffer = model.replay_buffer
    assert isinstance(buffer, CompactReplayBuffer) and buffer.size() == 60 and model._n_updates == 20
    sample = buffer.sample(64)
    source, log_returns = market.source.numpy(), market.log_returns.numpy()
    bars = sample.observations[BAR_INDEX][:, 0].long().numpy()
    next_bars = sample.next_observations[BAR_INDEX][:, 0].long().numpy()
    np.testing.assert_array_equal(next_bars, bars + 1)
    for row, bar in enumerate(bars):  # the sampled windows are exactly the env's windows for those bars
        np.testing.assert_array_equal(sample.observations[MARKET][row].numpy(), source[bar - 63: bar + 1])
        np.testing.assert_array_equal(sample.next_observations[MARKET][row].numpy(), source[bar - 62: bar + 2])
    position, new_position = sample.observations[POSITION][:, 0].double(), sample.next_observations[POSITION][:, 0]
    torch.testing.assert_close(new_position, sample.actions[:, 0], rtol=0, atol=0)  # next position = the action
    w_cost = sample.observations[W_COST][:, 0].double()
    torch.testing.assert_close(sample.next_observations[W_COST][:, 0].double(), w_cost, rtol=0, atol=0)
    pnl = new_position.double() * torch.as_tensor(log_returns[bars])
    expected = ((pnl - w_cost * CONFIG.fee * (new_position.double() - position).abs()) * CONFIG.reward_scale).float()
    torch.testing.assert_close(sample.rewards[:, 0], expected, rtol=0, atol=0)


def test_a_transition_costs_at_most_64_bytes(market):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True)
    buffer = CompactReplayBuffer(1000, env.observation_space, env.action_space, device="cpu", n_envs=N_ENVS,
                                 market=market)
    assert buffer.bytes_per_transition == 34  # 2 bars, 2 positions, 2 w_costs, action, reward (4 B) + 2 flags


def test_miswired_buffers_are_refused(market):
    plain = BatchCryptoEnv(market, N_ENVS, CONFIG)
    with pytest.raises(ConfigError, match="build the env with include_bar_index=True"):
        CompactReplayBuffer(100, plain.observation_space, plain.action_space, market=market)
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True)
    with pytest.raises(ConfigError, match=r"'market' has shape \(64, 9\) but .* market data gives \(64, 3\)"):
        CompactReplayBuffer(100, env.observation_space, env.action_space, market=MarketData.random(100, n_features=3))
    buffer = CompactReplayBuffer(100, env.observation_space, env.action_space, n_envs=N_ENVS, market=market)
    obs = env.reset()
    obs[BAR_INDEX][0] = 5000.0
    with pytest.raises(ConfigError, match=r"bar_index \d+..5000 is outside"):
        buffer.add(obs, obs, np.zeros((N_ENVS, 1)), np.zeros(N_ENVS), np.zeros(N_ENVS, bool), [{}] * N_ENVS)
    with pytest.raises(ConfigError, match="cannot normalize"):
        buffer.sample(8, env=VecNormalize(env))


def _filled_buffer(market: MarketData, steps: int = 30, **kwargs) -> tuple[CompactReplayBuffer, BatchCryptoEnv]:
    """A buffer filled through SB3's own _store_transition with random actions (as test 1 does)."""
    env = BatchCryptoEnv(market, N_ENVS, kwargs.get("env_config") or CONFIG, include_bar_index=True, seed=0)
    model = _tqc(env, market)
    buffer = CompactReplayBuffer(100, env.observation_space, env.action_space, device="cpu", n_envs=N_ENVS,
                                 market=market, **kwargs)
    rng = np.random.default_rng(0)
    model._last_obs = env.reset()
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (N_ENVS, 1)).astype(np.float32)
        new_obs, rewards, dones, infos = env.step(actions)
        model._store_transition(buffer, actions, new_obs, rewards, dones, infos)
    return buffer, env


@pytest.mark.parametrize("w_cost_high, positions, config", [
    (0.0, False, CONFIG), (2.0, False, CONFIG), (2.0, True, CONFIG),
    (2.0, True, dataclasses.replace(CONFIG, no_trade_band=0.3, adjust_rate=0.5, decision_interval=2))])
def test_counterfactual_rewards_are_what_the_env_pays_for_that_action(market, w_cost_high, positions, config):
    buffer, _ = _filled_buffer(market, counterfactuals=3, env_config=config, counterfactual_w_cost_high=w_cost_high,
                               counterfactual_positions=positions)
    np.random.seed(0)
    sample = buffer.sample(32)  # 8 stored transitions, each followed by 3 counterfactual copies
    bars = sample.observations[BAR_INDEX][:, 0].long()
    assert bars.shape == (32,) and torch.equal(bars[8:], bars[:8].repeat_interleave(3))
    assert not torch.equal(sample.actions[8:], sample.actions[:8].repeat_interleave(3, dim=0))
    w_costs, next_w_costs = sample.observations[W_COST], sample.next_observations[W_COST]
    assert torch.equal(w_costs, next_w_costs)  # an episode constant, in the copies too
    copied_w_costs = torch.equal(w_costs[8:], w_costs[:8].repeat_interleave(3, dim=0))
    assert copied_w_costs == (w_cost_high == 0)
    if w_cost_high:
        assert 0 <= float(w_costs[8:].min()) and float(w_costs[8:].max()) <= w_cost_high
    held = sample.observations[POSITION]
    assert torch.equal(held[8:], held[:8].repeat_interleave(3, dim=0)) != positions
    env = BatchCryptoEnv(market, 32, config, include_bar_index=True, stagger_resets=False)
    env.reset_to(bars, sample.observations[W_COST][:, 0])
    env._positions.copy_(sample.observations[POSITION][:, 0])  # the stored states' positions
    next_obs, rewards, _, _ = env.step(sample.actions.numpy())
    np.testing.assert_array_equal(sample.rewards[:, 0].numpy(), rewards)  # bit for bit, stored and counterfactual
    np.testing.assert_array_equal(sample.next_observations[POSITION].numpy(), next_obs[POSITION])
    np.testing.assert_array_equal(sample.next_observations[BAR_INDEX].numpy(), next_obs[BAR_INDEX])
    assert torch.equal(sample.dones[8:], sample.dones[:8].repeat_interleave(3, dim=0))


def test_n_step_returns_sum_the_episode_and_stop_at_its_end(market):
    buffer, _ = _filled_buffer(market, steps=20, n_steps=3, gamma=0.9)
    assert buffer.dones.any() and not buffer.full  # episodes (staggered, <= 8 steps) ended inside the 20 rows
    rows = np.arange(20)
    np.random.seed(1)
    env_inds = np.random.randint(0, N_ENVS, 20)
    np.random.seed(1)
    sample = buffer._get_samples(rows)
    for row, env_ in zip(rows, env_inds):
        total, discount, last = 0.0, 1.0, row
        for k in range(3):  # by hand: add rewards until the episode's end (or the newest row)
            last = row + k
            total += discount * float(buffer.rewards[last, env_])
            discount *= 0.9
            if buffer.timeouts[last, env_] or buffer.dones[last, env_] or last == buffer.pos - 1:
                break
        assert sample.rewards[row, 0].item() == pytest.approx(total, rel=1e-6)
        assert sample.discounts[row, 0].item() == pytest.approx(discount, rel=1e-6)
        assert sample.next_observations[BAR_INDEX][row, 0].item() == buffer.next_bars[last, env_]


def test_target_options_are_checked(market):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True)
    spaces = (env.observation_space, env.action_space)
    with pytest.raises(ConfigError, match="counterfactual actions need one-step targets"):
        CompactReplayBuffer(100, *spaces, market=market, n_steps=3, counterfactuals=2, env_config=CONFIG)
    with pytest.raises(ConfigError, match=r"pass replay_buffer_kwargs\['env_config'\]"):
        CompactReplayBuffer(100, *spaces, market=market, counterfactuals=2)
    buffer, _ = _filled_buffer(market, counterfactuals=2, env_config=CONFIG)
    with pytest.raises(ConfigError, match="batch size 32 is not a multiple of counterfactuals \\+ 1 = 3"):
        buffer.sample(32)
