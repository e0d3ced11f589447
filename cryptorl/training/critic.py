"""`ExactCostPolicy`: TQC's policy whose critics add the trade's exact immediate cost instead of learning it.

Q(s, a) = r_pnl + γ·E[...] - w_cost·fee·scale·|p(a) - position|, p(a) the position the action takes under
the env's execution rule (a itself by default): the last term is known exactly from the observation
(position, w_cost, bar) and the action, so the critic networks learn only the rest and add it. A
network that has to learn w_cost·|a - position| from noisy rewards learns an average cost whatever w_cost
is (measured: Q's cost slope at w_cost 2 was 1.5x its slope at w_cost 0, not the true "0 vs 0.4"), and an
actor following it trades the same at every cost weight: the `cost_blind` failure. With the exact term the
actor's gradient carries -w_cost·fee·scale·sign(a - position) itself, at every update.

Subtracting a deterministic term from every quantile is exact for a distributional critic: the cost is
the same in every outcome of (s, a). TD targets use the real rewards, which include the real cost.
"""

from __future__ import annotations

from typing import Any

import torch
from sb3_contrib.tqc.policies import Critic, MultiInputPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from cryptorl.envs.execution import Execution
from cryptorl.envs.market import BAR_INDEX, POSITION, W_COST


class ExactCostCritic(Critic):
    """TQC's quantile critics minus the exact immediate cost, `cost_per_unit` = fee * reward scale, of the
    position the action takes under `execution` (the env's rule)."""

    def __init__(self, *args: Any, cost_per_unit: float, execution: Execution = Execution(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cost_per_unit = cost_per_unit
        self.execution = execution

    def learned(self, obs: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """What the networks learned, without the exact cost: (B, n_critics, n_quantiles)."""
        return super().forward(obs, action)

    def forward(self, obs: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:  # type: ignore[override]  # dict observations only
        quantiles = self.learned(obs, action)  # (B, n_critics, n_quantiles)
        bars = obs[BAR_INDEX].long() if BAR_INDEX in obs else None  # (B, 1)
        taken = self.execution.position(action, obs[POSITION], bars)  # (B, 1)
        cost = obs[W_COST] * self.cost_per_unit * (taken - obs[POSITION]).abs()  # (B, 1)
        return quantiles - cost.unsqueeze(-1)


class ExactCostPolicy(MultiInputPolicy):
    """`MultiInputPolicy` whose critic and target critic are `ExactCostCritic`s (pass `cost_per_unit` and the
    env's `execution`)."""

    def __init__(self, *args: Any, cost_per_unit: float, execution: Execution = Execution(), **kwargs: Any) -> None:
        self.cost_per_unit = cost_per_unit  # read by make_critic, which the parent's __init__ calls
        self.execution = execution
        super().__init__(*args, **kwargs)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ExactCostCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return ExactCostCritic(**critic_kwargs, cost_per_unit=self.cost_per_unit, execution=self.execution).to(
            self.device
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            **super()._get_constructor_parameters(),
            "cost_per_unit": self.cost_per_unit,
            "execution": self.execution,
        }
