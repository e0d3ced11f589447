"""The execution rule: how the agent's action becomes the position it holds, shared by every consumer.

The action is a target position in [-1, 1]. Between the target and the position, three optional stages cut
how often and how much the policy trades (each off by default, and then the position is the target exactly):

1. no-trade band (Davis & Norman 1990, the optimal policy under proportional costs): the held position is
   clamped into [target - band, target + band], so a target that wobbles within the band trades nothing and
   one that leaves it trades only the excess;
2. partial adjustment (Gârleanu & Pedersen 2013): the position moves a fraction `rate` of the way from the
   held position to (1)'s;
3. decision interval: only bars whose index counted from the Unix epoch is a multiple of `interval` execute
   (with 1h bars and interval 4: 00:00, 04:00, ... UTC on every span); on the others the held position stays.

The market is exogenous, so the position (and so the reward) of ANY action at any state stays a known
function of (action, held position, bar): the batched and single envs step with it, the compact replay
computes its counterfactual rewards and next positions with it, the exact-cost critic adds its exact cost
and the backtest records the positions it gives (and so the audit, promotion and `signal`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryptorl.config import EnvConfig


@dataclass(frozen=True)
class Execution:
    """The rule's parameters (from `EnvConfig`): a picklable value the critic and the replay buffer keep."""

    band: float = 0.0  # half-width of the no-trade band around the target (0: off)
    rate: float = 1.0  # fraction of the way to the target moved per decision (1: all of it)
    interval: int = 1  # decide on bars that are multiples of this (1: every bar)
    epoch_bar: int = 0  # the span's row 0 counted from the epoch (MarketData.epoch_bar): bars are row indices

    @classmethod
    def of(cls, config: EnvConfig, epoch_bar: int = 0) -> Execution:
        return cls(config.no_trade_band, config.adjust_rate, config.decision_interval, epoch_bar)

    @property
    def is_identity(self) -> bool:
        """The position is the clamped action (today's rule, bit for bit)."""
        return self.band == 0.0 and self.rate == 1.0 and self.interval == 1

    def position(self, action: torch.Tensor, held: torch.Tensor, bars: torch.Tensor | None) -> torch.Tensor:
        """The position taken at `bars` (n,) from `held` (n,) for `action` (n,): float32 like the envs' positions.

        Each stage runs only when set, so the default rule returns the clamped action exactly.
        """
        position = action.clamp(-1.0, 1.0)  # (n,)
        if self.band > 0.0:
            position = torch.minimum(torch.maximum(held, position - self.band), position + self.band)
        if self.rate != 1.0:
            position = held + self.rate * (position - held)
        if self.interval > 1:
            if bars is None:
                raise ValueError("a decision interval needs the decision bars: pass bars (the bar_index key)")
            position = torch.where((bars + self.epoch_bar).remainder(self.interval) == 0, position, held)
        return position

    def position_numpy(self, action: np.ndarray, held: np.ndarray, bars: np.ndarray | None) -> np.ndarray:
        """`position` on float32 numpy arrays (n,), for the single env and the replay buffer."""
        bar_tensor = None if bars is None else torch.as_tensor(np.asarray(bars, dtype=np.int64))
        return self.position(
            torch.as_tensor(np.asarray(action, np.float32)), torch.as_tensor(np.asarray(held, np.float32)), bar_tensor
        ).numpy()
