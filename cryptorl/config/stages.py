"""The typed configuration of each pipeline stage, one frozen dataclass per stage, and `Profile`, which bundles
them. Configs are validated up front (`validate()`), one rule per check, and each error names the key and the
fix, so a bad value fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptorl.config.checks import duration, is_length, require, timestamp
from cryptorl.config.train import TrainConfig
from cryptorl.errors import ConfigError
from cryptorl.features.technical import FEATURE_NAMES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_PATH = PROJECT_ROOT / "data" / "BTCUSDT-1h.parquet"
OBSERVATION_WINDOW = 64  # bars of history the agent and the MAE see at each step


@dataclass(frozen=True)
class DataConfig:
    """How OHLCV bars are read and how exchange outages are handled (the source itself is a run input)."""

    bar: str = "1h"  # the file's bar duration (pandas offset alias); gaps are measured against it
    # Outages up to this many missing bars are filled with flat zero-volume bars (price unchanged);
    # a longer gap is refused because inventing a day of prices would be fiction.
    max_gap_fill_bars: int = 48
    # The bars the run works on: the file's bars, or complete coarser ones resampled from them (e.g. "4h",
    # "1D"; cryptorl/data/timeframe.py). Features, windows, episodes and the annualisation count these bars.
    timeframe: str = "1h"

    def validate(self) -> None:
        require(
            self.max_gap_fill_bars >= 0,
            "data.max_gap_fill_bars",
            self.max_gap_fill_bars,
            "use 0 to refuse every gap, or a positive number of bars",
        )
        bar, timeframe = duration(self.bar), duration(self.timeframe)
        require(bar is not None, "data.bar", self.bar, "use a positive fixed duration such as '1h' or '15min'")
        require(
            timeframe is not None and bar is not None and timeframe >= bar and (timeframe / bar).is_integer(),
            "data.timeframe",
            self.timeframe,
            f"use a whole multiple of data.bar={self.bar!r}, e.g. '4h' or '1D'",
        )


@dataclass(frozen=True)
class FeatureConfig:
    """Technical features and their train-only scaler."""

    # Robust-scaled features are clipped to ±clip so one crash bar cannot dominate a batch.
    scaler_clip: float = 5.0

    def validate(self) -> None:
        require(self.scaler_clip > 0, "features.scaler_clip", self.scaler_clip, "use a positive value, e.g. 5.0")


@dataclass(frozen=True)
class WFOConfig:
    """Walk-forward segmentation. Lengths are bars (int) or calendar spans ("18M", "30D", "500h")."""

    # Binance's first months are thin (median volume 67 BTC/h): the first segment trains from 2018.
    first_train_start: str = "2018-01-01"
    train: int | str = "24M"
    eval: int | str = "3M"
    test: int | str = "3M"
    step: int | str = "3M"  # how far the next segment's train start moves
    # Bars dropped between train/eval and eval/test so no observation window straddles two slices.
    purge_bars: int = OBSERVATION_WINDOW

    def validate(self) -> None:
        start = self.first_train_start
        require(timestamp(start) is not None, "wfo.first_train_start", start, "use a date such as '2018-01-01'")
        lengths = "use a positive number of bars (e.g. 2000) or a span like '18M', '30D', '2W', '500h'"
        for key in ("train", "eval", "test", "step"):
            require(is_length(getattr(self, key)), f"wfo.{key}", getattr(self, key), lengths)
        purge = f"set it to at least the observation window ({OBSERVATION_WINDOW} bars)"
        require(self.purge_bars >= OBSERVATION_WINDOW, "wfo.purge_bars", self.purge_bars, purge)


@dataclass(frozen=True)
class RegimeConfig:
    """Gaussian HMM over a few scaled features; 5 context columns from its forward filter."""

    n_states: int = 4
    # The HMM sees a handful of return/volatility features, not all 50 (a diagonal HMM over 50
    # correlated columns mostly models their correlation, not regimes).
    columns: tuple[str, ...] = ("ret_1", "ret_24", "rv_24", "rv_168", "vol_z_24")
    covariance_type: Literal["diag", "full", "spherical", "tied"] = "diag"
    n_inits: int = 5  # random restarts; the best log-likelihood wins
    n_iter: int = 200
    tol: float = 1e-3

    def validate(self) -> None:
        require(
            self.n_states == 4,
            "regime.n_states",
            self.n_states,
            "the agent's context is exactly 5 columns (4 state probabilities + entropy); use 4",
        )
        require(self.n_inits >= 1, "regime.n_inits", self.n_inits, "use at least 1 initialisation")
        unknown = sorted(set(self.columns) - set(FEATURE_NAMES))
        require(
            len(self.columns) >= 1 and not unknown,
            "regime.columns",
            self.columns,
            "name at least one of the technical features (cryptorl/features/technical.py), e.g. ret_1, rv_24",
        )
        require(self.n_iter >= 1, "regime.n_iter", self.n_iter, "use at least 1 EM iteration, e.g. 200")
        require(self.tol > 0, "regime.tol", self.tol, "use a positive log-likelihood tolerance, e.g. 1e-3")


@dataclass(frozen=True)
class EnvConfig:
    """Trading-env dynamics: reward = scale * (position * log-return - w_cost * fee * |Δposition|)."""

    episode_length: int = 512  # decision steps per episode (the whole slice when the slice is shorter)
    fee: float = 0.001  # proportional fee per unit of turnover (10 bp)
    reward_scale: float = 100.0  # hourly log-returns are ~1e-3..1e-2; scaled rewards are O(0.1..1)
    # "train_volatility": the scale is 1 / (std of the train slice's hourly log-returns) instead of
    # reward_scale, so a unit position's reward has std 1 on train in every regime and on every asset,
    # and entropy coefficients mean the same everywhere. "none": reward_scale as given.
    reward_normalization: Literal["none", "train_volatility"] = "none"
    # Each episode draws w_cost ~ U[low, high]; a curriculum may widen the range at runtime.
    w_cost_low: float = 0.0
    w_cost_high: float = 1.0
    # How the action (a target in [-1, 1]) becomes the position held (cryptorl/envs/execution.py): the held
    # position clamped into [target - band, target + band] (0: off), then moved `adjust_rate` of the way there,
    # on bars that are multiples of `decision_interval` only. The band was chosen with train.smoothness by the
    # cpu study (README "Trading levers against the fee": the table, losers included).
    no_trade_band: float = 0.3
    adjust_rate: float = 1.0
    decision_interval: int = 1

    def validate(self) -> None:
        require(self.episode_length >= 1, "env.episode_length", self.episode_length, "use at least 1 step")
        require(
            0.0 <= self.no_trade_band < 2.0,
            "env.no_trade_band",
            self.no_trade_band,
            "use a half-width in [0, 2), e.g. 0.2 (0: off)",
        )
        require(
            0.0 < self.adjust_rate <= 1.0,
            "env.adjust_rate",
            self.adjust_rate,
            "use a fraction in (0, 1], e.g. 0.2 (1: off)",
        )
        require(
            self.decision_interval >= 1,
            "env.decision_interval",
            self.decision_interval,
            "use a number of bars >= 1, e.g. 4 (1: every bar)",
        )
        require(self.fee >= 0, "env.fee", self.fee, "use a non-negative fee, e.g. 0.001 for 10 bp")
        require(self.reward_scale > 0, "env.reward_scale", self.reward_scale, "use a positive scale, e.g. 100")
        check_w_cost_range(self.w_cost_low, self.w_cost_high)


def check_w_cost_range(low: float, high: float) -> None:
    """Refuse a w_cost range that is negative or inverted (it would reward trading or crash the sampler)."""
    if not 0 <= low <= high:
        raise ConfigError(f"invalid w_cost range [{low}, {high}]: use 0 <= env.w_cost_low <= env.w_cost_high")


@dataclass(frozen=True)
class MAEConfig:
    """Architecture and pretraining of CryptoMAE. Defaults are the original system's (gpu) scale."""

    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 2
    dim_feedforward: int = 1024
    window: int = OBSERVATION_WINDOW  # bars per window: the agent sees the same windows
    input_dim: int = 50  # scaled technical features (the 5 HMM columns are not reconstructed)
    mask_ratio: float = 0.5
    dropout: float = 0.1
    # Training. An epoch is at most `steps_per_epoch` batches so an epoch costs the same on any slice length.
    lr: float = 3e-4
    weight_decay: float = 0.05
    batch_size: int = 256
    max_epochs: int = 100
    steps_per_epoch: int = 200
    patience: int = 5  # epochs without a better eval loss before stopping
    grad_clip: float = 1.0

    @property
    def n_masked(self) -> int:
        """Bars masked per window: a fixed count so every window has the same loss weight."""
        return round(self.mask_ratio * self.window)

    def validate(self) -> MAEConfig:
        require(self.n_heads >= 1, "mae.n_heads", self.n_heads, "use at least 1 head")
        require(
            self.d_model > 0 and self.d_model % self.n_heads == 0,
            "mae.d_model",
            self.d_model,
            f"use a positive multiple of mae.n_heads={self.n_heads}, e.g. {self.n_heads * 64}",
        )
        require(self.n_layers >= 1, "mae.n_layers", self.n_layers, "use at least 1 layer")
        require(self.dim_feedforward >= 1, "mae.dim_feedforward", self.dim_feedforward, "use e.g. 4 * d_model")
        require(self.window >= 2, "mae.window", self.window, "use at least 2 bars (default 64)")
        require(self.input_dim >= 1, "mae.input_dim", self.input_dim, "use the number of technical features (50)")
        require(
            1 <= self.n_masked <= self.window - 1,
            "mae.mask_ratio",
            self.mask_ratio,
            f"mask between 1 and {self.window - 1} of {self.window} bars, e.g. 0.5",
        )
        require(0.0 <= self.dropout < 1.0, "mae.dropout", self.dropout, "use a value in [0, 1), e.g. 0.1")
        require(self.lr > 0, "mae.lr", self.lr, "use a positive learning rate, e.g. 3e-4")
        require(self.weight_decay >= 0, "mae.weight_decay", self.weight_decay, "use 0 or a positive value")
        require(self.batch_size >= 1, "mae.batch_size", self.batch_size, "use at least 1")
        require(self.max_epochs >= 1, "mae.max_epochs", self.max_epochs, "use at least 1")
        require(self.steps_per_epoch >= 1, "mae.steps_per_epoch", self.steps_per_epoch, "use at least 1")
        require(self.patience >= 1, "mae.patience", self.patience, "use at least 1 epoch")
        require(self.grad_clip > 0, "mae.grad_clip", self.grad_clip, "use a positive norm, e.g. 1.0")
        return self


