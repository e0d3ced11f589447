"""Training throughput of the smoke and cpu profiles: env steps/s and gradient updates/s of TQC.

Each profile trains its own TrainConfig (n_envs, batch size, gradient steps per env step, head, widths)
with a randomly initialised encoder of the profile's MAEConfig on a random market the size of a segment
span, from the encoder cache (the default) and, for comparison, re-encoding the market window on every
update. Timing starts after the replay buffer holds one batch. Runs in about a minute on 2 cores; the
headline (cpu profile, cached) is the last line.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from cryptorl.config import get_profile
from cryptorl.envs import MarketData
from cryptorl.models import CryptoMAE, attach_encoder_cache
from cryptorl.seeding import seed_everything
from cryptorl.training.tqc import build_tqc, encoder_cache_for, make_env

SPAN_BARS = 6000
VEC_STEPS = {"smoke": 60, "cpu": 15}  # vec-env steps timed per profile (each = n_envs env steps)


def measure(profile_name: str, use_encoder_cache: bool) -> tuple[float, float]:
    """(env steps/s, gradient updates/s) for one profile and encoder mode."""
    profile = get_profile(profile_name)
    seed_everything(0)
    warmup_steps = profile.train.batch_size  # enough transitions for the first batch
    config = dataclasses.replace(profile.train, use_encoder_cache=use_encoder_cache, learning_starts=warmup_steps,
                                 device="cpu")
    market = MarketData.random(SPAN_BARS, seed=0).with_slice(100, SPAN_BARS)
    encoder = CryptoMAE(profile.mae)
    env = make_env(market, config, profile.env, config.n_envs, seed=0, device=torch.device("cpu"))
    model = build_tqc(env, encoder, config, seed=0, tensorboard_dir=None)
    if use_encoder_cache:
        attach_encoder_cache(model.policy, encoder_cache_for(encoder, market, torch.device("cpu")))
    model.learn(total_timesteps=warmup_steps + config.n_envs)  # fill the buffer, first updates, warm caches
    steps, updates = model.num_timesteps, model._n_updates
    started = time.perf_counter()
    model.learn(total_timesteps=VEC_STEPS[profile_name] * config.n_envs, reset_num_timesteps=False)
    seconds = time.perf_counter() - started
    return (model.num_timesteps - steps) / seconds, (model._n_updates - updates) / seconds


def main() -> None:
    torch.set_num_threads(1)  # shared 2-core machine: one thread is faster and steadier for these sizes
    headline = 0.0
    for profile_name in ("smoke", "cpu"):
        results = {cached: measure(profile_name, cached) for cached in (False, True)}
        for cached, (steps_per_s, updates_per_s) in results.items():
            mode = "encoder cache" if cached else "re-encoding"
            print(f"{profile_name:5s} {mode:13s}: {steps_per_s:8.1f} env steps/s, {updates_per_s:7.1f} updates/s")
        print(f"{profile_name:5s} cache speed-up: {results[True][1] / results[False][1]:.2f}x updates/s")
        headline = results[True][0]
    print(f"cpu_env_steps_per_s={headline:.1f}")


if __name__ == "__main__":
    main()
