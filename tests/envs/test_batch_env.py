import dataclasses

import numpy as np
import pytest
import torch

from cryptorl.envs import BAR_INDEX, MARKET, POSITION, W_COST, BatchCryptoEnv, CryptoTradingEnv, EnvConfig, MarketData
from cryptorl.errors import ConfigError

# The identity execution rule (the position is the action): the levers' own tests are in test_execution.py.
CONFIG = EnvConfig(episode_length=16, fee=0.001, reward_scale=100.0, w_cost_low=0.0, w_cost_high=2.0, no_trade_band=0.0)
N_ENVS = 6


@pytest.fixture(scope="module")
def market() -> MarketData:
    return MarketData.random(300, n_features=9, seed=5).with_slice(80, 250)


def _run_against_single_envs(market: MarketData, device: str, config: EnvConfig = CONFIG) -> tuple[np.ndarray, np.ndarray]:
    """Step the batch env and N single envs through one episode from the same starts; return both rewards."""
    starts, w_costs = torch.tensor([80, 100, 150, 200, 233, 120]), torch.tensor([0.0, 0.3, 1.0, 1.7, 2.0, 0.9])
    batch = BatchCryptoEnv(market, N_ENVS, config, device=device, include_bar_index=True)
    singles = [CryptoTradingEnv(market, config, include_bar_index=True) for _ in range(N_ENVS)]
    batch_obs = batch.reset_to(starts, w_costs)
    single_obs = [env.reset(options={"start": int(start), "w_cost": float(w_cost)})[0]
                  for env, start, w_cost in zip(singles, starts, w_costs)]
    actions = np.random.default_rng(0).uniform(-1.3, 1.3, (CONFIG.episode_length, N_ENVS, 1)).astype(np.float32)
    batch_rewards, single_rewards = [], []
    for step_actions in actions:
        for key in batch_obs:
            np.testing.assert_array_equal(batch_obs[key], np.stack([obs[key] for obs in single_obs]))
        batch_obs, rewards, dones, infos = batch.step(step_actions)
        steps = [env.step(action) for env, action in zip(singles, step_actions)]
        single_obs = [step[0] for step in steps]
        batch_rewards.append(rewards)
        single_rewards.append([step[1] for step in steps])
        assert list(dones) == [step[3] for step in steps]
    for info, final in zip(infos, single_obs):  # the last step ended every episode
        assert info["TimeLimit.truncated"] is True
        for key in final:
            np.testing.assert_array_equal(info["terminal_observation"][key], final[key])
    return np.array(batch_rewards), np.array(single_rewards, dtype=np.float32)


@pytest.mark.parametrize("config", [CONFIG, dataclasses.replace(CONFIG, no_trade_band=0.3, adjust_rate=0.5,
                                                                  decision_interval=3)], ids=["target", "ruled"])
def test_batch_env_matches_single_envs_bitwise(market, config):
    batch_rewards, single_rewards = _run_against_single_envs(market, "cpu", config)
    np.testing.assert_array_equal(batch_rewards, single_rewards)
    assert np.abs(batch_rewards).max() > 0.01  # the comparison is not between zeros


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_env_on_cuda_matches_single_envs_bitwise(market):
    batch_rewards, single_rewards = _run_against_single_envs(market, "cuda")
    np.testing.assert_array_equal(batch_rewards, single_rewards)


def test_reward_parts_are_exposed_as_tensors(market):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, seed=0)
    env.reset()
    env.step(np.full((N_ENVS, 1), 0.5, np.float32))
    _, rewards, _, infos = env.step(np.full((N_ENVS, 1), -0.5, np.float32))
    expected = ((env.last_pnl - env.last_cost) * CONFIG.reward_scale).float().numpy()
    np.testing.assert_array_equal(rewards, expected)
    np.testing.assert_allclose(env.last_cost.numpy(), env.w_costs.double().numpy() * 0.001 * 1.0)
    assert all("pnl" not in info for info in infos)