FLOOR_BASELINES = ("flat", "buy_and_hold")


@dataclass(frozen=True)
class PromotionConfig:
    """What a model must beat to become, and to stay, the live model of a data source."""

    # Baselines whose net Sharpe at the real fee the model's must exceed on the same test slice: a challenger on
    # its own slice, the live champion when a retrain re-scores it on the newest one (below it, it is retired).
    # flat's is 0: a model that loses to doing nothing is never live. Empty: healthy is enough (not advised).
    floor: tuple[str, ...] = FLOOR_BASELINES

    def validate(self) -> None:
        unknown = [name for name in self.floor if name not in FLOOR_BASELINES]
        require(
            not unknown,
            "promotion.floor",
            self.floor,
            f"name baselines among {', '.join(FLOOR_BASELINES)} (comma-separated), or none",
        )


@dataclass(frozen=True)
class Profile:
    """Everything one run needs; `name` is for display only (it is not part of any cache key)."""

    name: str
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    wfo: WFOConfig = field(default_factory=WFOConfig)
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)

    def validate(self) -> Profile:
        for name in STAGE_NAMES:
            _check_choices(getattr(self, name), name)
            getattr(self, name).validate()
        return self


# The configured parts of a profile, in pipeline order: the STAGE of every `STAGE.KEY=VALUE` override.
STAGE_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Profile) if f.name not in ("name", "seed"))
STAGE_CLASSES: dict[str, type] = {name: typing.get_type_hints(Profile)[name] for name in STAGE_NAMES}
# What a trained agent depends on: every stage config but promotion's (which judges the agent, never shapes it).
TRAINING_STAGES: tuple[str, ...] = tuple(name for name in STAGE_NAMES if name != "promotion")


