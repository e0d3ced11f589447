"""`CompactReplayBuffer`: an SB3 replay buffer that stores bar indices instead of observation windows.

SB3's `DictReplayBuffer` stores every (64, 55) float32 window twice (obs and next obs): 28 KB per transition,
28 GB for 1M transitions. A window is a pure function of its bar, and the market data is already in memory,
so this buffer stores the bar index and rebuilds windows at sample time with one batched gather
(`MarketData.windows`). Every other observation key (position, w_cost) is stored verbatim for obs and next
obs, so samples equal what `DictReplayBuffer` would return, bit for bit, at ~34 bytes per transition.

Use with an env that emits `bar_index` (`BatchCryptoEnv(..., include_bar_index=True)`):
`TQC(..., replay_buffer_class=CompactReplayBuffer, replay_buffer_kwargs={"market": market})`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from cryptorl.envs.market import BAR_INDEX, MARKET, MarketData
from cryptorl.errors import ConfigError


class CompactReplayBuffer(ReplayBuffer):
    """Stores (bar, next bar, small keys, action, reward, done, timeout); gathers `market` windows on `sample`."""

    observation_space: spaces.Dict

    def __init__(self, buffer_size: int, observation_space: spaces.Dict, action_space: spaces.Space,
                 device: torch.device | str = "auto", n_envs: int = 1, optimize_memory_usage: bool = False,
                 handle_timeout_termination: bool = True, *, market: MarketData):
        # Skip ReplayBuffer.__init__: it would allocate full observation arrays (what this class avoids).
        super(ReplayBuffer, self).__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        _check_space(observation_space, market)
        if optimize_memory_usage:
            raise ConfigError("CompactReplayBuffer does not take optimize_memory_usage=True: it already stores "
                              "no observations; leave the algorithm's optimize_memory_usage at False")
        self.market = market
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.buffer_size = max(buffer_size // n_envs, 1)
        rows = (self.buffer_size, self.n_envs)
        self.bars = np.zeros(rows, dtype=np.int32)
        self.next_bars = np.zeros(rows, dtype=np.int32)
        # Position and w_cost (any key but market/bar_index), stored as the space's dtype: samples are exact.
        self.small_keys = [key for key in observation_space.spaces if key not in (MARKET, BAR_INDEX)]
        self.small_obs = {key: np.zeros((*rows, *observation_space[key].shape), observation_space[key].dtype)
                          for key in self.small_keys}
        self.small_next_obs = {key: np.zeros_like(array) for key, array in self.small_obs.items()}
        self.actions = np.zeros((*rows, self.action_dim), dtype=np.float32)
        self.rewards = np.zeros(rows, dtype=np.float32)
        self.dones = np.zeros(rows, dtype=np.bool_)
        self.timeouts = np.zeros(rows, dtype=np.bool_)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored transitions (the shared market data is not counted: the env holds it)."""
        arrays = [self.bars, self.next_bars, self.actions, self.rewards, self.dones, self.timeouts,
                  *self.small_obs.values(), *self.small_next_obs.values()]
        return sum(array.nbytes for array in arrays)

    @property
    def bytes_per_transition(self) -> float:
        return self.nbytes / (self.buffer_size * self.n_envs)

    def add(self, obs: dict[str, np.ndarray], next_obs: dict[str, np.ndarray],  # type: ignore[override]
            action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Store one vectorized step; SB3 has already put terminal observations into `next_obs`."""
        self.bars[self.pos] = self._bar_indices(obs)
        self.next_bars[self.pos] = self._bar_indices(next_obs)
        for key in self.small_keys:
            self.small_obs[key][self.pos] = obs[key]
            self.small_next_obs[key][self.pos] = next_obs[key]
        self.actions[self.pos] = np.asarray(action).reshape(self.n_envs, self.action_dim)
        self.rewards[self.pos] = reward
        self.dones[self.pos] = done
        if self.handle_timeout_termination:
            self.timeouts[self.pos] = [info.get("TimeLimit.truncated", False) for info in infos]
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def sample(self, batch_size: int,  # type: ignore[override]
               env: VecNormalize | None = None) -> DictReplayBufferSamples:
        if env is not None:
            raise ConfigError("CompactReplayBuffer rebuilds observations from MarketData and cannot normalize "
                              "them: drop the VecNormalize wrapper (features are already scaled)")
        return super(ReplayBuffer, self).sample(batch_size)

    def _get_samples(self, batch_inds: np.ndarray,  # type: ignore[override]
                     env: VecNormalize | None = None) -> DictReplayBufferSamples:
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))  # as DictReplayBuffer does
        at = (batch_inds, env_inds)
        dones = self.dones[at] & ~self.timeouts[at]  # a time limit is not a terminal: bootstrap through it
        return DictReplayBufferSamples(
            observations=self._observations(self.bars[at], self.small_obs, at),
            actions=self.to_torch(self.actions[at]),
            next_observations=self._observations(self.next_bars[at], self.small_next_obs, at),
            dones=self.to_torch(dones.astype(np.float32)).reshape(-1, 1),
            rewards=self.to_torch(self.rewards[at].reshape(-1, 1)),
        )

    def _observations(self, bars: np.ndarray, small: dict[str, np.ndarray], at: tuple[np.ndarray, np.ndarray]
                      ) -> dict[str, torch.Tensor]:
        """The batch's observation dict (B, ...) per key, on the buffer's device."""
        bar_tensor = torch.as_tensor(bars, dtype=torch.long, device=self.market.device)  # (B,)
        observations = {key: self.to_torch(array[at]) for key, array in small.items()}
        if MARKET in self.observation_space.spaces:
            observations[MARKET] = self.market.windows(bar_tensor).to(self.device)  # (B, window, F)
        if BAR_INDEX in self.observation_space.spaces:
            observations[BAR_INDEX] = self.to_torch(bars.astype(np.float32).reshape(-1, 1))
        return observations

    def _bar_indices(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """(n_envs,) int32 bar indices from the float `bar_index` key, checked against the market span."""
        bars = np.asarray(obs[BAR_INDEX]).reshape(self.n_envs).astype(np.int32)
        if bars.min() < self.market.window - 1 or bars.max() >= self.market.n_bars:
            raise ConfigError(f"bar_index {bars.min()}..{bars.max()} is outside the replay buffer's market span "
                              f"[{self.market.window - 1}, {self.market.n_bars - 1}]: build the buffer with the "
                              "same MarketData as the env")
        return bars


def _check_space(space: spaces.Space, market: MarketData) -> None:
    """The buffer stores `bar_index` and rebuilds `market` (when observed) from it, matching the data."""
    if not isinstance(space, spaces.Dict) or BAR_INDEX not in space.spaces:
        raise ConfigError("CompactReplayBuffer needs Dict observations with a 'bar_index' key: build "
                          "the env with include_bar_index=True")
    expected = (market.window, market.n_features)
    if MARKET in space.spaces and space[MARKET].shape != expected:
        raise ConfigError(f"observation 'market' has shape {space[MARKET].shape} but the replay buffer's market "
                          f"data gives {expected}: pass the env's MarketData as replay_buffer_kwargs['market']")
