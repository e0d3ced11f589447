"""`CryptoTradingEnv`: one trading episode at a time, a plain `gymnasium.Env`.

The reference implementation of the dynamics that `BatchCryptoEnv` vectorizes: same `MarketData`, same
reward arithmetic (float64, cast to float32 at the end, so both give bitwise-equal rewards), same episode
layout. Use it for `gymnasium.utils.env_checker`, for step-by-step debugging and as the baseline of
benchmarks/env_throughput.py; train with the batched env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from cryptorl.config import EnvConfig, check_w_cost_range
from cryptorl.envs.execution import Execution
from cryptorl.envs.market import BAR_INDEX, MARKET, POSITION, W_COST, MarketData, observes_market
from cryptorl.errors import ConfigError


class CryptoTradingEnv(gym.Env):
    """Hold a position in [-1, 1] that the action (a target) sets through the execution rule
    (cryptorl/envs/execution.py); reward = scale * (position * next log-return - w_cost * fee * turnover).

    `reset(options={"start": t, "w_cost": w})` forces an episode's first decision bar and cost weight (tests,
    backtests); otherwise both are drawn from the env's `np_random`.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012  (gymnasium's Env declares it an attribute)

    def __init__(
        self,
        market: MarketData,
        config: EnvConfig = EnvConfig(),
        include_bar_index: bool = False,
        include_market: bool = True,
    ):
        super().__init__()
        config.validate()
        self.config = config
        self.execution = Execution.of(config, market.epoch_bar)
        self.market = market
        self.include_bar_index = include_bar_index
        self.observation_space = market.observation_space(include_bar_index, include_market)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.w_cost_low, self.w_cost_high = config.w_cost_low, config.w_cost_high
        self._source = market.source.cpu().numpy()  # (T, F) float32
        self._log_returns = market.log_returns.cpu().numpy()  # (T,) float64
        self._length, self._n_starts = market.episode_layout(config.episode_length)
        self._bar = market.start
        self._steps_left = self._length
        self._position = np.float32(0.0)
        self._w_cost = np.float32(config.w_cost_low)

    def set_w_cost_range(self, low: float, high: float) -> None:
        """Widen or move the w_cost range; new episodes draw from it (the MORL curriculum calls this)."""
        check_w_cost_range(low, high)
        self.w_cost_low, self.w_cost_high = low, high

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = options or {}
        self._bar = int(options.get("start", self.market.start + self.np_random.integers(self._n_starts)))
        if not self.market.start <= self._bar < self.market.start + self._n_starts:
            raise ConfigError(
                f"reset start bar {self._bar} is outside [{self.market.start}, "
                f"{self.market.start + self._n_starts - 1}]: pick a start whose episode fits the slice"
            )
        self._w_cost = np.float32(options.get("w_cost", self.np_random.uniform(self.w_cost_low, self.w_cost_high)))
        self._position = np.float32(0.0)
        self._steps_left = self._length
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        new_position = self.execution.position_numpy(
            np.asarray(action, dtype=np.float32).reshape(-1)[:1], np.array([self._position]), np.array([self._bar])
        )[0]
        new64 = np.float64(new_position)
        pnl = new64 * self._log_returns[self._bar]
        cost = np.float64(self._w_cost) * self.config.fee * np.abs(new64 - np.float64(self._position))
        reward = np.float32((pnl - cost) * self.config.reward_scale)
        self._position = new_position
        self._bar += 1
        self._steps_left -= 1
        # The market goes on after the last step: the episode end is a time limit (truncated), never terminal.
        return self._observation(), float(reward), False, self._steps_left == 0, {"pnl": pnl, "cost": cost}

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {
            MARKET: self._source[self._bar - self.market.window + 1 : self._bar + 1].copy(),  # (window, F)
            POSITION: np.array([self._position], dtype=np.float32),
            W_COST: np.array([self._w_cost], dtype=np.float32),
        }
        if not observes_market(self.observation_space):
            del obs[MARKET]
        if self.include_bar_index:
            obs[BAR_INDEX] = np.array([self._bar], dtype=np.float32)
        return obs
