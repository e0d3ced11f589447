"""Train TQC on one segment, top to bottom (CleanRL style): seed, data, envs, encoder cache, model, learn.

The market encoder is the segment's frozen CryptoMAE; with `use_encoder_cache` every window's embedding
is computed once and the env sends only `bar_index` (no 64x55 window per step or per replay sample).
Training resumes from the latest rotating checkpoint in `work_dir` after a crash.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sb3_contrib import TQC
from stable_baselines3.common.buffers import DictReplayBuffer

from cryptorl.config import EnvConfig, TrainConfig
from cryptorl.envs import BatchCryptoEnv, MarketData, resolve_reward_scale
from cryptorl.models import CryptoMAE, FoundationFeatureExtractor, attach_encoder_cache, build_encoder_cache
from cryptorl.seeding import resolve_device, seed_everything
from cryptorl.training.callbacks import CHECKPOINT_EXCLUDE, learn_until, make_callbacks, resume_or_create
from cryptorl.training.critic import ExactCostPolicy
from cryptorl.training.learner import LeanTQC
from cryptorl.training.replay import CompactReplayBuffer

EVAL_ENVS = 16


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    checkpoint_dir: Path
    tensorboard_dir: Path
    timesteps: int
    updates: int
    seconds: float  # of this call (a resumed run counts only what it trained)
    resumed_from: int  # num_timesteps of the checkpoint training resumed from (0 = fresh)

    @property
    def steps_per_second(self) -> float:
        return (self.timesteps - self.resumed_from) / max(self.seconds, 1e-9)


def train_tqc(
    train_market: MarketData,
    eval_market: MarketData,
    encoder: CryptoMAE,
    config: TrainConfig,
    env_config: EnvConfig,
    *,
    seed: int,
    work_dir: Path,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) TQC until `config.total_timesteps`; the final model is `work_dir/model.zip`."""
    config.validate()
    seed_everything(seed)
    device = resolve_device(config.device)
    set_matmul_precision(device, config.tf32_matmul)
    env_config = resolve_reward_scale(env_config, train_market)
    train_env = make_env(train_market, config, training_env_config(env_config, config), config.n_envs, seed, device)
    eval_env = make_env(eval_market, config, env_config, EVAL_ENVS, seed + 1, device)  # the real fee
    cache = encoder_cache_for(encoder, train_market, device) if config.use_encoder_cache else None

    model = resume_or_create(
        lambda: build_tqc(train_env, encoder, config, seed, work_dir / "tensorboard"), work_dir / "checkpoints"
    )
    resumed_from = model.num_timesteps
    if cache is not None:
        attach_encoder_cache(model.policy, cache)
    callbacks = make_callbacks(
        work_dir / "checkpoints",
        save_freq_steps=max(config.total_timesteps // config.checkpoints, config.n_envs),
        log_freq_steps=config.log_every_steps,
        min_ent_coef=config.min_ent_coef,
        w_cost_final=(0.0, config.w_cost_final_high),
        warmup_fraction=config.curriculum_warmup_fraction,
        ramp_fraction=config.curriculum_ramp_fraction,
        keep_last=config.keep_last,
        eval_env=eval_env,
        eval_steps=config.eval_steps,
    )

    started = time.perf_counter()
    learn_until(
        model, config.total_timesteps, callback=callbacks, log_interval=None, progress_bar=progress, tb_log_name="tqc"
    )
    seconds = time.perf_counter() - started
    model.save(work_dir / "model.zip", exclude=list(CHECKPOINT_EXCLUDE))
    return TrainResult(
        work_dir / "model.zip",
        work_dir / "checkpoints",
        work_dir / "tensorboard",
        model.num_timesteps,
        model._n_updates,
        seconds,
        resumed_from,
    )


def training_env_config(env_config: EnvConfig, config: TrainConfig) -> EnvConfig:
    """The training env's dynamics: the real ones but for the fee, times `config.fee_multiplier`."""
    if config.fee_multiplier == 1.0:
        return env_config
    return dataclasses.replace(env_config, fee=env_config.fee * config.fee_multiplier)


def make_env(
    market: MarketData, config: TrainConfig, env_config: EnvConfig, n_envs: int, seed: int, device: torch.device
) -> BatchCryptoEnv:
    """A batched env; with the encoder cache it emits bar_index instead of the market window."""
    return BatchCryptoEnv(
        market,
        n_envs,
        env_config,
        device=device,
        include_bar_index=True,
        include_market=not config.use_encoder_cache,
        seed=seed,
    )


def build_tqc(
    env: BatchCryptoEnv,
    encoder: CryptoMAE,
    config: TrainConfig,
    seed: int,
    tensorboard_dir: Path | None,
    *,
    learner: type[TQC] = LeanTQC,
) -> TQC:
    """TQC with the FoundationFeatureExtractor, the compact replay buffer and `config`'s hyperparameters.

    `learner` is `LeanTQC` (the same update without the work nothing reads); benchmarks pass sb3-contrib's
    `TQC` to measure what that saves.
    """
    policy_kwargs = {
        "features_extractor_class": FoundationFeatureExtractor,
        "features_extractor_kwargs": {
            "encoder": encoder.cpu(),
            "head": config.head,
            "features_dim": config.features_dim,
            "state_passthrough": config.state_passthrough,
            "current_bar": config.current_bar,
        },
        "net_arch": list(config.net_arch),
        "n_quantiles": config.n_quantiles,
        "log_std_init": config.log_std_init,
        "optimizer_kwargs": {"fused": True} if config.fused_optimizer else {},
    }
    if config.exact_cost_critic:
        policy_kwargs.update(cost_per_unit=env.config.fee * env.config.reward_scale, execution=env.execution)
    # LeanTQC's own settings; sb3-contrib's TQC (the benchmarks' "today" learner) has neither.
    lean: dict[str, Any] = (
        {"smoothness": config.smoothness, "compile_mode": config.compile} if issubclass(learner, LeanTQC) else {}
    )
    return learner(
        ExactCostPolicy if config.exact_cost_critic else "MultiInputPolicy",
        env,
        learning_rate=linear_decay(config.learning_rate, config.lr_final_fraction),
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        train_freq=1,
        gradient_steps=config.gradient_steps,
        ent_coef=config.ent_coef,
        target_entropy=config.target_entropy,
        top_quantiles_to_drop_per_net=config.top_quantiles_to_drop,
        use_sde=config.use_sde,
        sde_sample_freq=config.sde_sample_freq,
        replay_buffer_class=CompactReplayBuffer,
        replay_buffer_kwargs={
            "market": env.market,
            "n_steps": config.n_steps,
            "gamma": config.gamma,
            "counterfactuals": config.counterfactual_actions,
            "env_config": env.config,
            "counterfactual_w_cost_high": config.w_cost_final_high * config.counterfactual_w_cost,
            "counterfactual_positions": config.counterfactual_positions,
        },
        policy_kwargs=policy_kwargs,
        tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
        seed=seed,
        device=env.device,
        verbose=0,
        **lean,
    )


def load_trained_model(path: str | Path | io.BufferedIOBase, device: str = "auto") -> TQC:
    """A saved TQC for inference (backtests, audit): no env, and a 1-transition placeholder replay buffer.

    Models are saved without `replay_buffer_kwargs` (the segment's market data), so the compact buffer
    cannot be rebuilt at load time; inference never samples a buffer anyway.
    """
    placeholder = {"replay_buffer_class": DictReplayBuffer, "replay_buffer_kwargs": {}, "buffer_size": 1}
    return TQC.load(path, device=resolve_device(device), custom_objects=placeholder)


def set_matmul_precision(device: torch.device, tf32: bool) -> None:
    """On CUDA, let float32 matmuls use TF32 tensor cores or not (a process-wide torch setting)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def linear_decay(initial: float, final_fraction: float) -> Callable[[float], float]:
    """SB3 schedule: `progress_remaining` goes 1 -> 0; the rate goes initial -> initial * final_fraction."""

    def schedule(progress_remaining: float) -> float:
        return initial * (final_fraction + (1.0 - final_fraction) * progress_remaining)

    return schedule


def encoder_cache_for(encoder: CryptoMAE, market: MarketData, device: torch.device):
    """Embeddings of the window ending at every bar of the segment span (train, eval and test share it)."""
    source = market.source.cpu().numpy()  # (T_span, 55)
    n_technical = encoder.config.input_dim
    return build_encoder_cache(
        encoder.to(device),
        source[:, :n_technical],
        source[:, n_technical:],
        dtype=torch.float16 if device.type == "cuda" else torch.float32,
        device=device,
    )
