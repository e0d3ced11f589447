"""`CompactReplayBuffer`: an SB3 replay buffer that stores bar indices instead of observation windows.

SB3's `DictReplayBuffer` stores every (64, 55) float32 window twice (obs and next obs): 28 KB per transition,
28 GB for 1M transitions. A window is a pure function of its bar, and the market data is already in memory,
so this buffer stores the bar index and rebuilds windows at sample time with one batched gather
(`MarketData.windows`). Every other observation key (position, w_cost) is stored verbatim for obs and next
obs, so samples equal what `DictReplayBuffer` would return, bit for bit, at ~34 bytes per transition.

Use with an env that emits `bar_index` (`BatchCryptoEnv(..., include_bar_index=True)`):
`TQC(..., replay_buffer_class=CompactReplayBuffer, replay_buffer_kwargs={"market": market})`.

Two ways to sharpen the critic's targets, both computed at sample time from what is stored:
- n-step returns (`n_steps > 1`, as SB3's `NStepReplayBuffer`): the sample's reward is the discounted sum of
  up to n rewards of the same episode, its next observation the one n steps on, and `discounts` carries
  gamma^k for the k steps actually summed (TQC reads it).
- Counterfactual actions (`counterfactuals = K`). The market is exogenous (our trades do not move the
  price), so the reward of ANY action a' at a stored state is known exactly: it takes the position
  p' = execution(a', position, bar) (cryptorl/envs/execution.py; a' itself by default) and earns
  scale * (p' * log_return[bar] - w_cost * fee * |p' - position|), and its next observation is the stored
  one with position p'. Each sampled transition is followed in the batch by K copies with actions drawn
  ~ U[-1, 1]: the critic sees K + 1 actions per state at the cost of one (the batch size is unchanged).
  It needs the env's reward rule (`env_config`, with the reward scale the env used) and one-step targets.
  With `counterfactual_w_cost_high` > 0 each copy also gets its own cost weight w' ~ U[0, high] (in its
  observation and next observation, and in its reward): w_cost is an exogenous constant of an episode, so
  that too is an exact transition, and the critic sees many cost weights per state, not one per episode.
  With `counterfactual_positions` each copy also starts from its own held position p' ~ U[-1, 1] (its
  reward pays |a' - p'|): the agent's own replay only holds positions close to what it would do next, so
  without this the actor never learns what to do from a position it does not already hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from cryptorl.config import EnvConfig
from cryptorl.envs.execution import Execution
from cryptorl.envs.market import BAR_INDEX, MARKET, POSITION, W_COST, MarketData
from cryptorl.errors import ConfigError


class CompactReplayBuffer(ReplayBuffer):
    """Stores (bar, next bar, small keys, action, reward, done, timeout); gathers `market` windows on `sample`."""

    observation_space: spaces.Dict

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        market: MarketData,
        n_steps: int = 1,
        gamma: float = 0.99,
        counterfactuals: int = 0,
        env_config: EnvConfig | None = None,
        counterfactual_w_cost_high: float = 0.0,
        counterfactual_positions: bool = False,
    ):
        # Skip ReplayBuffer.__init__: it would allocate full observation arrays (what this class avoids).
        super(ReplayBuffer, self).__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        _check_space(observation_space, market)
        if optimize_memory_usage:
            raise ConfigError(
                "CompactReplayBuffer does not take optimize_memory_usage=True: it already stores "
                "no observations; leave the algorithm's optimize_memory_usage at False"
            )
        _check_targets(n_steps, counterfactuals, env_config)
        self.market = market
        self.n_steps, self.gamma = n_steps, gamma
        self.counterfactuals, self.env_config = counterfactuals, env_config
        self.counterfactual_w_cost_high = counterfactual_w_cost_high
        self.counterfactual_positions = counterfactual_positions
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.buffer_size = max(buffer_size // n_envs, 1)
        rows = (self.buffer_size, self.n_envs)
        self.bars = np.zeros(rows, dtype=np.int32)
        self.next_bars = np.zeros(rows, dtype=np.int32)
        # Position and w_cost (any key but market/bar_index), stored as the space's dtype: samples are exact.
        self.small_keys = [key for key in observation_space.spaces if key not in (MARKET, BAR_INDEX)]
        self.small_obs = {
            key: np.zeros((*rows, *(observation_space[key].shape or ())), observation_space[key].dtype)
            for key in self.small_keys
        }
        self.small_next_obs = {key: np.zeros_like(array) for key, array in self.small_obs.items()}
        self.actions = np.zeros((*rows, self.action_dim), dtype=np.float32)
        self.rewards = np.zeros(rows, dtype=np.float32)
        self.dones = np.zeros(rows, dtype=np.bool_)
        self.timeouts = np.zeros(rows, dtype=np.bool_)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored transitions (the shared market data is not counted: the env holds it)."""
        arrays = [
            self.bars,
            self.next_bars,
            self.actions,
            self.rewards,
            self.dones,
            self.timeouts,
            *self.small_obs.values(),
            *self.small_next_obs.values(),
        ]
        return sum(array.nbytes for array in arrays)

    @property
    def bytes_per_transition(self) -> float:
        return self.nbytes / (self.buffer_size * self.n_envs)

    # Dict observations, as SB3's own DictReplayBuffer overrides these (with the same type: ignore).
    def add(
        self,
        obs: dict[str, np.ndarray],  # type: ignore[override]
        next_obs: dict[str, np.ndarray],  # type: ignore[override]
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
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

    def sample(  # type: ignore[override]
        self,
        batch_size: int,
        env: VecNormalize | None = None,
    ) -> DictReplayBufferSamples:
        if env is not None:
            raise ConfigError(
                "CompactReplayBuffer rebuilds observations from MarketData and cannot normalize "
                "them: drop the VecNormalize wrapper (features are already scaled)"
            )
        if batch_size % (self.counterfactuals + 1):
            raise ConfigError(
                f"batch size {batch_size} is not a multiple of counterfactuals + 1 = "
                f"{self.counterfactuals + 1}: each sampled transition takes that many batch rows"
            )
        return super(ReplayBuffer, self).sample(batch_size // (self.counterfactuals + 1))

    def _get_samples(  # type: ignore[override]
        self,
        batch_inds: np.ndarray,
        env: VecNormalize | None = None,
    ) -> DictReplayBufferSamples:
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))  # as DictReplayBuffer does
        at = (batch_inds, env_inds)
        rows = {
            "bars": self.bars[at],
            "actions": self.actions[at],
            **{key: array[at] for key, array in self.small_obs.items()},
        }
        if self.n_steps == 1:
            last, rewards, discounts = at, self.rewards[at], None
        else:
            last, rewards, discounts = self._n_step_returns(batch_inds, env_inds)
        rows.update(
            {
                "next_bars": self.next_bars[last],
                "rewards": rewards,
                # a time limit is not a terminal: bootstrap through it
                "dones": (self.dones[last] & ~self.timeouts[last]).astype(np.float32),
            }
        )
        rows.update({f"next_{key}": array[last] for key, array in self.small_next_obs.items()})
        if self.counterfactuals:
            rows = self._with_counterfactuals(rows)
        return DictReplayBufferSamples(
            observations=self._observations(rows["bars"], {key: rows[key] for key in self.small_keys}),
            actions=self.to_torch(rows["actions"]),
            next_observations=self._observations(
                rows["next_bars"], {key: rows[f"next_{key}"] for key in self.small_keys}
            ),
            dones=self.to_torch(rows["dones"]).reshape(-1, 1),
            rewards=self.to_torch(rows["rewards"].reshape(-1, 1)),
            discounts=None if discounts is None else self.to_torch(discounts.reshape(-1, 1)),
        )

    def _n_step_returns(
        self, batch_inds: np.ndarray, env_inds: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
        """(index of the last summed step, discounted reward sums (B,), gamma^steps (B,)), as NStepReplayBuffer.

        A sequence stops at its episode's end (done or time limit) and at the newest stored row, whose
        successor is not written yet (or is an old row of the ring).
        """
        newest = (self.pos - 1) % self.buffer_size
        steps = np.arange(self.n_steps)  # (n,)
        indices = (batch_inds[:, None] + steps) % self.buffer_size  # (B, n)
        at = (indices, env_inds[:, None])
        stop_seq = self.dones[at] | self.timeouts[at] | (indices == newest)  # (B, n)
        last_step = np.where(stop_seq.any(axis=1), stop_seq.argmax(axis=1), self.n_steps - 1)  # (B,)
        summed = steps <= last_step[:, None]  # (B, n)
        rewards = (self.rewards[indices, env_inds[:, None]] * self.gamma**steps * summed).sum(axis=1)
        discounts = (self.gamma ** summed.sum(axis=1)).astype(np.float32)
        return ((batch_inds + last_step) % self.buffer_size, env_inds), rewards.astype(np.float32), discounts

    def _with_counterfactuals(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The sampled rows followed by `counterfactuals` copies of each with another action and its exact reward."""
        k = self.counterfactuals
        copies = {key: np.repeat(array, k, axis=0) for key, array in rows.items()}  # (B*K, ...)
        actions = np.random.uniform(-1.0, 1.0, copies["actions"].shape).astype(np.float32)  # (B*K, 1)
        copies["actions"] = actions
        if self.counterfactual_w_cost_high > 0:
            w_costs = np.random.uniform(0.0, self.counterfactual_w_cost_high, copies[W_COST].shape)
            copies[W_COST] = copies[f"next_{W_COST}"] = w_costs.astype(np.float32)
        if self.counterfactual_positions:
            copies[POSITION] = np.random.uniform(-1.0, 1.0, copies[POSITION].shape).astype(np.float32)
        assert self.env_config is not None  # _check_targets
        taken = Execution.of(self.env_config, self.market.epoch_bar).position_numpy(
            actions.reshape(-1), copies[POSITION].reshape(-1), copies["bars"]
        )  # (B*K,) the positions they take
        copies["rewards"] = self._exact_rewards(copies["bars"], copies[POSITION], copies[W_COST], taken)
        copies[f"next_{POSITION}"] = taken.reshape(copies[f"next_{POSITION}"].shape)
        return {key: np.concatenate([rows[key], copies[key]]) for key in rows}

    def _exact_rewards(
        self, bars: np.ndarray, positions: np.ndarray, w_costs: np.ndarray, taken: np.ndarray
    ) -> np.ndarray:
        """(N,) float32: the env's reward for moving from `positions` to `taken` at these states, in
        BatchCryptoEnv.step's arithmetic."""
        assert self.env_config is not None  # _check_targets
        new = taken.reshape(-1).astype(np.float64)
        at = torch.as_tensor(bars, dtype=torch.long, device=self.market.device)
        log_returns = self.market.log_returns[at].cpu().numpy()  # (N,)
        pnl = new * log_returns
        cost = (
            w_costs.reshape(-1).astype(np.float64)
            * self.env_config.fee
            * np.abs(new - positions.reshape(-1).astype(np.float64))
        )
        return ((pnl - cost) * self.env_config.reward_scale).astype(np.float32)

    def _observations(self, bars: np.ndarray, small: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The batch's observation dict (B, ...) per key, on the buffer's device, from bars and small keys."""
        bar_tensor = torch.as_tensor(bars, dtype=torch.long, device=self.market.device)  # (B,)
        observations = {key: self.to_torch(array) for key, array in small.items()}
        if MARKET in self.observation_space.spaces:
            observations[MARKET] = self.market.windows(bar_tensor).to(self.device)  # (B, window, F)
        if BAR_INDEX in self.observation_space.spaces:
            observations[BAR_INDEX] = self.to_torch(bars.astype(np.float32).reshape(-1, 1))
        return observations

    def _bar_indices(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """(n_envs,) int32 bar indices from the float `bar_index` key, checked against the market span."""
        bars = np.asarray(obs[BAR_INDEX]).reshape(self.n_envs).astype(np.int32)
        if bars.min() < self.market.window - 1 or bars.max() >= self.market.n_bars:
            raise ConfigError(
                f"bar_index {bars.min()}..{bars.max()} is outside the replay buffer's market span "
                f"[{self.market.window - 1}, {self.market.n_bars - 1}]: build the buffer with the "
                "same MarketData as the env"
            )
        return bars


def _check_space(space: spaces.Space, market: MarketData) -> None:
    """The buffer stores `bar_index` and rebuilds `market` (when observed) from it, matching the data."""
    if not isinstance(space, spaces.Dict) or BAR_INDEX not in space.spaces:
        raise ConfigError(
            "CompactReplayBuffer needs Dict observations with a 'bar_index' key: build "
            "the env with include_bar_index=True"
        )
    expected = (market.window, market.n_features)
    if MARKET in space.spaces and space[MARKET].shape != expected:
        raise ConfigError(
            f"observation 'market' has shape {space[MARKET].shape} but the replay buffer's market "
            f"data gives {expected}: pass the env's MarketData as replay_buffer_kwargs['market']"
        )


def _check_targets(n_steps: int, counterfactuals: int, env_config: EnvConfig | None) -> None:
    if n_steps < 1 or counterfactuals < 0:
        raise ConfigError(
            f"replay n_steps={n_steps}, counterfactuals={counterfactuals}: use n_steps >= 1 and counterfactuals >= 0"
        )
    if counterfactuals and n_steps > 1:
        raise ConfigError(
            "counterfactual actions need one-step targets (another action changes the next "
            "position, so the logged later rewards no longer apply): set train.n_steps=1 or "
            "train.counterfactual_actions=0"
        )
    if counterfactuals and env_config is None:
        raise ConfigError(
            "counterfactual actions need the env's reward rule: pass replay_buffer_kwargs"
            "['env_config'] (the env's EnvConfig)"
        )
