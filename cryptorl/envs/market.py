"""Market data and the episode rules shared by the batched env, the single env and the compact replay buffer.

`MarketData` holds one WFO segment's span as torch tensors on a device: `source` (T, F) are the per-bar
observation columns (50 scaled features, then 5 HMM context columns) and `log_returns` (T,) the next-bar
log-return of `close`. A slice [start, stop) of the span is where episodes live; the span begins at least
`window - 1` bars before `start`, so every decision bar t in the slice has a full window t-window+1..t.

Every consumer builds observations with `MarketData.windows(bars)`, one gather over an overlapping strided
view of `source`: each window is a contiguous block of memory, so the gather is one memcpy per window
(measured on 2 CPU cores: as fast as a plain `copy_` of the same size; gathering rows with a flattened
(n, 64) index, or `unfold`, is 2x slower).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from cryptorl.config import OBSERVATION_WINDOW, EnvConfig
from cryptorl.data.timeframe import HOURS_PER_YEAR, bars_per_year
from cryptorl.errors import ConfigError, DataError

# Observation keys, shared by the envs, the replay buffer and the feature extractors.
MARKET = "market"  # (window, F) float32: the last `window` bars of features + HMM context
POSITION = "position"  # (1,) float32 in [-1, 1]: the position held before this decision
W_COST = "w_cost"  # (1,) float32: this episode's transaction-cost weight

BAR_INDEX = "bar_index"  # (1,) float32: the decision bar t (exact below 2**24); only with include_bar_index


def observes_market(space: gym.Space) -> bool:
    """Whether a model's observation (a Dict space) holds the market window; False: it reads the frozen
    encoder's cache by bar index."""
    return isinstance(space, gym.spaces.Dict) and MARKET in space.spaces


