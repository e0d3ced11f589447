"""Policies the backtest can run: the trained agent and the baselines it must beat.

A policy maps a batch of env observations, and the decision bars they were taken at, to target positions.
Baselines read the market through `MarketData` (indexed by bar), never through the observation, so they
work whatever keys the env emits; only `probe` also reads the held position and w_cost, which every env
observation carries. Every baseline is causal: its position at bar t uses bars <= t only. `probe` and
`best_constant` are fitted on the TRAIN slice and never see the bars they are backtested on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cryptorl.audit.metrics import compute_metrics
from cryptorl.audit.probe import RidgeProbe, decision_rows, trading_probe
from cryptorl.envs import POSITION, W_COST, MarketData
from cryptorl.errors import ConfigError

VALID_SPECS = "trained, buy_and_hold, flat, momentum, constant:X (-1 <= X <= 1), random, probe, best_constant"
FITTED_SPECS = ("probe", "best_constant")  # fitted on the train slice
CONSTANT_GRID = np.round(np.linspace(-1.0, 1.0, 21), 1)  # best_constant's candidates, step 0.1


class Policy(Protocol):
    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        """Target positions (n,) in [-1, 1] for n envs whose decision bars are `bars` (n,)."""


class TrainedPolicy:
    """An SB3 model acting deterministically (the mean action: what the agent would trade)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.observation_keys = frozenset(model.observation_space.spaces)

    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        missing = self.observation_keys - observation.keys()
        if missing:
            raise ConfigError(
                f"the trained model reads observation keys {sorted(missing)} that the backtest env "
                f"does not emit: backtest with include_market=True for a model trained without "
                f"the encoder cache"
            )
        actions, _ = self.model.predict(observation, deterministic=True)  # (n, 1)
        return actions.reshape(-1)


@dataclass(frozen=True)
class ConstantPolicy:
    """Always the same position: 0 is flat, +1 is buy and hold."""

    position: float

    def __post_init__(self) -> None:
        if not -1.0 <= self.position <= 1.0:
            raise ConfigError(
                f"constant position {self.position} is outside [-1, 1]: use a policy spec among {VALID_SPECS}"
            )

    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        return np.full(len(bars), self.position, dtype=np.float32)


class MomentumPolicy:
    """Time-series momentum: the sign of the log-return over the `lookback` bars ending at bar t.

    That is log(close[t] / close[t-lookback]) = sum(log_returns[t-lookback:t]); log_returns[t] is
    bar t's FUTURE return and is never read. Near the span's start the window is shortened to bar 0.
    """

    def __init__(self, market: MarketData, lookback: int = 24) -> None:
        if lookback < 1:
            raise ConfigError(f"momentum lookback={lookback}: use at least 1 bar, e.g. 24")
        log_returns = market.log_returns.cpu().numpy()  # (T,)
        self.lookback = lookback
        # past[t] = sum(log_returns[max(0, t-lookback):t]): pad `lookback` zeros in front, sum each window.
        padded = np.concatenate([np.zeros(lookback), log_returns[:-1]])  # (T - 1 + lookback,)
        past = np.lib.stride_tricks.sliding_window_view(padded, lookback).sum(axis=1)  # (T,)
        self.signal = np.sign(past).astype(np.float32)  # (T,)

    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        return self.signal[np.asarray(bars, dtype=np.int64)]


class PositionsPolicy:
    """Positions given per span bar in advance, e.g. a synthetic market's oracle (which knows its hidden state)."""

    def __init__(self, positions: np.ndarray) -> None:
        self.positions = np.clip(np.asarray(positions, dtype=np.float32), -1.0, 1.0)  # (T,)

    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        return self.positions[np.asarray(bars, dtype=np.int64)]


@dataclass
class RandomPolicy:
    """Uniform positions in [-1, 1], seeded: the no-skill, high-turnover reference."""

    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, len(bars)).astype(np.float32)


class ForecastPolicy:
    """Trades a per-bar forecast f of the return ahead (of the next h bars), paying the fee only when f beats it.

    Moving from a held q to p earns (p - q)·f over the bars f covers and costs w_cost·fee·|p - q| once:
    linear in p on each side of q, so the best p in [-1, 1] is sign(f) when |f| > w_cost·fee and q (no
    trade) otherwise (cryptorl.audit.probe.probe_positions at w_cost 1). At w_cost 0 it follows sign(f) bar
    by bar, and a higher w_cost widens the no-trade band, as a cost-aware agent should.
    """

    def __init__(self, forecast: np.ndarray, fee: float) -> None:
        self.forecast = np.asarray(forecast, np.float64)  # (T,) per span bar, from bars <= t
        self.fee = fee

    def __call__(self, observation: dict[str, np.ndarray], bars: np.ndarray) -> np.ndarray:
        held = np.asarray(observation[POSITION], np.float32).reshape(-1)  # (n,)
        band = self.fee * np.asarray(observation[W_COST], np.float64).reshape(-1)  # (n,)
        forecast = self.forecast[np.asarray(bars, dtype=np.int64)]  # (n,)
        return np.where(np.abs(forecast) > band, np.sign(forecast), held).astype(np.float32)


