"""Audit one trained agent on a market slice: backtests, network diagnostics, measurements and verdict.

Storage-free, so the segment's audit stage and the learnability harness judge agents by the very same
path: the stage adds loading, the data-level diagnostics (HMM, MAE, probe), plots and the report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import gymnasium as gym
import numpy as np
from sb3_contrib import TQC

from cryptorl.audit import diagnostics as diag
from cryptorl.audit.backtest import BacktestResult, backtest_many
from cryptorl.audit.policies import Policy, TrainedPolicy
from cryptorl.audit.report import HEADLINE_W_COST
from cryptorl.audit.verdict import Verdict, judge
from cryptorl.config import EnvConfig
from cryptorl.envs import MarketData, observes_market
from cryptorl.training.callbacks import current_ent_coef

AUDIT_W_COSTS = (0.0, 0.5, 1.0, 2.0)
N_STATES = 256  # sampled test states for the diagnostics
SATURATED_POSITION = 0.95
COST_BLIND_W_COSTS = (0.0, 2.0)  # turnover_ratio_w2_w0 = turnover at the second / at the first
NEVER_TRADES = 1e-6  # turnover per bar below which the ratio is not measured (the collapse rules judge it)


@dataclass(frozen=True)
class AgentAudit:
    """The audited policy's verdict, with everything it was read from."""

    results: dict[str, BacktestResult]  # "trained" and every baseline, per w_cost
    states: dict[str, np.ndarray]  # N_STATES sampled test observations
    state_positions: np.ndarray  # (N_STATES,) the audited policy's positions on them
    diagnostics: dict[str, dict]  # the trained agent's networks and entropy balance
    verdict: Verdict


def audit_agent(
    model: TQC,
    tensorboard_dir: str | Path,
    test: MarketData,
    env_config: EnvConfig,
    seed: int,
    baselines: dict[str, Policy],
    policy: str = "trained",
) -> AgentAudit:
    """Backtest the agent and `baselines` on `test`, diagnose the agent, judge `policy` (a key of either)."""
    policies: dict[str, Policy] = {"trained": TrainedPolicy(model), **baselines}
    results = backtest_many(
        policies, test, env_config, AUDIT_W_COSTS, include_market=observes_market(model.observation_space)
    )
    space = cast(gym.spaces.Dict, model.observation_space)  # every CryptoRL agent observes a Dict
    states = diag.sample_states(test, env_config, space, N_STATES, seed, AUDIT_W_COSTS)
    diagnostics = model_diagnostics(model, states, tensorboard_dir, results["trained"])
    state_positions = policies[policy](states, states["bar_index"].reshape(-1).astype(np.int64))  # (N_STATES,)
    verdict = judge(measurements(state_positions, results[policy], diagnostics if policy == "trained" else None))
    return AgentAudit(results, states, state_positions, diagnostics, verdict)


def model_diagnostics(
    model: TQC, states: dict[str, np.ndarray], tensorboard_dir: str | Path, trained: BacktestResult
) -> dict[str, dict]:
    """What the agent's networks do on sampled test states, and its training's entropy balance."""
    actions = diag.action_diagnostics(model, states)
    ent_coef = diag.read_scalar_trajectory(tensorboard_dir, "train/ent_coef").values
    reward = dataclasses.asdict(trained.runs[HEADLINE_W_COST].reward_stats)
    return {
        "actions": dataclasses.asdict(actions),
        "gsde": dataclasses.asdict(diag.gsde_diagnostics(model, states)),
        "entropy": dataclasses.asdict(
            diag.entropy_diagnostics(ent_coef or None, current_ent_coef(model), reward, actions.entropy_mean)
        ),
        "critic": dataclasses.asdict(diag.critic_diagnostics(model, states)),
        "attribution": dataclasses.asdict(diag.attribution(model, states)),
        "film": dataclasses.asdict(diag.film_diagnostics(model, states)),
    }


def measurements(
    state_positions: np.ndarray, result: BacktestResult, diagnostics: dict[str, dict] | None
) -> dict[str, float | None]:
    """The numbers the verdict rules read; network diagnostics only exist for the trained agent."""
    actor_share = diagnostics["attribution"]["actor_share"] if diagnostics else None
    return {
        "position_std_across_states": float(np.std(state_positions)),
        "position_std_over_test": float(np.std(result.runs[HEADLINE_W_COST].positions)),
        # SATURATED_POSITION is 0.95, not 0.99: gSDE clips the pre-tanh mean at ±2, so a pinned gSDE actor sits
        # at ±tanh(2) = ±0.964.
        "action_saturation": float(np.mean(np.abs(state_positions) > SATURATED_POSITION)),
        "actor_market_attribution": actor_share["technical"] + actor_share["hmm"] if actor_share else None,
        "q_spread_over_noise": diagnostics["critic"]["spread_ratio"] if diagnostics else None,
        "turnover_ratio_w2_w0": turnover_ratio(result),
    }


def turnover_ratio(result: BacktestResult) -> float | None:
    """Turnover at w_cost 2 over turnover at w_cost 0; None when either was not run or nothing trades at 0."""
    low, high = (result.runs.get(w_cost) for w_cost in COST_BLIND_W_COSTS)
    if low is None or high is None or low.metrics.turnover < NEVER_TRADES:
        return None
    return high.metrics.turnover / low.metrics.turnover
