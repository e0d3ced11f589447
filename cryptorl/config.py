"""Typed configuration per pipeline stage, and the `smoke` / `cpu` / `gpu` profiles.

Each stage reads one frozen dataclass. A `Profile` bundles them; profiles differ in scale only, never
in semantics. Configs are validated up front (`validate()`), one rule per check, and each error names
the key and the fix, so a bad value fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from cryptorl.errors import ConfigError
from cryptorl.features.technical import FEATURE_NAMES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_PATH = PROJECT_ROOT / "data" / "BTCUSDT-1h.parquet"
OBSERVATION_WINDOW = 64  # bars of history the agent and the MAE see at each step
SPAN_PATTERN = re.compile(r"^\s*(\d+)\s*(M|D|h|W)\s*$")  # a calendar span of WFO lengths: count and unit
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


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
        _require(
            self.max_gap_fill_bars >= 0,
            "data.max_gap_fill_bars",
            self.max_gap_fill_bars,
            "use 0 to refuse every gap, or a positive number of bars",
        )
        bar, timeframe = _duration(self.bar), _duration(self.timeframe)
        _require(bar is not None, "data.bar", self.bar, "use a positive fixed duration such as '1h' or '15min'")
        _require(
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
        _require(self.scaler_clip > 0, "features.scaler_clip", self.scaler_clip, "use a positive value, e.g. 5.0")


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
        _require(
            _timestamp(self.first_train_start) is not None,
            "wfo.first_train_start",
            self.first_train_start,
            "use a date such as '2018-01-01'",
        )
        for key in ("train", "eval", "test", "step"):
            _require(
                _is_length(getattr(self, key)),
                f"wfo.{key}",
                getattr(self, key),
                "use a positive number of bars (e.g. 2000) or a span like '18M', '30D', '2W', '500h'",
            )
        _require(
            self.purge_bars >= OBSERVATION_WINDOW,
            "wfo.purge_bars",
            self.purge_bars,
            f"set it to at least the observation window ({OBSERVATION_WINDOW} bars)",
        )


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
        _require(
            self.n_states == 4,
            "regime.n_states",
            self.n_states,
            "the agent's context is exactly 5 columns (4 state probabilities + entropy); use 4",
        )
        _require(self.n_inits >= 1, "regime.n_inits", self.n_inits, "use at least 1 initialisation")
        unknown = sorted(set(self.columns) - set(FEATURE_NAMES))
        _require(
            len(self.columns) >= 1 and not unknown,
            "regime.columns",
            self.columns,
            "name at least one of the technical features (cryptorl/features/technical.py), e.g. ret_1, rv_24",
        )
        _require(self.n_iter >= 1, "regime.n_iter", self.n_iter, "use at least 1 EM iteration, e.g. 200")
        _require(self.tol > 0, "regime.tol", self.tol, "use a positive log-likelihood tolerance, e.g. 1e-3")


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
        _require(self.episode_length >= 1, "env.episode_length", self.episode_length, "use at least 1 step")
        _require(
            0.0 <= self.no_trade_band < 2.0,
            "env.no_trade_band",
            self.no_trade_band,
            "use a half-width in [0, 2), e.g. 0.2 (0: off)",
        )
        _require(
            0.0 < self.adjust_rate <= 1.0,
            "env.adjust_rate",
            self.adjust_rate,
            "use a fraction in (0, 1], e.g. 0.2 (1: off)",
        )
        _require(
            self.decision_interval >= 1,
            "env.decision_interval",
            self.decision_interval,
            "use a number of bars >= 1, e.g. 4 (1: every bar)",
        )
        _require(self.fee >= 0, "env.fee", self.fee, "use a non-negative fee, e.g. 0.001 for 10 bp")
        _require(self.reward_scale > 0, "env.reward_scale", self.reward_scale, "use a positive scale, e.g. 100")
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
        _require(self.n_heads >= 1, "mae.n_heads", self.n_heads, "use at least 1 head")
        _require(
            self.d_model > 0 and self.d_model % self.n_heads == 0,
            "mae.d_model",
            self.d_model,
            f"use a positive multiple of mae.n_heads={self.n_heads}, e.g. {self.n_heads * 64}",
        )
        _require(self.n_layers >= 1, "mae.n_layers", self.n_layers, "use at least 1 layer")
        _require(self.dim_feedforward >= 1, "mae.dim_feedforward", self.dim_feedforward, "use e.g. 4 * d_model")
        _require(self.window >= 2, "mae.window", self.window, "use at least 2 bars (default 64)")
        _require(self.input_dim >= 1, "mae.input_dim", self.input_dim, "use the number of technical features (50)")
        _require(
            1 <= self.n_masked <= self.window - 1,
            "mae.mask_ratio",
            self.mask_ratio,
            f"mask between 1 and {self.window - 1} of {self.window} bars, e.g. 0.5",
        )
        _require(0.0 <= self.dropout < 1.0, "mae.dropout", self.dropout, "use a value in [0, 1), e.g. 0.1")
        _require(self.lr > 0, "mae.lr", self.lr, "use a positive learning rate, e.g. 3e-4")
        _require(self.weight_decay >= 0, "mae.weight_decay", self.weight_decay, "use 0 or a positive value")
        _require(self.batch_size >= 1, "mae.batch_size", self.batch_size, "use at least 1")
        _require(self.max_epochs >= 1, "mae.max_epochs", self.max_epochs, "use at least 1")
        _require(self.steps_per_epoch >= 1, "mae.steps_per_epoch", self.steps_per_epoch, "use at least 1")
        _require(self.patience >= 1, "mae.patience", self.patience, "use at least 1 epoch")
        _require(self.grad_clip > 0, "mae.grad_clip", self.grad_clip, "use a positive norm, e.g. 1.0")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """TQC training. Defaults are the original system's WFO scale (the `gpu` profile) with the anti-collapse levers the
    learnability benchmark and the study chose; `REFERENCE_TRAINING` restores the original system's choices."""

    total_timesteps: int = 25_000_000
    n_envs: int = 1024
    batch_size: int = 512
    learning_rate: float = 1e-3
    lr_final_fraction: float = 0.1  # linear decay to learning_rate * this at the end of training
    # 0.95 (the seed's) beat 0.5 on the learnability benchmark once the critic adds the exact cost (3/3 seeds
    # healthy, median 0.83 of the oracle, vs 2/3 and 0.79).
    gamma: float = 0.95
    tau: float = 0.005
    # Learned from 0.01 (the floor): the original system's auto_0.5 was 13-72x the reward's std, and Adam moves
    # log(ent_coef) only ~lr per update, so it never got down within a run.
    ent_coef: str = "auto_0.01"
    target_entropy: float = -1.0  # SB3's "auto" for a 1-D action (-dim(A))
    use_sde: bool = False
    # With train_freq=1 SB3 resets the gSDE noise every env step, so this frequency never acts (seed value).
    sde_sample_freq: int = 64
    log_std_init: float = 0.0
    # Gradient steps per collected transition. SB3's default (one update per vec-env step) means one
    # update per 1024 transitions at 1024 envs, which barely trains; gradient_steps = n_envs * this.
    replay_ratio: float = 0.125
    learning_starts: int = 20_000
    buffer_size: int = 1_000_000
    net_arch: tuple[int, ...] = (256, 256)
    n_quantiles: int = 25
    top_quantiles_to_drop: int = 2
    n_steps: int = 1  # n-step returns in the critic's target (the compact replay computes them)
    # Each sampled transition also teaches the critic this many other actions with their exact rewards
    # (the market is exogenous); they share the batch, so batch_size must be a multiple of this + 1.
    counterfactual_actions: int = 1
    # ... and give each copy its own cost weight ~ U[0, w_cost_final_high] (exact too: w_cost is an exogenous
    # episode constant), so the critic sees many cost weights per state instead of one per episode.
    counterfactual_w_cost: bool = True
    # ... and start each copy from its own held position ~ U[-1, 1] (the agent's replay only holds positions
    # close to what it does next, so the actor never learns what to do from another one).
    counterfactual_positions: bool = True
    # The critics add the exact immediate cost w_cost * fee * scale * |a - position| instead of learning it
    # (cryptorl/training/critic.py): the actor then sees what each cost weight costs.
    exact_cost_critic: bool = True
    # Feature-extractor head: flatten (the original system's: the whole modulated window, flattened, projected),
    # attention_pool or mean_pool (cryptorl/models/layers.py).
    head: Literal["flatten", "attention_pool", "mean_pool"] = "flatten"
    features_dim: int = 512
    # Feed position and w_cost to the actor's and critics' MLPs directly, next to the projected market
    # summary, instead of only as 2 of the projection's ~(64·d + 2) inputs.
    state_passthrough: bool = True
    # The current bar's 50 raw technical features also enter the extractor's projection (beside the frozen
    # encoder's summary of the window).
    current_bar: bool = False
    use_encoder_cache: bool = True  # frozen encoder: encode every window once, look embeddings up by bar
    # Adam's fused kernel (one pass per tensor, CPU and CUDA) for the actor and critics: 2.4x faster than
    # the per-op loop on the projection's 128 x 2050 weights, within 1 ulp of it per step (the learner test
    # bounds the drift); False is SB3's default.
    fused_optimizer: bool = True
    # CUDA only: float32 matmuls on TF32 tensor cores (10-bit-mantissa inputs, float32 accumulation), several
    # times the float32 rate on H100/H200 class GPUs; CPU runs are unaffected.
    tf32_matmul: bool = True
    min_ent_coef: float = 0.01
    w_cost_final_high: float = 2.0  # the MORL curriculum widens w_cost ~ U[0, high] up to this
    # The fee in the training reward (and the exact-cost critic's cost) is env.fee times this; eval scoring,
    # backtests, the audit and promotion always pay the real fee.
    fee_multiplier: float = 1.0
    # CAPS temporal smoothness (Mysore et al. 2021): the actor loss adds this times the mean, over sampled states,
    # of w_cost times the squared change of the deterministic action to the next state (0: off). Chosen with
    # env.no_trade_band (the study table in the README).
    smoothness: float = 5.0
    curriculum_warmup_fraction: float = 0.1
    curriculum_ramp_fraction: float = 0.6
    checkpoints: int = 10  # rotating checkpoints over the run (each one also scored on the eval slice)
    keep_last: int = 3
    eval_steps: int = 512  # steps per eval env when scoring a checkpoint
    log_every_steps: int = 50_000
    device: str = "auto"

    def __post_init__(self) -> None:  # a record written under an old name still loads
        object.__setattr__(self, "head", renamed("train.head", self.head))

    @property
    def gradient_steps(self) -> int:
        return max(1, round(self.n_envs * self.replay_ratio))

    def validate(self) -> None:
        _require(
            self.total_timesteps >= self.n_envs,
            "train.total_timesteps",
            self.total_timesteps,
            f"use at least train.n_envs={self.n_envs} steps",
        )
        _require(self.n_envs >= 1, "train.n_envs", self.n_envs, "use at least 1 env")
        _require(self.batch_size >= 1, "train.batch_size", self.batch_size, "use at least 1, e.g. 512")
        _require(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "use e.g. 3e-4")
        _require(
            0 < self.lr_final_fraction <= 1,
            "train.lr_final_fraction",
            self.lr_final_fraction,
            "use a value in (0, 1], e.g. 0.1",
        )
        _require(0 < self.gamma < 1, "train.gamma", self.gamma, "use a discount in (0, 1), e.g. 0.95")
        _require(0 < self.tau <= 1, "train.tau", self.tau, "use a Polyak rate in (0, 1], e.g. 0.005")
        _require(
            self.sde_sample_freq == -1 or self.sde_sample_freq >= 1,
            "train.sde_sample_freq",
            self.sde_sample_freq,
            "use -1 (once per rollout) or a number of steps >= 1",
        )
        _require(self.learning_starts >= 0, "train.learning_starts", self.learning_starts, "use 0 or more steps")
        _require(
            len(self.net_arch) >= 1 and min(self.net_arch) >= 1,
            "train.net_arch",
            self.net_arch,
            "use one or more positive layer widths, e.g. 256,256",
        )
        _require(self.features_dim >= 1, "train.features_dim", self.features_dim, "use a positive width, e.g. 512")
        _require(
            self.w_cost_final_high >= 0,
            "train.w_cost_final_high",
            self.w_cost_final_high,
            "use a non-negative cost weight, e.g. 2",
        )
        _require(
            self.curriculum_warmup_fraction >= 0
            and self.curriculum_ramp_fraction >= 0
            and self.curriculum_warmup_fraction + self.curriculum_ramp_fraction <= 1,
            "train.curriculum_ramp_fraction",
            self.curriculum_ramp_fraction,
            "use non-negative warm-up and ramp fractions of training that add up to at most 1",
        )
        _require(self.eval_steps >= 1, "train.eval_steps", self.eval_steps, "use at least 1 step")
        _require(self.log_every_steps >= 1, "train.log_every_steps", self.log_every_steps, "use at least 1 step")
        _require(
            _DEVICE.match(self.device) is not None, "train.device", self.device, "use auto, cpu, cuda, cuda:N or mps"
        )
        _require(
            self.ent_coef == "auto" or self.ent_coef.startswith("auto_") or _is_float(self.ent_coef),
            "train.ent_coef",
            self.ent_coef,
            "use 'auto', 'auto_0.5' or a number",
        )
        _require(self.replay_ratio > 0, "train.replay_ratio", self.replay_ratio, "use e.g. 0.125")
        _require(
            self.buffer_size >= self.batch_size,
            "train.buffer_size",
            self.buffer_size,
            "use at least train.batch_size transitions",
        )
        _require(self.n_quantiles >= 1, "train.n_quantiles", self.n_quantiles, "use at least 1 quantile, e.g. 25")
        _require(
            0 <= self.top_quantiles_to_drop < self.n_quantiles,
            "train.top_quantiles_to_drop",
            self.top_quantiles_to_drop,
            f"use 0..{self.n_quantiles - 1}",
        )
        _require(self.n_steps >= 1, "train.n_steps", self.n_steps, "use 1 (one-step targets) or more")
        _require(
            self.counterfactual_actions >= 0,
            "train.counterfactual_actions",
            self.counterfactual_actions,
            "use 0 (off) or a positive count",
        )
        _require(
            self.counterfactual_actions == 0 or self.n_steps == 1,
            "train.counterfactual_actions",
            self.counterfactual_actions,
            "counterfactual actions need one-step targets: set train.n_steps=1",
        )
        _require(
            self.batch_size % (self.counterfactual_actions + 1) == 0,
            "train.batch_size",
            self.batch_size,
            f"use a multiple of train.counterfactual_actions + 1 = {self.counterfactual_actions + 1}",
        )
        _require(self.min_ent_coef > 0, "train.min_ent_coef", self.min_ent_coef, "use e.g. 0.01")
        _require(
            self.fee_multiplier >= 0,
            "train.fee_multiplier",
            self.fee_multiplier,
            "use a non-negative multiple of env.fee, e.g. 2 (1: the real fee)",
        )
        _require(self.smoothness >= 0, "train.smoothness", self.smoothness, "use 0 (off) or a positive weight")
        _require(self.checkpoints >= 1, "train.checkpoints", self.checkpoints, "use at least 1")
        _require(self.keep_last >= 1, "train.keep_last", self.keep_last, "use at least 1")


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
        _require(
            not unknown,
            "promotion.floor",
            self.floor,
            f"name baselines among {', '.join(FLOOR_BASELINES)} (comma-separated), or none",
        )


