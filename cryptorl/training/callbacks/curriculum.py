"""`MORLCurriculumCallback`: widen the range the env draws each episode's cost weight w_cost from.

Multi-objective RL over the fee: every episode draws w_cost ~ U[low, high] and sees it in its observation,
so one policy learns the whole return/turnover trade-off. Starting with (nearly) free trading lets the agent
first learn that positions earn something; costs are then phased in, so it never learns the cheap lesson of
the original system that "holding one position forever is optimal" before it has learnt anything else.
"""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from cryptorl.errors import ConfigError

WCostRange = tuple[float, float]


def w_cost_range_at(
    progress: float, start_range: WCostRange, final_range: WCostRange, warmup_fraction: float, ramp_fraction: float
) -> WCostRange:
    """The range at `progress` in [0, 1]: `start_range` during the warm-up, linear over the ramp, then final."""
    if ramp_fraction == 0:
        t = 0.0 if progress < warmup_fraction else 1.0
    else:
        t = min(max((progress - warmup_fraction) / ramp_fraction, 0.0), 1.0)
    low = start_range[0] + t * (final_range[0] - start_range[0])
    high = start_range[1] + t * (final_range[1] - start_range[1])
    return low, high


class MORLCurriculumCallback(BaseCallback):
    """Move the training env's w_cost range along `w_cost_range_at(num_timesteps / total_timesteps, ...)`.

    The range is re-evaluated once per `update_every` of progress (not every step) and pushed to the env with
    `env_method("set_w_cost_range", low, high)` only when it changed; episodes that start afterwards draw
    from it. Progress uses the model's absolute total, so a resumed run continues the schedule where the
    checkpoint left it. Logs `curriculum/w_cost_low` and `curriculum/w_cost_high`.
    """

    def __init__(
        self,
        start_range: WCostRange = (0.0, 0.0),
        final_range: WCostRange = (0.0, 2.0),
        warmup_fraction: float = 0.1,
        ramp_fraction: float = 0.6,
        update_every: float = 0.01,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        for name, (low, high) in (("start_range", start_range), ("final_range", final_range)):
            if not 0 <= low <= high:
                raise ConfigError(f"MORLCurriculumCallback {name}=({low}, {high}): use 0 <= low <= high")
        for name, fraction in (("warmup_fraction", warmup_fraction), ("ramp_fraction", ramp_fraction)):
            if not 0 <= fraction <= 1:
                raise ConfigError(f"MORLCurriculumCallback {name}={fraction!r}: use a fraction of training in [0, 1]")
        if warmup_fraction + ramp_fraction > 1:
            raise ConfigError(
                f"MORLCurriculumCallback warmup_fraction + ramp_fraction = "
                f"{warmup_fraction + ramp_fraction:g} > 1: shorten one so the ramp ends within training"
            )
        if not 0 < update_every <= 1:
            raise ConfigError(
                f"MORLCurriculumCallback update_every={update_every!r}: use a fraction in (0, 1], e.g. 0.01"
            )
        self.start_range, self.final_range = start_range, final_range
        self.warmup_fraction, self.ramp_fraction = warmup_fraction, ramp_fraction
        self.update_every = update_every
        self.current_range: WCostRange | None = None
        self._bucket = -1  # index of the last progress interval the range was evaluated in

    def _on_training_start(self) -> None:
        self._bucket = -1  # the env may be fresh (a resume): always apply the range once
        self.current_range = None
        self._update()
        # SB3 reset the env (drawing the first episodes' w_costs from the env's own range) before any
        # callback ran: start those episodes again so they too draw from the curriculum's range.
        self.model._last_obs = self.training_env.reset()  # type: ignore[assignment]  # SB3's VecEnvObs holds tuples too

    def _on_step(self) -> bool:
        self._update()
        return True

    def _update(self) -> None:
        progress = min(self.num_timesteps / max(self.model._total_timesteps, 1), 1.0)
        bucket = int(progress / self.update_every)
        if bucket == self._bucket:
            return
        self._bucket = bucket
        new_range = w_cost_range_at(
            progress, self.start_range, self.final_range, self.warmup_fraction, self.ramp_fraction
        )
        if new_range != self.current_range:
            self.training_env.env_method("set_w_cost_range", *new_range)
            self.current_range = new_range
            self.logger.record("curriculum/w_cost_low", new_range[0])
            self.logger.record("curriculum/w_cost_high", new_range[1])