@dataclass(frozen=True, eq=False)
class MarketData:
    """One segment's span on a device, plus the slice [start, stop) that episodes are drawn from."""

    source: torch.Tensor  # (T, F) float32: features then HMM context, per bar
    log_returns: torch.Tensor  # (T,) float64: log(close[t+1] / close[t]); the last bar has 0
    start: int
    stop: int
    columns: tuple[str, ...]  # F names, for error messages
    row_labels: np.ndarray | None = None  # (T,) e.g. timestamps, for error messages
    window: int = OBSERVATION_WINDOW
    # Row 0's bar counted from the Unix epoch (0 without timestamps): the execution rule's decision bars are
    # then the same wall-clock bars on every span (cryptorl/envs/execution.py).
    epoch_bar: int = 0
    bars_per_year: float = HOURS_PER_YEAR  # the annualisation of its bars (hourly without timestamps)

    def __post_init__(self) -> None:
        n_bars = self.source.shape[0]
        if not (self.window - 1 <= self.start and self.start + 2 <= self.stop <= n_bars):
            raise DataError(
                f"market slice [{self.start}, {self.stop}) does not fit a span of {n_bars} bars: need "
                f"start >= {self.window - 1} (a full window), stop <= {n_bars} and stop - start >= 2"
            )
        self._check_finite()

    @classmethod
    def from_arrays(
        cls,
        market: np.ndarray,
        close: np.ndarray,
        start: int,
        stop: int,
        device: str | torch.device = "cpu",
        columns: tuple[str, ...] | None = None,
        row_labels: np.ndarray | None = None,
    ) -> MarketData:
        """From a (T, F) array of observation columns and the (T,) raw close prices (both copied)."""
        market, close = np.asarray(market, dtype=np.float32), np.asarray(close, dtype=np.float64)
        if market.ndim != 2 or close.shape != (market.shape[0],):
            raise DataError(
                f"market data shapes {market.shape} and close {close.shape} disagree: "
                "pass market as (T, F) and close as (T,) over the same bars"
            )
        with np.errstate(divide="ignore", invalid="ignore"):  # bad prices are reported by __post_init__
            log_returns = np.append(np.log(close[1:] / close[:-1]), 0.0)  # (T,)
        return cls(
            source=torch.tensor(market, device=device),  # a copy: the caller's array may change later
            log_returns=torch.as_tensor(log_returns, device=device),
            start=start,
            stop=stop,
            columns=columns or tuple(f"column {i}" for i in range(market.shape[1])),
            row_labels=row_labels,
        )

    @classmethod
    def from_frames(
        cls,
        features: pd.DataFrame,
        context: pd.DataFrame,
        close: pd.Series,
        start: int,
        stop: int,
        device: str | torch.device = "cpu",
    ) -> MarketData:
        """From the split stage's scaled features (T, 50), the HMM context (T, 5) and close (T,), one index."""
        for name, other in (("context", context.index), ("close", close.index)):
            if not features.index.equals(other):
                raise DataError(
                    f"{name} and features have different bar indexes ({len(other)} vs "
                    f"{len(features.index)} bars): build both from the same segment span"
                )
        market = np.concatenate([features.to_numpy(np.float64), context.to_numpy(np.float64)], axis=1)  # (T, F)
        built = cls.from_arrays(
            market,
            close.to_numpy(np.float64),
            start,
            stop,
            device,
            columns=(*map(str, features.columns), *map(str, context.columns)),
            row_labels=features.index.to_numpy(),
        )
        step = _bar_step(features.index)
        return (
            built
            if step is None
            else dataclasses.replace(
                built,
                epoch_bar=(features.index[0] - pd.Timestamp(0, tz=features.index.tz)) // step,
                bars_per_year=bars_per_year(step),
            )
        )

    @classmethod
    def random(cls, n_bars: int, n_features: int = 55, seed: int = 0, device: str | torch.device = "cpu") -> MarketData:
        """Synthetic data for tests and benchmarks: Gaussian columns, a 1 %-volatility random-walk close.

        The slice is the whole span past the first window.
        """
        rng = np.random.default_rng(seed)
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_bars)))  # (T,)
        return cls.from_arrays(rng.standard_normal((n_bars, n_features)), close, OBSERVATION_WINDOW - 1, n_bars, device)

    @property
    def n_bars(self) -> int:
        return self.source.shape[0]

    @property
    def n_features(self) -> int:
        return self.source.shape[1]

    @property
    def device(self) -> torch.device:
        return self.source.device

    def with_slice(self, start: int, stop: int) -> MarketData:
        """The same span (tensors shared, not copied) with another slice, e.g. eval or test."""
        return dataclasses.replace(self, start=start, stop=stop)

    def to(self, device: str | torch.device) -> MarketData:
        return dataclasses.replace(self, source=self.source.to(device), log_returns=self.log_returns.to(device))

    def episode_layout(self, episode_length: int) -> tuple[int, int]:
        """(steps per episode, number of valid start bars): decision bars run up to stop - 2 so t+1 is in the slice."""
        length = min(episode_length, self.stop - 1 - self.start)
        return length, self.stop - 1 - self.start - length + 1

    def windows(self, bars: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The observation windows ending at `bars` (n,) long → (n, window, F), written into `out` if given."""
        # (T - window + 1, window, F) view: window i covers bars i..i+window-1 and is contiguous in memory.
        strided = self.source.as_strided(
            (self.n_bars - self.window + 1, self.window, self.n_features), (self.n_features, self.n_features, 1)
        )
        first = bars.to(self.device) - (self.window - 1)
        if out is None:
            return torch.index_select(strided, 0, first)
        return torch.index_select(strided, 0, first, out=out)

    def observation_space(self, include_bar_index: bool, include_market: bool = True) -> gym.spaces.Dict:
        """The per-env observation space of both envs (the w_cost range moves at runtime, so only >= 0).

        Without `market` (encoder-cache training) the window is never gathered: the extractor looks the
        bar's precomputed embedding up by `bar_index` instead.
        """
        if not (include_market or include_bar_index):
            raise ConfigError(
                "an observation needs the market window, the bar index or both: set include_market or include_bar_index"
            )
        spaces: dict[str, gym.Space] = (
            {MARKET: gym.spaces.Box(-np.inf, np.inf, (self.window, self.n_features), np.float32)}
            if include_market
            else {}
        )
        spaces[POSITION] = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        spaces[W_COST] = gym.spaces.Box(0.0, np.inf, (1,), np.float32)
        if include_bar_index:
            spaces[BAR_INDEX] = gym.spaces.Box(0.0, float(self.n_bars - 1), (1,), np.float32)
        return gym.spaces.Dict(spaces)

    def _check_finite(self) -> None:
        """NaN/inf in the used span would silently poison every gradient: refuse it, naming the first bad cell."""
        first_row = self.start - (self.window - 1)
        bad = ~torch.isfinite(self.source[first_row : self.stop])  # (rows, F)
        if bad.any():
            row, col = (int(i) for i in bad.nonzero()[0])
            raise DataError(
                f"market data is not finite at {self._where(first_row + row)}, column "
                f"{self.columns[col]!r}: fill or drop those bars before the split, or move the slice"
            )
        bad_returns = ~torch.isfinite(self.log_returns[self.start : self.stop - 1])
        if bad_returns.any():
            row = self.start + int(bad_returns.nonzero()[0, 0])
            raise DataError(
                f"log-return at {self._where(row)} is not finite: column 'close' must be positive "
                f"and finite at that bar and the next one; fix the price data"
            )

    def _where(self, row: int) -> str:
        return f"row {row}" if self.row_labels is None else f"row {row} ({self.row_labels[row]})"


def _bar_step(index: pd.Index) -> pd.Timedelta | None:
    """The bar duration of a regular time index (None for anything else)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return None
    return index[1] - index[0]


def resolve_reward_scale(config: EnvConfig, train: MarketData) -> EnvConfig:
    """`config` with the reward scale its normalization asks for, measured on the train slice `train`.

    "train_volatility" -> reward_scale = 1 / std(train log-returns) (the train slice's own bars only, so the
    eval and test slices see the scale training used, never their own volatility).
    """
    if config.reward_normalization == "none":
        return config
    volatility = float(train.log_returns[train.start : train.stop - 1].std())
    if not volatility > 0:
        raise DataError(
            f"the train slice's log-returns have std {volatility}: env.reward_normalization="
            f"'train_volatility' needs moving prices; use env.reward_normalization=none"
        )
    return dataclasses.replace(config, reward_scale=1.0 / volatility, reward_normalization="none")