# The original system's own training choices, as overrides of any profile (`--profile reference` is them at its
# scale):
# the reference every collapsed agent was trained with.
REFERENCE_TRAINING: dict[str, str] = {
    "train.learning_rate": "0.0003",
    "train.ent_coef": "auto_0.5",
    "train.use_sde": "true",
    "train.counterfactual_actions": "0",
    "train.state_passthrough": "false",
    "train.exact_cost_critic": "false",
    "train.counterfactual_w_cost": "false",
    "train.counterfactual_positions": "false",
    "env.no_trade_band": "0",
    "train.smoothness": "0",
}


# Old names, accepted with a one-line deprecation note: "seed" also meant the random seed.
DEPRECATED_NAMES: dict[tuple[str, str], str] = {("profile", "seed"): "reference", ("train.head", "seed"): "flatten"}


def renamed(what: str, name: Any) -> Any:
    """`name`'s current spelling for `what` ("profile", "train.head"); an old one gets a deprecation note."""
    new = DEPRECATED_NAMES.get((what, name)) if isinstance(name, str) else None
    if new is None:
        return name
    warnings.warn(
        f"{what} {name!r} is now called {new!r} (the original system's configuration, not a random "
        "seed); the old name will be removed",
        FutureWarning,
        stacklevel=3,
    )
    return new


