"""A synthetic market with a planted, exactly known signal: can the training stack learn at all?

A hidden regime s_t in {-1, +1} persists for `mean_regime_bars` on average (a two-state Markov chain),
and the next bar's log-return is

    r_{t+1} = ar_coefficient * r_t + volatility * (edge * s_t + fast_edge * z_t + eps_{t+1}),   eps ~ N(0, 1)

where z_t in {-1, +1} is a fast signal drawn afresh every bar and shown in `fast_column`. With
fast_edge > edge, free trading (w_cost 0) follows z_t and turns over ~1 unit a bar; once the fee of a flip
exceeds what z earns in one bar, holding s_t is best, so the cost-optimal turnover falls with w_cost: a
cost-conditioned agent trades less at a higher cost weight, a cost-blind one does not.

One observation column (`signal_column` of the 50 "technical" columns) shows s_t + signal_noise * eta_t
at bar t (eta ~ N(0, 1) i.i.d.): a single bar's reading is unreliable, the recent window is not, so an
agent that acts on every bar's reading trades a lot on noise, and a cost-aware one waits. The other
technical columns are independent N(0, 1) noise and the 5 context columns are the one-hot/entropy shape
of an unrelated regime chain, so FiLM has something to read and nothing to gain from it. Everything at
bar t depends on bars <= t only, like the real features.

With `ar_coefficient` (phi) > 0 the edge is in the returns themselves, as in a real market: column
`return_column` shows the last return r_t / volatility (what a `ret_1` feature shows), and
E[r_{t+1} | bars <= t] = phi * r_t lasts one bar, so it pays only where |phi * r_t| beats the fee: a lever that
only cuts turnover fails there, one that trades when it pays does not.

The oracle (`oracle_policy`) knows the hidden state. On the regime market it holds s_t (hit rate Phi(edge);
the regime lasts ~48 bars, so holding it beats any one-bar rule); on a market with a one-bar edge it trades the
exact expectation E[r_{t+1} | F_t] whenever that beats the fee (w_cost * fee) and holds otherwise, the fee-aware
rule of `ForecastPolicy`. Its net result is computed from the bars with the same fee and dynamics as any backtest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryptorl.audit.policies import ForecastPolicy, Policy, PositionsPolicy
from cryptorl.config import OBSERVATION_WINDOW
from cryptorl.envs.market import MarketData
from cryptorl.errors import ConfigError

N_TECHNICAL, N_CONTEXT = 50, 5


@dataclass(frozen=True)
class PlantedSignalConfig:
    """The synthetic market. Defaults: BTC-like hourly volatility, an oracle net Sharpe of about 9."""

    n_bars: int = 6_000
    volatility: float = 0.007  # hourly log-return std (BTC 2018-2023: 0.5-1 %)
    edge: float = 0.1  # drift per bar in units of volatility: hit rate Phi(0.1) = 54 %
    mean_regime_bars: float = 48.0  # the oracle trades 2 units every ~48 bars: at edge 0.2 fees cost it ~3 %
    signal_noise: float = 0.0  # std of the noise on the observed signal column (the regime is ±1)
    fast_edge: float = 0.0  # drift per bar of the fast signal z_t, in units of volatility (0: none)
    fast_column: int = 1
    signal_column: int = 0
    ar_coefficient: float = 0.0  # r_{t+1} carries this times r_t (0: none)
    return_column: int = 2  # shows r_t / volatility when ar_coefficient > 0
    train_fraction: float = 0.6  # then eval and test share the rest equally
    seed: int = 0

    def validate(self) -> PlantedSignalConfig:
        if self.n_bars < 10 * OBSERVATION_WINDOW:
            raise ConfigError(f"synthetic n_bars={self.n_bars}: use at least {10 * OBSERVATION_WINDOW} bars")
        columns = (self.signal_column, self.fast_column, self.return_column)
        if not all(0 <= column < N_TECHNICAL for column in columns) or len(set(columns)) < 3:
            raise ConfigError(
                f"synthetic signal_column={self.signal_column}, fast_column={self.fast_column}, "
                f"return_column={self.return_column}: use three different columns in 0..{N_TECHNICAL - 1}"
            )
        if not 0 <= self.ar_coefficient < 1:
            raise ConfigError(
                f"synthetic ar_coefficient={self.ar_coefficient}: use a value in [0, 1) (a stationary AR(1))"
            )
        if (
            self.mean_regime_bars < 1
            or self.volatility <= 0
            or self.signal_noise < 0
            or not 0 < self.train_fraction < 1
        ):
            raise ConfigError(
                "synthetic market: use mean_regime_bars >= 1, volatility > 0, signal_noise >= 0 and "
                "train_fraction in (0, 1)"
            )
        return self


@dataclass(frozen=True)
class PlantedSignalMarket:
    """The whole span as env data, its slices and the hidden regime (the oracle's positions)."""

    market: MarketData  # slice = train
    slices: dict[str, tuple[int, int]]  # train / eval / test, [start, stop) into the span
    regime: np.ndarray  # (T,) float32 in {-1, +1}: s_t
    expected_return: np.ndarray  # (T,) float64 E[r_{t+1} | bars <= t and the hidden state]
    config: PlantedSignalConfig

    def slice(self, name: str) -> MarketData:
        return self.market.with_slice(*self.slices[name])

    def oracle_positions(self, name: str) -> np.ndarray:
        """(T_slice - 1,) the regime oracle's position at each decision bar of the slice: s_t."""
        start, stop = self.slices[name]
        return self.regime[start : stop - 1]

    def oracle_policy(self, fee: float) -> Policy:
        """The oracle: holds s_t on the regime market; trades the exact one-bar expectation past the fee (at the
        observed w_cost) when the market has a one-bar edge (`ar_coefficient` or `fast_edge`)."""
        if self.config.ar_coefficient or self.config.fast_edge:
            return ForecastPolicy(self.expected_return, fee)
        return PositionsPolicy(self.regime)


def planted_signal_market(config: PlantedSignalConfig = PlantedSignalConfig()) -> PlantedSignalMarket:
    """Draw the synthetic market of `config` (same seed, same bars)."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    regime = _markov_signs(rng, config.n_bars, config.mean_regime_bars)  # (T,)
    noise = rng.standard_normal(config.n_bars)
    technical = rng.standard_normal((config.n_bars, N_TECHNICAL)).astype(np.float32)  # (T, 50)
    technical[:, config.signal_column] = regime + config.signal_noise * rng.standard_normal(config.n_bars)
    context = _context_columns(_markov_signs(rng, config.n_bars, 200.0))  # (T, 5), unrelated to returns
    fast = rng.choice([-1.0, 1.0], config.n_bars)  # (T,) z_t, drawn last: markets without it keep their bars
    if config.fast_edge:
        technical[:, config.fast_column] = fast
    drift = config.edge * regime + config.fast_edge * fast  # (T,) expected r_{t+1} / volatility, but for AR
    innovations = config.volatility * (drift[:-1] + noise[1:])  # (T-1,)
    log_returns = _autoregressive(innovations, config.ar_coefficient)  # r_{t+1} = phi r_t + innovation, (T-1,)
    last_return = np.concatenate([[0.0], log_returns])  # (T,) r_t: the return into bar t, known at bar t
    if config.ar_coefficient:
        technical[:, config.return_column] = last_return / config.volatility
    expected = config.ar_coefficient * last_return + config.volatility * drift  # (T,) E[r_{t+1} | F_t]
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(log_returns)]))  # (T,)
    columns = tuple(f"noise_{i}" for i in range(N_TECHNICAL))
    columns = (*columns[: config.signal_column], "signal", *columns[config.signal_column + 1 :])
    if config.fast_edge:
        columns = (*columns[: config.fast_column], "fast_signal", *columns[config.fast_column + 1 :])
    if config.ar_coefficient:
        columns = (*columns[: config.return_column], "last_return", *columns[config.return_column + 1 :])
    columns = (*columns, *(f"context_{i}" for i in range(N_CONTEXT)))

    slices = _slices(config.n_bars, config.train_fraction)
    market = MarketData.from_arrays(
        np.concatenate([technical, context], axis=1), close, *slices["train"], columns=columns
    )
    return PlantedSignalMarket(market, slices, regime.astype(np.float32), expected, config)


def _autoregressive(innovations: np.ndarray, phi: float) -> np.ndarray:
    """x_k = phi * x_{k-1} + innovations_k from x_{-1} = 0 (the innovations themselves when phi is 0)."""
    if not phi:
        return innovations
    out = np.empty_like(innovations)
    previous = 0.0
    for k, innovation in enumerate(innovations):
        previous = phi * previous + innovation
        out[k] = previous
    return out


def _markov_signs(rng: np.random.Generator, n_bars: int, mean_run: float) -> np.ndarray:
    """(n_bars,) float64 in {-1, +1}: a sign that flips with probability 1 / mean_run per bar."""
    flips = rng.random(n_bars) < 1.0 / mean_run
    flips[0] = False
    start = rng.choice([-1.0, 1.0])
    return start * np.where(np.cumsum(flips) % 2 == 0, 1.0, -1.0)


def _context_columns(signs: np.ndarray) -> np.ndarray:
    """(T, 5) float32 shaped like the HMM context: 4 state probabilities (2 used) and a normalised entropy."""
    context = np.zeros((len(signs), N_CONTEXT), dtype=np.float32)
    context[:, 0] = 0.9 * (signs > 0) + 0.05
    context[:, 1] = 0.9 * (signs < 0) + 0.05
    probabilities = context[:, :2]
    context[:, 4] = -(probabilities * np.log(probabilities)).sum(axis=1) / np.log(4.0)
    return context


def _slices(n_bars: int, train_fraction: float) -> dict[str, tuple[int, int]]:
    """Train / eval / test [start, stop) after a first full window, with a window-long purge between them."""
    first = OBSERVATION_WINDOW - 1
    usable = n_bars - first
    train_stop = first + int(usable * train_fraction)
    eval_stop = train_stop + (n_bars - train_stop) // 2
    purge = OBSERVATION_WINDOW
    return {"train": (first, train_stop), "eval": (train_stop + purge, eval_stop), "test": (eval_stop + purge, n_bars)}
