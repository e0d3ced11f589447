"""`EntropyFloorCallback`: keep SAC/TQC's learned entropy coefficient above a floor.

Why: the original system collapsed to a constant position while `ent_coef` decayed to ~0. With a reward this small the
automatic temperature tuning keeps lowering the coefficient whenever the policy's entropy is above the
target; near 0 the actor maximises Q alone and settles on one action that nothing pushes it away from. A
floor keeps a minimum of exploration pressure while still letting the coefficient adapt above it.
"""

from __future__ import annotations

import math

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from cryptorl.errors import ConfigError


def current_ent_coef(model: BaseAlgorithm) -> float:
    """The coefficient the next update uses: exp(log_ent_coef) when learned ("auto"), else the fixed value."""
    log_ent_coef = getattr(model, "log_ent_coef", None)
    if log_ent_coef is not None:
        return float(log_ent_coef.detach().exp().item())
    fixed = getattr(model, "ent_coef_tensor", None)
    if fixed is None:
        raise ConfigError(
            f"{type(model).__name__} has no entropy coefficient: the entropy floor and metrics "
            "need an entropy-regularised algorithm (TQC or SAC)"
        )
    return float(fixed.item())


class EntropyFloorCallback(BaseCallback):
    """Clamp `model.log_ent_coef` so that exp(log_ent_coef) >= `min_ent_coef` after every update.

    SB3 calls `train()` between two rollouts, so the clamp runs at every rollout start (right after the
    previous update), at training start (a resumed or "auto_0.001" coefficient) and at training end (the
    final update, before a final checkpoint). Inside one `train()` call the coefficient may dip below the
    floor for a few gradient steps; a callback cannot reach in there. A fixed `ent_coef` below the floor is a
    contradiction in the config and is refused before training starts.
    """

    def __init__(self, min_ent_coef: float = 0.01, verbose: int = 0):
        super().__init__(verbose)
        if not min_ent_coef > 0:
            raise ConfigError(f"EntropyFloorCallback min_ent_coef={min_ent_coef!r}: use a positive floor, e.g. 0.01")
        self.min_ent_coef = min_ent_coef
        self.min_log_ent_coef = math.log(min_ent_coef)

    def _init_callback(self) -> None:
        ent_coef = current_ent_coef(self.model)  # also refuses algorithms without an entropy coefficient
        if getattr(self.model, "log_ent_coef", None) is None and ent_coef < self.min_ent_coef:
            raise ConfigError(
                f"fixed ent_coef={ent_coef:g} is below EntropyFloorCallback min_ent_coef="
                f"{self.min_ent_coef:g}: use ent_coef='auto_0.5' (learned, floored) or a fixed "
                f"value >= {self.min_ent_coef:g}"
            )

    def _on_training_start(self) -> None:
        self._clamp()

    def _on_rollout_start(self) -> None:
        self._clamp()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._clamp()

    def _clamp(self) -> None:
        log_ent_coef = getattr(self.model, "log_ent_coef", None)  # None: a fixed coefficient
        if log_ent_coef is not None:
            with torch.no_grad():  # in place: the entropy optimizer holds this very tensor
                log_ent_coef.clamp_(min=self.min_log_ent_coef)