def _duration(text: str) -> pd.Timedelta | None:
    """A positive fixed duration ("1h", "4h", "1D"), else None."""
    try:
        duration = pd.Timedelta(text)
    except (ValueError, TypeError):
        return None
    return duration if duration > pd.Timedelta(0) else None


def _timestamp(text: str) -> pd.Timestamp | None:
    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError):
        return None


def _is_length(length: int | str) -> bool:
    """Bars (a positive int) or a positive calendar span ("18M", "30D", "2W", "500h")."""
    if isinstance(length, int):
        return length > 0
    match = SPAN_PATTERN.match(length)
    return match is not None and int(match[1]) > 0


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
            _require(
                getattr(stage, name) in choices,
                f"{stage_name}.{name}",
                getattr(stage, name),
                f"use one of {', '.join(choices)}",
            )


def _require(ok: bool, key: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config {key}={value!r}: {fix}")


PROFILE_ENV_VAR = "CRYPTORL_PROFILE"  # the default profile of this machine (a worker's, for deployment runs)
DEFAULT_PROFILE = "smoke"


def get_profile(name: str | None = None) -> Profile:
    """The named profile, validated; None is the machine's default, `$CRYPTORL_PROFILE` or else smoke.

    The deployments leave `profile` at "default", so a run started from the UI takes its worker's: the GPU
    server's worker sets gpu, a laptop's UI stays smoke and never starts the 25M-step profile by accident.
    """
    source = "" if name else f" (from ${PROFILE_ENV_VAR})"
    name = renamed("profile", name or os.environ.get(PROFILE_ENV_VAR) or DEFAULT_PROFILE)
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}{source}: use one of {', '.join(PROFILES)}")
    return PROFILES[name].validate()