def test_consecutive_observations_never_share_memory(market):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, seed=0)
    first = env.reset()
    kept = {key: array.copy() for key, array in first.items()}
    second, _, _, _ = env.step(np.ones((N_ENVS, 1), np.float32))
    for key in first:
        assert not np.shares_memory(first[key], second[key])
        np.testing.assert_array_equal(first[key], kept[key])  # SB3's _last_obs survives the next step
    assert (second[POSITION] == 1.0).all()


def test_done_envs_restart_with_a_fresh_episode(market):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True, seed=0)
    env.set_w_cost_range(5.0, 6.0)  # only new episodes draw from the new range
    env.reset_to(torch.full((N_ENVS,), 90), torch.full((N_ENVS,), 0.25))
    for _ in range(CONFIG.episode_length):
        obs, _, dones, infos = env.step(np.full((N_ENVS, 1), 0.7, np.float32))
    assert dones.all()
    terminal = infos[0]["terminal_observation"]
    assert terminal[BAR_INDEX][0] == 90 + CONFIG.episode_length and terminal[POSITION][0] == np.float32(0.7)
    assert terminal[W_COST][0] == 0.25 and terminal[MARKET].shape == (64, 9)
    assert (obs[POSITION] == 0).all() and ((obs[W_COST] >= 5.0) & (obs[W_COST] <= 6.0)).all()
    assert ((obs[BAR_INDEX] >= 80) & (obs[BAR_INDEX] <= 250 - 1 - CONFIG.episode_length)).all()
    torch.testing.assert_close(env.current_bars(), torch.as_tensor(obs[BAR_INDEX][:, 0]).long())


@pytest.mark.parametrize("stagger", [True, False])
def test_staggered_resets_spread_the_first_episode_ends(market, stagger):
    env = BatchCryptoEnv(market, 64, CONFIG, stagger_resets=stagger, seed=0)
    env.reset()
    end_steps = [np.flatnonzero(env.step(np.zeros((64, 1), np.float32))[2]) for _ in range(3 * CONFIG.episode_length)]
    ends_per_env = [[step for step, ended in enumerate(end_steps) if env_id in ended] for env_id in range(64)]
    assert all(np.diff(ends).tolist() == [CONFIG.episode_length] * (len(ends) - 1) for ends in ends_per_env)
    first_ends = {ends[0] for ends in ends_per_env}
    assert (len(first_ends) > 8) if stagger else (first_ends == {CONFIG.episode_length - 1})


def test_seed_makes_episodes_reproducible(market):
    def starts(seed: int) -> np.ndarray:
        env = BatchCryptoEnv(market, N_ENVS, CONFIG, include_bar_index=True)
        env.seed(seed)
        return env.reset()[BAR_INDEX].copy()

    np.testing.assert_array_equal(starts(7), starts(7))
    assert not np.array_equal(starts(7), starts(8))


def test_vec_env_attribute_api(market):
    env = BatchCryptoEnv(market, N_ENVS, CONFIG)
    assert env.get_attr("w_cost_high") == [2.0] * N_ENVS and env.get_attr("w_cost_high", indices=[1, 2]) == [2.0] * 2
    assert env.env_method("set_w_cost_range", 0.5, 3.0) == [None] * N_ENVS
    assert (env.w_cost_low, env.w_cost_high) == (0.5, 3.0)
    env.set_attr("w_cost_high", 4.0)
    assert env.w_cost_high == 4.0 and env.env_is_wrapped(object) == [False] * N_ENVS
    with pytest.raises(ConfigError, match="set_attr\\('w_cost_high'\\) on a subset of envs"):
        env.set_attr("w_cost_high", 1.0, indices=[0])
    with pytest.raises(ConfigError, match=r"reset_to needs 6 start bars in \[80, 233\]"):
        env.reset_to(torch.full((N_ENVS,), 240), torch.zeros(N_ENVS))
