"""Backtest a policy over a whole market slice with the training env's own dynamics.

One `BatchCryptoEnv` env per w_cost, all started flat at `market.start` with one episode covering the
slice: decision bars start..stop-2 (T = stop - start - 1 steps; bar t's reward needs close[t+1]). The
policy sees exactly the observations training produced (bar index always; the market window unless the
model reads the encoder cache), so a trained agent is evaluated on the inputs it learned from.

Two kinds of numbers come out, on purpose:
- `metrics` are money: net returns pay the REAL fee (`EnvConfig.fee`) on every position change, whatever
  w_cost was. w_cost is only an observation that conditions the agent's behaviour (how much it trades).
- `reward_stats` are the scaled rewards the env gave, reward_scale * (pnl - w_cost * fee * |Δposition|):
  their amplitude is what the critic had to fit, which the audit reports next to the money.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from cryptorl.audit.metrics import BacktestMetrics, compute_metrics, equity_curve, net_returns
from cryptorl.audit.policies import Policy, TrainedPolicy
from cryptorl.config import EnvConfig
from cryptorl.envs import BatchCryptoEnv, MarketData
from cryptorl.errors import ConfigError

DEFAULT_W_COSTS = (0.0, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class RewardStats:
    """Summary of the scaled rewards one backtest env gave."""

    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, rewards: np.ndarray) -> RewardStats:
        return cls(float(np.mean(rewards)), float(np.std(rewards)), float(np.min(rewards)), float(np.max(rewards)))


@dataclass(frozen=True)
class WCostRun:
    """One pass over the slice at one w_cost; arrays are per decision bar (T,)."""

    w_cost: float
    metrics: BacktestMetrics  # with the real fee
    positions: np.ndarray  # float32: the position held over bar t -> t+1 (what the env's execution rule took)
    targets: np.ndarray  # float32: the policy's target at bar t (clamped to [-1, 1]); the position by default
    net_returns: np.ndarray  # float64: positions * log-return - fee * |Δposition|
    equity: np.ndarray  # float64: exp(cumsum(net_returns)), from 1 before the first bar
    rewards: np.ndarray  # float32: the env's scaled rewards
    reward_pnl: np.ndarray  # float64: the env's unscaled pnl part, positions * log-return
    reward_cost: np.ndarray  # float64: the env's unscaled cost part, w_cost * fee * |Δposition|
    reward_stats: RewardStats


@dataclass(frozen=True)
class BacktestResult:
    """A policy's backtest over one slice, per w_cost."""

    runs: dict[float, WCostRun]  # in the order of the w_costs asked for
    bars: np.ndarray  # (T,) decision bars, indices into the MarketData span
    log_returns: np.ndarray  # (T,) float64 next-bar log-returns of those bars
    timestamps: np.ndarray | None  # (T,) the span's row labels of those bars, when it has them
    fee: float
    reward_scale: float
    bars_per_year: float


def backtest(
    policy: Policy,
    market: MarketData,
    env_config: EnvConfig,
    w_costs: Sequence[float] = DEFAULT_W_COSTS,
    *,
    include_market: bool,
) -> BacktestResult:
    """Run `policy` over [market.start, market.stop) once per w_cost; see the module docstring.

    `include_market` must match the model: False for a model trained from the encoder cache (attach the
    cache to its policy first), True otherwise. Baseline policies ignore the observation.
    """
    if not w_costs or min(w_costs) < 0 or len(set(w_costs)) != len(w_costs):
        raise ConfigError(
            f"backtest w_costs {tuple(w_costs)} must be distinct and >= 0, at least one: use e.g. {DEFAULT_W_COSTS}"
        )
    n_steps = market.stop - market.start - 1
    config = dataclasses.replace(env_config, episode_length=n_steps)
    env = BatchCryptoEnv(
        market, len(w_costs), config, include_bar_index=True, include_market=include_market, stagger_resets=False
    )
    bars = np.arange(market.start, market.start + n_steps)  # (T,)
    targets, positions, rewards, pnl, cost = _roll_out(policy, env, bars, w_costs)  # (T, n) each
    log_returns = market.log_returns[market.start : market.stop - 1].cpu().numpy()  # (T,)
    runs = {
        float(w_cost): _run(
            float(w_cost),
            positions[:, i],
            targets[:, i],
            rewards[:, i],
            pnl[:, i],
            cost[:, i],
            log_returns,
            env_config.fee,
            market.bars_per_year,
        )
        for i, w_cost in enumerate(w_costs)
    }
    timestamps = None if market.row_labels is None else np.asarray(market.row_labels)[bars]
    return BacktestResult(
        runs, bars, log_returns, timestamps, env_config.fee, env_config.reward_scale, market.bars_per_year
    )