def with_overrides(profile: Profile, overrides: Mapping[str, object]) -> Profile:
    """Apply `stage.key=value` overrides (text parsed as the field's annotated type), then validate.

    Keys and text values are stripped, so `train.gamma = 0.9` reads as `train.gamma=0.9`; this is the one
    parser of overrides (the CLI's `--set`, a study's settings and a flow's `overrides` all come here).
    """
    for dotted, raw in overrides.items():
        profile = _override_one(profile, str(dotted).strip(), raw)
    return profile.validate()


def _override_one(profile: Profile, dotted: str, raw: object) -> Profile:
    stage_name, _, key = dotted.partition(".")
    stage = getattr(profile, stage_name, None) if stage_name in STAGE_NAMES else None
    if not key or stage is None:
        raise ConfigError(
            f"unknown config key {dotted!r}: use STAGE.KEY=VALUE with STAGE one of {', '.join(STAGE_NAMES)}"
        )
    hints = typing.get_type_hints(type(stage))
    if key not in hints or key not in {f.name for f in dataclasses.fields(stage)}:
        raise ConfigError(
            f"unknown config key {dotted!r}: {stage_name} has {', '.join(f.name for f in dataclasses.fields(stage))}"
        )
    value = parse_typed(renamed(dotted, str(raw).strip()), hints[key], dotted)
    return dataclasses.replace(profile, **{stage_name: dataclasses.replace(stage, **{key: value})})


