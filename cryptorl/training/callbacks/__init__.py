"""SB3 callbacks of the TQC run: entropy floor, MORL w_cost curriculum, rotating checkpoints, unified metrics.

`make_callbacks` assembles them in the order their end-of-training hooks must run: the entropy floor
clamps the final update before the final checkpoint is saved, and the checkpoint's `eval/*` records are
dumped by the metrics callback in the same TensorBoard step.
"""

from __future__ import annotations

from pathlib import Path

from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.vec_env import VecEnv

from cryptorl.training.callbacks.checkpoints import (
    CHECKPOINT_EXCLUDE,
    RotatingCheckpointCallback,
    evaluate_mean_reward,
    latest_checkpoint,
    learn_until,
    list_checkpoints,
    restore_checkpoint,
    resume_or_create,
)
from cryptorl.training.callbacks.curriculum import MORLCurriculumCallback, WCostRange, w_cost_range_at
from cryptorl.training.callbacks.entropy import EntropyFloorCallback, current_ent_coef
from cryptorl.training.callbacks.metrics import ROLLOUT_METRICS, UnifiedMetricsCallback


def make_callbacks(
    save_dir: str | Path,
    save_freq_steps: int,
    log_freq_steps: int,
    *,
    min_ent_coef: float = 0.01,
    w_cost_start: WCostRange = (0.0, 0.0),
    w_cost_final: WCostRange = (0.0, 2.0),
    warmup_fraction: float = 0.1,
    ramp_fraction: float = 0.6,
    keep_last: int = 3,
    eval_env: VecEnv | None = None,
    eval_steps: int = 512,
) -> CallbackList:
    """The original system's four callbacks, configured, in a `CallbackList` for `model.learn(callback=...)`."""
    return CallbackList(
        [
            EntropyFloorCallback(min_ent_coef),
            MORLCurriculumCallback(w_cost_start, w_cost_final, warmup_fraction, ramp_fraction),
            RotatingCheckpointCallback(save_dir, save_freq_steps, keep_last, eval_env, eval_steps),
            UnifiedMetricsCallback(log_freq_steps),
        ]
    )


__all__ = [
    "CHECKPOINT_EXCLUDE",
    "ROLLOUT_METRICS",
    "EntropyFloorCallback",
    "MORLCurriculumCallback",
    "RotatingCheckpointCallback",
    "UnifiedMetricsCallback",
    "WCostRange",
    "current_ent_coef",
    "evaluate_mean_reward",
    "latest_checkpoint",
    "learn_until",
    "list_checkpoints",
    "make_callbacks",
    "restore_checkpoint",
    "resume_or_create",
    "w_cost_range_at",
]