def _check_choices(stage: Any, stage_name: str) -> None:
    """Every field annotated with a Literal holds one of its choices (the annotation is the list)."""
    for name, hint in typing.get_type_hints(type(stage)).items():
        if typing.get_origin(hint) is typing.Literal:
            choices = typing.get_args(hint)
            require(
                getattr(stage, name) in choices,
                f"{stage_name}.{name}",
                getattr(stage, name),
                f"use one of {', '.join(choices)}",
            )


@dataclass(frozen=True)
class SignalConfig:
    """`cryptorl signal` and the `signal` flow: the champion's position on the newest complete bar."""

    # The newest complete bar must have closed at most this long ago, or the signal refuses to answer:
    # an hourly feed that stopped must fail loudly, not keep repeating an old position. Two hours allow
    # one late append; `--max-staleness inf` reads a historical file.
    max_staleness_hours: float = 2.0
    # The held position comes from the champion's own path, flat at its first test bar, but at most this many
    # bars before the newest one: an old champion on years of new bars still answers in seconds (30 days of
    # hours is far longer than any position takes to forget a flat start).
    run_in_bars: int = 720

    def validate(self) -> SignalConfig:
        require(
            self.max_staleness_hours > 0,
            "signal.max_staleness_hours",
            self.max_staleness_hours,
            "use a positive number of hours, e.g. 2, or inf for historical data",
        )
        require(self.run_in_bars >= 1, "signal.run_in_bars", self.run_in_bars, "use at least 1 bar, e.g. 720")
        return self