class ProbePolicy(ForecastPolicy):
    """`ForecastPolicy` on the signal probe's forecast, from source[t] only. The audit's `probe` baseline trades
    the horizon that did best on train (`trading_probe`)."""

    def __init__(self, probe: RidgeProbe, market: MarketData, fee: float) -> None:
        super().__init__(probe.forecast(market.source.cpu().numpy()), fee)


@dataclass(frozen=True)
class BestConstant:
    """The constant position with the best train net Sharpe: what "only learned the drift" earns."""

    position: float
    train_sharpe: float


def best_constant(train: MarketData, fee: float) -> BestConstant:
    """The CONSTANT_GRID position with the best net Sharpe over `train`'s decision bars (entry fee once).

    A constant position's net returns are p·(log-return - fee at entry): its Sharpe does not depend on
    |p|, so every size of one sign ties; ties go to the best train net log-return (the full size when
    the drift beats the fee, flat when nothing has a positive Sharpe).
    """
    _, returns = decision_rows(train, "train")
    metrics = [compute_metrics(np.full(len(returns), p), returns, fee, train.bars_per_year) for p in CONSTANT_GRID]
    best_sharpe = max(m.sharpe for m in metrics)
    # Same-sign sizes differ only by rounding (~1e-15); real differences between signs are far larger.
    ties = [i for i, m in enumerate(metrics) if m.sharpe >= best_sharpe - 1e-9 * max(1.0, abs(best_sharpe))]
    best = max(ties, key=lambda i: metrics[i].net_log_return)
    return BestConstant(float(CONSTANT_GRID[best]), metrics[best].sharpe)


def parse_policy_spec(spec: str) -> tuple[str, float | None]:
    """(name, constant position or None) of a valid spec; anything else raises a one-line ConfigError."""
    name, _, argument = spec.strip().partition(":")
    if name == "constant" and argument:
        try:
            position = float(argument)
        except ValueError:
            raise ConfigError(f"invalid policy spec {spec!r}: X must be a number; use one of {VALID_SPECS}") from None
        return name, ConstantPolicy(position).position  # the policy checks its range
    if name not in ("trained", "buy_and_hold", "flat", "momentum", "random", *FITTED_SPECS) or argument:
        raise ConfigError(f"unknown policy spec {spec!r}: use one of {VALID_SPECS}")
    return name, None


def make_policy(
    spec: str,
    *,
    market: MarketData,
    model: Any = None,
    seed: int = 0,
    train: MarketData | None = None,
    fee: float | None = None,
) -> Policy:
    """The policy named by `spec` (see VALID_SPECS); `probe` and `best_constant` need `train` and `fee`."""
    name, position = parse_policy_spec(spec)
    if name == "trained" and model is None:
        raise ConfigError("policy spec 'trained' needs a trained model: pass model=load_trained_model(path)")
    if name in FITTED_SPECS:
        if train is None or fee is None:
            raise ConfigError(
                f"policy spec {name!r} is fitted on the train slice: pass train=<the train MarketData> "
                f"and fee=env_config.fee"
            )
        return _fitted_policy(name, market, train, fee)
    makers: dict[str, Callable[[], Policy]] = {
        "trained": lambda: TrainedPolicy(model),
        "constant": lambda: ConstantPolicy(position or 0.0),  # parse_policy_spec gives constant its position
        "buy_and_hold": lambda: ConstantPolicy(1.0),
        "flat": lambda: ConstantPolicy(0.0),
        "momentum": lambda: MomentumPolicy(market),
        "random": lambda: RandomPolicy(seed),
    }
    return makers[name]()


def _fitted_policy(name: str, market: MarketData, train: MarketData, fee: float) -> Policy:
    """A baseline fitted on the train slice: the probe (at its best train horizon) or the best constant."""
    if name == "probe":
        return ProbePolicy(trading_probe(train, fee), market, fee)
    return ConstantPolicy(best_constant(train, fee).position)
