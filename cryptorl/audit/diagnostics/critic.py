"""Does the critic tell actions apart? Q(s, a) over a grid of positions on the sampled states.

A collapsed policy can be the actor's fault (it ignores a critic that ranks positions per state) or the
critic's (its Q is flat in a, or ranks the same position best everywhere, so the actor has nothing to
follow). The spread of Q across actions is compared with the critic's own uncertainty, the spread of its
quantiles: a difference between positions smaller than that noise floor is not a signal. Both are read
from what the critic networks LEARNED: an `ExactCostCritic` also adds the exact trading cost, which varies
across actions by construction and would credit the critic with a ranking it was handed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sb3_contrib import TQC

from cryptorl.audit.diagnostics.observations import (
    Observations,
    TensorObservations,
    as_tensors,
    batch_size,
    critic_quantiles,
    deterministic_actions,
)
from cryptorl.errors import ConfigError


@dataclass(frozen=True)
class CriticDiagnostics:
    """Q over the action grid; Q is the mean over critics and quantiles (what TQC's actor maximises)."""

    grid: list[float]  # n_actions positions, evenly spaced over [-1, 1]
    q_mean: list[float]  # Q(a) per grid point, mean over states (the curve to plot)
    q_p10: list[float]  # 10th / 90th percentile over states, per grid point
    q_p90: list[float]
    action_spread_mean: float  # mean over states of max_a Q - min_a Q, of the learned Q
    quantile_spread_mean: float  # noise floor: mean over states and grid of the std across all quantiles
    spread_ratio: float  # action_spread_mean / quantile_spread_mean (0.0 when the floor is 0)
    argmax_std: float  # std across states of argmax_a Q: ~0 means one best position everywhere
    argmax_mode: float  # the grid position that is argmax in most states
    argmax_mode_fraction: float  # share of states whose argmax is argmax_mode
    policy_argmax_gap: float  # mean |deterministic position - argmax_a Q|: does the actor follow its critic?


def critic_diagnostics(model: TQC, observations: Observations, n_actions: int = 21) -> CriticDiagnostics:
    """Q(s, a) for every sampled state s and every position a of an `n_actions`-point grid over [-1, 1]."""
    if model.action_space.shape != (1,) or n_actions < 2:
        raise ConfigError(
            f"critic_diagnostics needs a 1-D action space and n_actions >= 2 (got action shape "
            f"{model.action_space.shape}, n_actions={n_actions}): use a position-in-[-1, 1] model"
        )
    obs = as_tensors(model, observations)
    grid = np.linspace(-1.0, 1.0, n_actions)  # (G,) float64, so that the midpoint is exactly 0
    quantiles = q_grid(model, obs, grid)  # (N, G, K) K = n_critics * n_quantiles
    q = quantiles.mean(dim=-1).cpu().numpy()  # (N, G)
    learned = q_grid(model, obs, grid, learned_only=True)  # (N, G, K)
    learned_q = learned.mean(dim=-1).cpu().numpy()  # (N, G)
    noise = learned.std(dim=-1, unbiased=False).mean().item()
    best = grid[q.argmax(axis=1)]  # (N,)
    values, counts = np.unique(best, return_counts=True)
    positions = deterministic_actions(model, obs).flatten().cpu().numpy()  # (N,)
    spread = float((learned_q.max(axis=1) - learned_q.min(axis=1)).mean())
    return CriticDiagnostics(
        grid=grid.tolist(),
        q_mean=q.mean(axis=0).tolist(),
        q_p10=np.percentile(q, 10, axis=0).tolist(),
        q_p90=np.percentile(q, 90, axis=0).tolist(),
        action_spread_mean=spread,
        quantile_spread_mean=noise,
        spread_ratio=spread / noise if noise > 0 else 0.0,
        argmax_std=float(best.std()),
        argmax_mode=float(values[counts.argmax()]),
        argmax_mode_fraction=float(counts.max() / batch_size(obs)),
        policy_argmax_gap=float(np.abs(positions - best).mean()),
    )


def q_grid(model: TQC, observations: TensorObservations, grid: np.ndarray, learned_only: bool = False) -> torch.Tensor:
    """All quantiles of every critic, (N, G, n_critics * n_quantiles), at each action of `grid` (G,).

    One critic call per grid point over the N states: in market mode each call re-encodes the N windows,
    which keeps peak memory at one batch instead of N·G windows.
    """
    n = batch_size(observations)
    per_action = [
        critic_quantiles(model, observations, torch.full((n, 1), float(a), device=model.device), learned_only)
        for a in grid
    ]  # G x (N, n_critics, n_quantiles)
    return torch.stack(per_action, dim=1).flatten(start_dim=2)