def _roll_out(
    policy: Policy, env: BatchCryptoEnv, bars: np.ndarray, w_costs: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One episode per w_cost from bars[0], flat: (targets, positions, rewards, unscaled pnl, unscaled cost),
    (T, n) each."""
    n_steps, n_envs = len(bars), env.num_envs
    observation = env.reset_to(torch.full((n_envs,), int(bars[0])), torch.tensor(w_costs))
    targets = np.empty((n_steps, n_envs), dtype=np.float32)
    rewards = np.empty((n_steps, n_envs), dtype=np.float32)
    positions = torch.empty((n_steps, n_envs), dtype=torch.float32, device=env.device)  # copied to the host once
    pnl = torch.empty((n_steps, n_envs), dtype=torch.float64, device=env.device)
    cost = torch.empty_like(pnl)
    for step, bar in enumerate(bars):
        targets[step] = np.clip(np.asarray(policy(observation, np.full(n_envs, bar)), np.float32), -1, 1)
        next_observation, rewards[step], _, _ = env.step(targets[step].reshape(-1, 1))
        observation = cast(dict[str, np.ndarray], next_observation)  # a BatchCryptoEnv observes dicts
        # What the env took, read before the reset after the last step sends its positions back to flat.
        positions[step], pnl[step], cost[step] = env.last_positions, env.last_pnl, env.last_cost
    return targets, positions.cpu().numpy(), rewards, pnl.cpu().numpy(), cost.cpu().numpy()


def _run(
    w_cost: float,
    positions: np.ndarray,
    targets: np.ndarray,
    rewards: np.ndarray,
    pnl: np.ndarray,
    cost: np.ndarray,
    log_returns: np.ndarray,
    fee: float,
    bars_per_year: float,
) -> WCostRun:
    net = net_returns(positions, log_returns, fee)
    return WCostRun(
        w_cost,
        compute_metrics(positions, log_returns, fee, bars_per_year),
        positions,
        targets,
        net,
        equity_curve(net),
        rewards,
        pnl,
        cost,
        RewardStats.of(rewards),
    )


def backtest_many(
    policies: dict[str, Policy],
    market: MarketData,
    env_config: EnvConfig,
    w_costs: Sequence[float] = DEFAULT_W_COSTS,
    *,
    include_market: bool,
) -> dict[str, BacktestResult]:
    """`backtest` of each named policy over the same slice and w_costs: the trained agent under the env's
    execution rule (its actions are targets the rule turns into positions, as in training), every other policy
    holding its targets exactly (a baseline is judged as itself, whatever levers the agent trains with)."""
    exact = dataclasses.replace(env_config, no_trade_band=0.0, adjust_rate=1.0, decision_interval=1)
    return {
        name: backtest(
            policy,
            market,
            env_config if isinstance(policy, TrainedPolicy) else exact,
            w_costs,
            include_market=include_market,
        )
        for name, policy in policies.items()
    }


def metrics_table(results: dict[str, BacktestResult]) -> list[dict[str, Any]]:
    """One row per (policy, w_cost): every metric and the reward stats, as JSON-safe numbers.

    A non-finite value (an annualised return that overflows on a tiny slice) becomes None.
    """
    rows = []
    for name, result in results.items():
        for w_cost, run in result.runs.items():
            rewards = {f"reward_{key}": value for key, value in dataclasses.asdict(run.reward_stats).items()}
            values = {**dataclasses.asdict(run.metrics), **rewards}
            rows.append(
                {"policy": name, "w_cost": w_cost, **{key: _json_number(value) for key, value in values.items()}}
            )
    return rows


def _json_number(value: int | float) -> int | float | None:
    return value if isinstance(value, int) or math.isfinite(value) else None
