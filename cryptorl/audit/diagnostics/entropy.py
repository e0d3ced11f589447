"""Was the reward too small against the entropy bonus? The original system's collapse hypothesis, measured.

TQC maximises r + α·H per step (α = ent_coef, H = -log π). When α·|H| dwarfs the spread of r, the actor
is paid more for the shape of its noise than for where it trades; when α decays to ~0, nothing keeps it
exploring. Both show in the ratio of the entropy bonus to the reward's standard deviation, and in the
ent_coef trajectory that training logged to TensorBoard (`train/ent_coef`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from cryptorl.errors import ArtifactNotFoundError

# |H| per step when the policy's entropy is not passed: |TQC's target entropy| = action_dim = 1 nat,
# the entropy the automatic temperature steers the 1-D position policy towards.
DEFAULT_ENTROPY_SCALE = 1.0


@dataclass(frozen=True)
class ScalarSeries:
    """One TensorBoard scalar, sorted by step (a step logged twice keeps its last value)."""

    tag: str
    steps: list[int]
    values: list[float]


@dataclass(frozen=True)
class EntropyDiagnostics:
    final_ent_coef: float
    ent_coef_first: float  # first / min / max of the trajectory (all final_ent_coef without one)
    ent_coef_min: float
    ent_coef_max: float
    n_points: int  # trajectory length (0 without one)
    entropy_scale: float  # |H| in nats per step: the policy's measured entropy, or DEFAULT_ENTROPY_SCALE
    bonus_scale: float  # final_ent_coef * entropy_scale: the entropy term per step
    reward: dict[str, float]  # per-step reward statistics: mean, std, min, max
    bonus_to_reward_std: float  # bonus_scale / reward std (0.0 when the reward has no spread)
    entropy_dominates: bool  # bonus_to_reward_std > 1


def entropy_diagnostics(
    ent_coef_trajectory: Sequence[float] | None,
    final_ent_coef: float,
    reward_stats: Mapping[str, float],
    policy_entropy: float | None = None,
) -> EntropyDiagnostics:
    """Compare the entropy bonus with the reward's spread.

    `reward_stats` has mean, std, min, max of the scaled per-step rewards (e.g. `asdict` of a backtest's
    RewardStats); `policy_entropy` is the policy's entropy in nats (e.g. ActionDiagnostics.entropy_mean).
    """
    trajectory = list(ent_coef_trajectory or [final_ent_coef])
    scale = abs(policy_entropy) if policy_entropy is not None else DEFAULT_ENTROPY_SCALE
    bonus = final_ent_coef * scale
    reward_std = float(reward_stats["std"])
    ratio = bonus / reward_std if reward_std > 0 else 0.0
    return EntropyDiagnostics(
        final_ent_coef=float(final_ent_coef),
        ent_coef_first=float(trajectory[0]),
        ent_coef_min=float(min(trajectory)),
        ent_coef_max=float(max(trajectory)),
        n_points=len(ent_coef_trajectory or []),
        entropy_scale=float(scale),
        bonus_scale=float(bonus),
        reward={key: float(value) for key, value in reward_stats.items()},
        bonus_to_reward_std=ratio,
        entropy_dominates=ratio > 1.0,
    )


def read_scalar_trajectory(tensorboard_dir: str | Path, tag: str) -> ScalarSeries:
    """The scalar `tag` (e.g. "train/ent_coef") from every TensorBoard run under the local `tensorboard_dir`."""
    root = Path(tensorboard_dir)
    runs = sorted({path.parent for path in root.rglob("events.out.tfevents*")})
    if not runs:
        raise ArtifactNotFoundError(
            f"no TensorBoard event files under {root}: pass the training run's "
            "tensorboard_dir (TrainResult.tensorboard_dir)"
        )
    points: dict[int, float] = {}
    tags: set[str] = set()
    for run in runs:
        accumulator = EventAccumulator(str(run), size_guidance={SCALARS: 0})  # 0 = keep every point
        accumulator.Reload()
        tags.update(accumulator.Tags()[SCALARS])
        if tag in accumulator.Tags()[SCALARS]:
            points.update({event.step: event.value for event in accumulator.Scalars(tag)})
    if not points:
        raise ArtifactNotFoundError(
            f"no scalar {tag!r} in the TensorBoard logs under {root}: use one of "
            f"{', '.join(sorted(tags)) or 'no scalar tags found'}"
        )
    steps = sorted(points)
    return ScalarSeries(tag, steps, [float(points[step]) for step in steps])
