"""`UnifiedMetricsCallback`: one TensorBoard run with the rollout, policy and training signals that reveal
policy collapse (a constant position, saturated actions, no turnover, an entropy coefficient near 0).

Rollout statistics are accumulated on the env's device with a handful of vectorized torch ops per step (no
per-env Python, no host sync) and averaged over env-steps between two logs. The dump goes through the
model's own SB3 logger, so TQC's `train/critic_loss`, `train/actor_loss`, `train/ent_coef_loss` and the
`curriculum/*`, `eval/*` records of the other callbacks land in the same run at the same step axis. With
this callback, pass `log_interval=None` to `learn` so SB3 does not dump on its own every few episodes.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from stable_baselines3.common.callbacks import BaseCallback

from cryptorl.envs import BatchCryptoEnv
from cryptorl.errors import ConfigError
from cryptorl.training.callbacks.entropy import current_ent_coef

# Names of the accumulated rollout statistics, in the order of the accumulator vector; logged as rollout/<name>.
ROLLOUT_METRICS = (
    "pnl",
    "cost",
    "reward_scaled",
    "position_mean",
    "position_std",
    "position_abs_mean",
    "turnover",
    "action_saturation",
)
SATURATED = 0.99  # |action| above this counts as saturated (tanh-squashed actions pile up at ±1 on collapse)


class UnifiedMetricsCallback(BaseCallback):
    """Every `log_freq_steps` env-steps record `rollout/*` means, `train/ent_coef`, `train/log_std_mean`
    (gSDE) and dump the model's logger at `num_timesteps`.

    rollout/pnl, rollout/cost: unscaled per-env-step reward parts (position x log-return, w_cost x fee x
    |Δposition|); rollout/reward_scaled: the reward the agent sees; rollout/position_mean, position_std
    (across envs), position_abs_mean: the position held during the step; rollout/turnover: mean |Δposition|
    per step; rollout/action_saturation: fraction of actions with |a| > 0.99.
    """

    def __init__(self, log_freq_steps: int, verbose: int = 0):
        super().__init__(verbose)
        if log_freq_steps < 1:
            raise ConfigError(f"UnifiedMetricsCallback log_freq_steps={log_freq_steps!r}: use an integer >= 1")
        self.log_freq_steps = log_freq_steps
        self._sums = torch.zeros(len(ROLLOUT_METRICS), dtype=torch.float64)
        self._held = torch.zeros(0, dtype=torch.float64)  # (n_envs,) position before the current step
        self._n_steps = 0
        self._last_log_step = 0

    def _init_callback(self) -> None:
        env = self.training_env.unwrapped
        if not isinstance(env, BatchCryptoEnv):
            raise ConfigError(
                f"UnifiedMetricsCallback needs a BatchCryptoEnv training env ({type(env).__name__} lacks its reward "
                "parts and positions): train on cryptorl.envs.BatchCryptoEnv"
            )
        current_ent_coef(self.model)  # refuses algorithms without an entropy coefficient before training

    def _env(self) -> BatchCryptoEnv:
        env = self.training_env.unwrapped
        assert isinstance(env, BatchCryptoEnv)  # _init_callback
        return env

    def _on_training_start(self) -> None:
        env = self._env()
        self._held = env.positions.double()  # (n,) after the reset in learn()
        self._sums = torch.zeros(len(ROLLOUT_METRICS), dtype=torch.float64, device=self._held.device)
        self._n_steps = 0
        self._last_log_step = self.num_timesteps

    def _on_step(self) -> bool:
        self._accumulate()
        if self.num_timesteps // self.log_freq_steps > self._last_log_step // self.log_freq_steps:
            self._dump()
        return True

    def _on_training_end(self) -> None:
        if self._n_steps:
            self._dump()

    def _accumulate(self) -> None:
        env = self._env()
        actions = torch.as_tensor(self.locals["actions"], device=self._held.device).reshape(-1).double()  # (n,)
        held = env.last_positions.double()  # (n,) the position held during this step: what the execution rule took
        pnl, cost = env.last_pnl, env.last_cost  # (n,) float64, unscaled
        self._sums += torch.stack(
            [
                pnl.mean(),
                cost.mean(),
                (pnl - cost).mean() * env.config.reward_scale,
                held.mean(),
                held.std(correction=0),
                held.abs().mean(),
                (held - self._held).abs().mean(),
                (actions.abs() > SATURATED).double().mean(),
            ]
        )
        self._held = env.positions.double()  # envs whose episode just ended start flat
        self._n_steps += 1

    def _dump(self) -> None:
        step = self.model.num_timesteps
        for name, value in zip(ROLLOUT_METRICS, (self._sums / max(self._n_steps, 1)).tolist(), strict=True):
            self.logger.record(f"rollout/{name}", value)
        self.logger.record("train/ent_coef", current_ent_coef(self.model))
        if self.model.use_sde:
            log_std = cast(Any, self.model).actor.log_std  # gSDE's noise scale (TQC's actor; BaseAlgorithm has none)
            self.logger.record("train/log_std_mean", float(log_std.detach().mean().item()))
        self.logger.dump(step=step)
        self._sums.zero_()
        self._n_steps = 0
        self._last_log_step = step
