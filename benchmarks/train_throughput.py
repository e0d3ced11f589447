"""Training throughput of the smoke and cpu profiles: env steps/s and gradient updates/s of TQC's `learn` loop.

Each profile trains its own TrainConfig (n_envs, batch size, gradient steps per env step, head, widths)
with a randomly initialised encoder of the profile's MAEConfig on a random market the size of a segment
span (`learner_limit.build_learner`), with the current learner (LeanTQC) from the encoder cache (the
default) and re-encoding the market window on every update, and with today's learner (sb3-contrib TQC,
per-op Adam, no cache memo) from the cache, each after the replay buffer holds a few batches. The modes
are timed in interleaved rounds (medians). Runs in about two minutes on 2 cores; the last line is the
cpu profile's cached updates/s speed-up over today's learner.
"""

from __future__ import annotations

import statistics
import time

import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from cryptorl.config import get_profile
from learner_limit import build_learner

VEC_STEPS = {"smoke": 20, "cpu": 5}  # vec-env steps timed per round (each = n_envs env steps)
ROUNDS = 3
MODES = {"LeanTQC, encoder cache": {"today": False}, "LeanTQC, re-encoding": {"today": False, "use_encoder_cache": False},
         "today's TQC, encoder cache": {"today": True}}


def timed_learn(model: BaseAlgorithm, vec_steps: int) -> tuple[float, float]:
    """(env steps/s, gradient updates/s) of `vec_steps` more vec-env steps of `model.learn`."""
    steps, updates = model.num_timesteps, model._n_updates
    started = time.perf_counter()
    model.learn(total_timesteps=vec_steps * model.n_envs, reset_num_timesteps=False)
    seconds = time.perf_counter() - started
    return (model.num_timesteps - steps) / seconds, (model._n_updates - updates) / seconds


def main() -> None:
    torch.set_num_threads(1)  # shared 2-core machine: one thread is faster and steadier for these sizes
    speedup = 0.0
    for name in ("smoke", "cpu"):
        profile = get_profile(name)
        models = {mode: build_learner(profile, torch.device("cpu"), **kwargs) for mode, kwargs in MODES.items()}
        samples: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
        for _ in range(ROUNDS):
            for mode, model in models.items():
                samples[mode].append(timed_learn(model, VEC_STEPS[name]))
        medians = {mode: tuple(statistics.median(values) for values in zip(*runs)) for mode, runs in samples.items()}
        for mode, (steps_per_s, updates_per_s) in medians.items():
            print(f"{name:5s} {mode:27s}: {steps_per_s:8.1f} env steps/s, {updates_per_s:7.1f} updates/s")
        speedup = medians["LeanTQC, encoder cache"][1] / medians["today's TQC, encoder cache"][1]
        print(f"{name:5s} cache speed-up {medians['LeanTQC, encoder cache'][1] / medians['LeanTQC, re-encoding'][1]:.2f}x"
              f", LeanTQC over today's TQC {speedup:.2f}x updates/s")
    print(f"cpu_update_speedup_over_today={speedup:.2f}")


if __name__ == "__main__":
    main()
