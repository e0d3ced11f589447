"""TQC training's configuration: the scale, the anti-collapse levers and the fee levers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptorl.config.checks import DEVICE_PATTERN, is_float, renamed, require


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
    # The update through torch.compile (cryptorl/training/compiled.py): off (eager), default (inductor) or
    # reduce-overhead (inductor, and on CUDA replayed as CUDA graphs). Chosen by benchmarks/compiled_update.py.
    compile: Literal["off", "default", "reduce-overhead"] = "off"
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
        require(
            self.total_timesteps >= self.n_envs,
            "train.total_timesteps",
            self.total_timesteps,
            f"use at least train.n_envs={self.n_envs} steps",
        )
        require(self.n_envs >= 1, "train.n_envs", self.n_envs, "use at least 1 env")
        require(self.batch_size >= 1, "train.batch_size", self.batch_size, "use at least 1, e.g. 512")
        require(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "use e.g. 3e-4")
        require(
            0 < self.lr_final_fraction <= 1,
            "train.lr_final_fraction",
            self.lr_final_fraction,
            "use a value in (0, 1], e.g. 0.1",
        )
        require(0 < self.gamma < 1, "train.gamma", self.gamma, "use a discount in (0, 1), e.g. 0.95")
        require(0 < self.tau <= 1, "train.tau", self.tau, "use a Polyak rate in (0, 1], e.g. 0.005")
        require(
            self.sde_sample_freq == -1 or self.sde_sample_freq >= 1,
            "train.sde_sample_freq",
            self.sde_sample_freq,
            "use -1 (once per rollout) or a number of steps >= 1",
        )
        require(self.learning_starts >= 0, "train.learning_starts", self.learning_starts, "use 0 or more steps")
        require(
            len(self.net_arch) >= 1 and min(self.net_arch) >= 1,
            "train.net_arch",
            self.net_arch,
            "use one or more positive layer widths, e.g. 256,256",
        )
        require(self.features_dim >= 1, "train.features_dim", self.features_dim, "use a positive width, e.g. 512")
        require(
            self.w_cost_final_high >= 0,
            "train.w_cost_final_high",
            self.w_cost_final_high,
            "use a non-negative cost weight, e.g. 2",
        )
        require(
            self.curriculum_warmup_fraction >= 0
            and self.curriculum_ramp_fraction >= 0
            and self.curriculum_warmup_fraction + self.curriculum_ramp_fraction <= 1,
            "train.curriculum_ramp_fraction",
            self.curriculum_ramp_fraction,
            "use non-negative warm-up and ramp fractions of training that add up to at most 1",
        )
        require(self.eval_steps >= 1, "train.eval_steps", self.eval_steps, "use at least 1 step")
        require(self.log_every_steps >= 1, "train.log_every_steps", self.log_every_steps, "use at least 1 step")
        require(
            DEVICE_PATTERN.match(self.device) is not None,
            "train.device",
            self.device,
            "use auto, cpu, cuda, cuda:N or mps",
        )
        require(
            self.ent_coef == "auto" or self.ent_coef.startswith("auto_") or is_float(self.ent_coef),
            "train.ent_coef",
            self.ent_coef,
            "use 'auto', 'auto_0.5' or a number",
        )
        require(self.replay_ratio > 0, "train.replay_ratio", self.replay_ratio, "use e.g. 0.125")
        require(
            self.buffer_size >= self.batch_size,
            "train.buffer_size",
            self.buffer_size,
            "use at least train.batch_size transitions",
        )
        require(self.n_quantiles >= 1, "train.n_quantiles", self.n_quantiles, "use at least 1 quantile, e.g. 25")
        require(
            0 <= self.top_quantiles_to_drop < self.n_quantiles,
            "train.top_quantiles_to_drop",
            self.top_quantiles_to_drop,
            f"use 0..{self.n_quantiles - 1}",
        )
        require(self.n_steps >= 1, "train.n_steps", self.n_steps, "use 1 (one-step targets) or more")
        require(
            self.counterfactual_actions >= 0,
            "train.counterfactual_actions",
            self.counterfactual_actions,
            "use 0 (off) or a positive count",
        )
        require(
            self.counterfactual_actions == 0 or self.n_steps == 1,
            "train.counterfactual_actions",
            self.counterfactual_actions,
            "counterfactual actions need one-step targets: set train.n_steps=1",
        )
        require(
            self.batch_size % (self.counterfactual_actions + 1) == 0,
            "train.batch_size",
            self.batch_size,
            f"use a multiple of train.counterfactual_actions + 1 = {self.counterfactual_actions + 1}",
        )
        require(self.min_ent_coef > 0, "train.min_ent_coef", self.min_ent_coef, "use e.g. 0.01")
        require(
            self.fee_multiplier >= 0,
            "train.fee_multiplier",
            self.fee_multiplier,
            "use a non-negative multiple of env.fee, e.g. 2 (1: the real fee)",
        )
        require(self.smoothness >= 0, "train.smoothness", self.smoothness, "use 0 (off) or a positive weight")
        require(self.checkpoints >= 1, "train.checkpoints", self.checkpoints, "use at least 1")
        require(self.keep_last >= 1, "train.keep_last", self.keep_last, "use at least 1")
