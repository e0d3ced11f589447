"""`BatchCryptoEnv`: n trading episodes stepped together in torch, an SB3 `VecEnv`.

All state (bar, position, w_cost, steps left) is a tensor on the market data's device, and a step is a
handful of vectorized ops plus one gather of the (n, window, F) observation windows into a preallocated
buffer: no Python loop over envs (only over the few envs whose episode just ended, to fill SB3's infos).

Observation buffers are DOUBLE-BUFFERED: step k writes into host buffer k % 2 and returns numpy views of it
(no copy). SB3's `OffPolicyAlgorithm.collect_rollouts` keeps `_last_obs` (step k-1) and stores
(`_last_obs`, `new_obs`) in the replay buffer, so the two most recent observations must not share memory;
nothing in SB3 reads an observation older than that. Callers that keep observations longer must copy them.
On CUDA the windows are gathered on the GPU and copied once per key into pinned host buffers.

Episode ends are time limits, never true terminals (the market goes on): done envs carry
`infos[i]["TimeLimit.truncated"] = True` and `infos[i]["terminal_observation"]` so SB3 bootstraps them.
Reward parts are not put in infos (1024 dicts of floats per step would cost more than the step): read the
tensors `last_pnl` and `last_cost` (unscaled, per env) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from cryptorl.config import EnvConfig, check_w_cost_range
from cryptorl.envs.execution import Execution
from cryptorl.envs.market import BAR_INDEX, MARKET, POSITION, W_COST, MarketData
from cryptorl.errors import ConfigError

TensorDict = dict[str, torch.Tensor]


class BatchCryptoEnv(VecEnv):
    """`n_envs` independent `CryptoTradingEnv` episodes on `market.device` (or `device`).

    `stagger_resets`: after `reset()` each env's FIRST episode gets a random length in [1, episode_length], so
    that episode ends (and their terminal-observation work) spread over steps instead of all envs ending on
    the same step forever; later episodes have the full length. The shortened episodes are time limits,
    which SB3 bootstraps, so they bias nothing. `reset_to` never staggers.
    """

    render_mode = None  # VecEnv.__init__ asks every env for it

    def __init__(
        self,
        market: MarketData,
        n_envs: int,
        config: EnvConfig = EnvConfig(),
        device: str | torch.device | None = None,
        include_bar_index: bool = False,
        stagger_resets: bool = True,
        seed: int | None = None,
        include_market: bool = True,
    ):
        config.validate()
        self.config = config
        self.market = market if device is None else market.to(device)
        self.execution = Execution.of(config, self.market.epoch_bar)
        self.device = self.market.device
        self.stagger_resets = stagger_resets
        self.w_cost_low, self.w_cost_high = config.w_cost_low, config.w_cost_high
        self._length, self._n_starts = self.market.episode_layout(config.episode_length)
        self._generator = torch.Generator(device=self.device)
        self._space = self.market.observation_space(include_bar_index, include_market)  # (the Dict, typed)
        super().__init__(n_envs, self._space, gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
        self.seed(seed)

        self._bars = torch.full((n_envs,), self.market.start, dtype=torch.long, device=self.device)
        self._positions = torch.zeros(n_envs, dtype=torch.float32, device=self.device)
        self._w_costs = torch.full((n_envs,), self.w_cost_low, dtype=torch.float32, device=self.device)
        self._steps_left = torch.full((n_envs,), self._length, dtype=torch.long, device=self.device)
        self._actions = torch.zeros(n_envs, dtype=torch.float32, device=self.device)
        # The position each env took at the last step (before any episode reset), and the unscaled reward parts:
        # position * log-return and w_cost * fee * |Δposition|.
        self.last_positions = torch.zeros(n_envs, dtype=torch.float32, device=self.device)
        self.last_pnl = torch.zeros(n_envs, dtype=torch.float64, device=self.device)
        self.last_cost = torch.zeros(n_envs, dtype=torch.float64, device=self.device)

        on_gpu = self.device.type != "cpu"
        self._host = [self._allocate(n_envs, torch.device("cpu"), pin=on_gpu) for _ in range(2)]
        self._host_numpy = [{key: tensor.numpy() for key, tensor in host.items()} for host in self._host]
        self._staging = self._allocate(n_envs, self.device) if on_gpu else None
        self._flip = 0

    # --- torch-side state, for the compact replay buffer and metrics -------------------------------------

    def current_bars(self) -> torch.Tensor:
        """(n_envs,) long: each env's current decision bar (a copy)."""
        return self._bars.clone()

    @property
    def positions(self) -> torch.Tensor:
        """(n_envs,) float32: the position each env holds now (a copy)."""
        return self._positions.clone()

    @property
    def w_costs(self) -> torch.Tensor:
        """(n_envs,) float32: each env's episode cost weight (a copy)."""
        return self._w_costs.clone()

    def set_w_cost_range(self, low: float, high: float) -> None:
        """Move the w_cost range; episodes that start from now on draw from it (the MORL curriculum calls this)."""
        check_w_cost_range(low, high)
        self.w_cost_low, self.w_cost_high = low, high

    # --- VecEnv ------------------------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        self._start_episodes(torch.arange(self.num_envs, device=self.device))
        if self.stagger_resets:
            self._steps_left = torch.randint(
                1, self._length + 1, (self.num_envs,), generator=self._generator, device=self.device
            )
        return self._write_observation()

    def reset_to(self, starts: torch.Tensor, w_costs: torch.Tensor) -> dict[str, np.ndarray]:
        """Start every env's episode at the given bars (n_envs,) with the given cost weights (n_envs,)."""
        starts = torch.as_tensor(starts, dtype=torch.long, device=self.device)
        first, last = self.market.start, self.market.start + self._n_starts - 1
        if starts.shape != (self.num_envs,) or bool(((starts < first) | (starts > last)).any()):
            raise ConfigError(
                f"reset_to needs {self.num_envs} start bars in [{first}, {last}] (episodes must "
                f"fit the slice); got shape {tuple(starts.shape)}, range "
                f"[{int(starts.min())}, {int(starts.max())}]"
            )
        self._bars.copy_(starts)
        self._w_costs.copy_(torch.as_tensor(w_costs, dtype=torch.float32))
        self._positions.zero_()
        self._steps_left.fill_(self._length)
        return self._write_observation()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions.copy_(torch.as_tensor(actions, dtype=torch.float32).reshape(self.num_envs))

    def step_wait(self) -> VecEnvStepReturn:
        new_positions = self.execution.position(self._actions, self._positions, self._bars)  # (n,) float32
        self.last_positions = new_positions
        new64 = new_positions.double()
        # Same float64 arithmetic, in the same order, as CryptoTradingEnv.step: rewards agree bitwise.
        self.last_pnl = new64 * self.market.log_returns[self._bars]
        self.last_cost = self._w_costs.double() * self.config.fee * (new64 - self._positions.double()).abs()
        rewards = ((self.last_pnl - self.last_cost) * self.config.reward_scale).float()  # (n,)
        self._positions.copy_(new_positions)
        self._bars += 1
        self._steps_left -= 1

        dones = (self._steps_left == 0).cpu().numpy()  # (n,) bool
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            ended = torch.as_tensor(np.flatnonzero(dones), device=self.device)
            self._record_terminal(ended, infos)
            self._start_episodes(ended)
        return self._write_observation(), rewards.cpu().numpy(), dones, infos

    def close(self) -> None:
        """Nothing to release: no subprocesses, no files."""

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Reseed the one generator that draws every env's start bars and w_costs (effective immediately)."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._generator.manual_seed(seed)
        return [seed] * self.num_envs

    # Attributes and methods are shared by all envs (there is one env object), so each call acts once and
    # answers once per requested index, as SB3 expects.

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ConfigError(
                f"set_attr({attr_name!r}) on a subset of envs: BatchCryptoEnv attributes are shared "
                "by all envs, call it without indices"
            )
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    # --- internals ---------------------------------------------------------------------------------------

    def _start_episodes(self, envs: torch.Tensor) -> None:
        """New episodes for `envs` (k,) long: random start bars and w_costs, flat position, full length."""
        k = envs.shape[0]
        draw: dict[str, Any] = {"generator": self._generator, "device": self.device}
        self._bars[envs] = self.market.start + torch.randint(self._n_starts, (k,), **draw)
        self._w_costs[envs] = torch.empty(k, device=self.device).uniform_(
            self.w_cost_low, self.w_cost_high, generator=self._generator
        )
        self._positions[envs] = 0.0
        self._steps_left[envs] = self._length

    def _record_terminal(self, ended: torch.Tensor, infos: list[dict[str, Any]]) -> None:
        """Put the final observation of each ended episode into its info dict, as SB3's VecEnvs do."""
        final = self._allocate(ended.shape[0], self.device)
        self._fill(final, ended)
        final_numpy = {key: tensor.cpu().numpy() for key, tensor in final.items()}  # (k, ...) each
        for row, env in enumerate(ended.tolist()):
            infos[env] = {
                "terminal_observation": {key: array[row] for key, array in final_numpy.items()},
                "TimeLimit.truncated": True,
            }

    def _write_observation(self) -> dict[str, np.ndarray]:
        """Fill the next host buffer (via the device staging buffer on GPU) and return numpy views of it."""
        host = self._host[self._flip]
        self._fill(self._staging if self._staging is not None else host)
        if self._staging is not None:
            for key, tensor in host.items():
                tensor.copy_(self._staging[key])
        observation = dict(self._host_numpy[self._flip])
        self._flip ^= 1
        return observation

    def _fill(self, out: TensorDict, envs: torch.Tensor | None = None) -> None:
        """Write the observations of `envs` (all when None) into `out`: one window gather + 2-3 tiny copies."""
        bars = self._bars if envs is None else self._bars[envs]
        if MARKET in out:  # absent when training from an encoder cache: then a step gathers no window
            self.market.windows(bars, out=out[MARKET])
        out[POSITION].view(-1).copy_(self._positions if envs is None else self._positions[envs])
        out[W_COST].view(-1).copy_(self._w_costs if envs is None else self._w_costs[envs])
        if BAR_INDEX in out:
            out[BAR_INDEX].view(-1).copy_(bars)

    def _allocate(self, n_rows: int, device: torch.device, pin: bool = False) -> TensorDict:
        """Observation tensors for `n_rows` envs, one per key of the observation space."""
        return {
            key: torch.empty((n_rows, *(space.shape or ())), dtype=torch.float32, device=device, pin_memory=pin)
            for key, space in self._space.spaces.items()
        }