def parse_typed(raw: str, hint: Any, dotted: str) -> Any:
    """`raw` as a value of the annotation `hint`: bool, int, float, str, a Literal, a union of these (first
    match wins, so `int | str` reads "500" as 500 and "24M" as text) or a tuple of one of them ("64,64")."""
    try:
        return _parse_as(raw, hint)
    except ValueError:
        raise ConfigError(f"invalid value for {dotted}: {raw!r} is not {_type_name(hint)}") from None


def _parse_as(raw: str, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _parse_as(raw, option)
            except ValueError:
                continue
        raise ValueError(raw)
    if origin is typing.Literal:
        if raw not in args:
            raise ValueError(raw)
        return raw
    if origin is tuple:  # "none" (or nothing) is the empty tuple
        items = [] if raw.lower() in ("", "none") else [part.strip() for part in raw.split(",") if part.strip()]
        return tuple(_parse_as(item, args[0]) for item in items)
    if hint is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(raw)
        return raw.lower() in ("true", "1")
    if hint in (int, float, str):
        return hint(raw)
    raise TypeError(f"no override parser for {hint!r}")  # a config field of a type this parser lacks: a bug


def _type_name(hint: Any) -> str:
    """How an annotation reads in an error: "an int", "one of 'diag', 'full'", "a tuple of int"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(option) for option in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(option) for option in args)
    if origin is tuple:
        return f"a comma-separated list of {args[0].__name__}"
    return {int: "an int", float: "a float", bool: "true or false", str: "text"}.get(hint, repr(hint))


_SMOKE_MAE = {
    "mae.d_model": "32",
    "mae.n_heads": "2",
    "mae.n_layers": "1",
    "mae.dim_feedforward": "64",
    "mae.dropout": "0",
    "mae.lr": "3e-3",
    "mae.batch_size": "64",
    "mae.max_epochs": "8",
    "mae.steps_per_epoch": "25",
    "mae.patience": "3",
}
# The cpu profile: one segment trained and audited in <= 15 minutes on 2 CPU cores (torch on one thread each, see
# README "Threads"): ~8k updates of batch 128, 8x smoke's; its MAE pretrains in about 2 minutes.
_CPU = {
    "wfo.train": "12M",
    "wfo.eval": "2M",
    "wfo.test": "2M",
    "wfo.step": "2M",
    "mae.d_model": "32",
    "mae.n_heads": "2",
    "mae.n_layers": "2",
    "mae.dim_feedforward": "128",
    "mae.dropout": "0",
    "mae.lr": "2e-3",
    "mae.batch_size": "128",
    "mae.max_epochs": "12",
    "mae.steps_per_epoch": "50",
    "mae.patience": "3",
    "env.episode_length": "256",
    "train.total_timesteps": "32768",
    "train.n_envs": "16",
    "train.batch_size": "128",
    "train.replay_ratio": "0.25",
    "train.learning_starts": "1024",
    "train.buffer_size": "100000",
    "train.net_arch": "128,128",
    "train.features_dim": "128",
    "train.checkpoints": "4",
    "train.eval_steps": "256",
    "train.log_every_steps": "2048",
}
# Every profile, written one way: overrides of the defaults (the original system's scale, `gpu`).
PROFILE_OVERRIDES: dict[str, dict[str, str]] = {
    # CI: minutes on 2 CPU cores.
    "smoke": {
        "wfo.train": "6M",
        "wfo.eval": "1M",
        "wfo.test": "1M",
        "wfo.step": "1M",
        "regime.n_inits": "2",
        "regime.n_iter": "50",
        **_SMOKE_MAE,
        "env.episode_length": "256",
        "train.total_timesteps": "4096",
        "train.n_envs": "8",
        "train.batch_size": "64",
        "train.replay_ratio": "0.25",
        "train.learning_starts": "256",
        "train.buffer_size": "20000",
        "train.net_arch": "64,64",
        "train.features_dim": "64",
        "train.checkpoints": "2",
        "train.eval_steps": "128",
        "train.log_every_steps": "512",
    },
    "cpu": _CPU,
    # The original system's full scale, with this project's training levers, on the GPU server.
    "gpu": {},
    # `make demo`: the cpu profile's slices, model and update batch with a training budget whose segment-0 flow
    # (split, HMM, MAE, TQC, audit, promotion) takes at most 6 minutes on 2 CPU cores (README).
    "demo": {**_CPU, "train.total_timesteps": "16384"},
    # The original system's exact configuration (scale and training choices), kept as the reference.
    "reference": REFERENCE_TRAINING,
}
PROFILES: dict[str, Profile] = {
    name: with_overrides(Profile(name=name), overrides) for name, overrides in PROFILE_OVERRIDES.items()
}


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
        _require(
            self.max_staleness_hours > 0,
            "signal.max_staleness_hours",
            self.max_staleness_hours,
            "use a positive number of hours, e.g. 2, or inf for historical data",
        )
        _require(self.run_in_bars >= 1, "signal.run_in_bars", self.run_in_bars, "use at least 1 bar, e.g. 720")
        return self
