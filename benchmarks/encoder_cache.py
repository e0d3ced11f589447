"""How much faster is a TQC gradient step when the frozen encoder's outputs come from the cache?

One sb3-contrib TQC gradient step (batch 256) runs the features extractor five times — actor and
critic on the batch, actor and target critic on the next observations, the critic again for the
actor loss — and backpropagates through three of them. This times that real step with market-window
observations (encoder re-run every pass) against bar_index observations (embeddings gathered from
the cache), for the smoke, cpu and gpu (the original system's) model sizes and two heads. Prints one line per config,
then `ratio=<smallest speed-up>` last.
Usage: `python benchmarks/encoder_cache.py` (under 2 minutes on 2 CPU cores; goal ratio >= 5).
"""

from __future__ import annotations

import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import TQC

from cryptorl.config import PROFILES
from cryptorl.models import CryptoMAE, FoundationFeatureExtractor, MAEConfig, attach_encoder_cache, build_encoder_cache

BATCH = 256
N_BARS = 600
TIMED_STEPS = 5
SCALARS = {"position": spaces.Box(-1, 1, (1,), np.float32), "w_cost": spaces.Box(0, 10, (1,), np.float32)}


class WalkEnv(gym.Env):
    """Walks through one slice emitting either the market window or the bar index; reward 0."""

    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, market: np.ndarray, window: int, cached: bool) -> None:
        self.market, self.window, self.cached = market, window, cached  # market: (T, 55)
        key = {"bar_index": spaces.Box(0, len(market) - 1, (1,), np.float32)} if cached else {
            "market": spaces.Box(-np.inf, np.inf, (window, market.shape[1]), np.float32)}
        self.observation_space = spaces.Dict({**key, **SCALARS})

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.bar = self.window - 1
        return self._observation(), {}

    def step(self, action):
        self.bar += 1
        return self._observation(), 0.0, self.bar == len(self.market) - 1, False, {}

    def _observation(self) -> dict[str, np.ndarray]:
        key = {"bar_index": np.array([self.bar], np.float32)} if self.cached else {
            "market": self.market[self.bar - self.window + 1: self.bar + 1]}
        return {**key, "position": np.zeros(1, np.float32), "w_cost": np.ones(1, np.float32)}


def seconds_per_gradient_step(encoder: CryptoMAE, head: str, market: np.ndarray, cached: bool) -> float:
    env = WalkEnv(market, encoder.config.window, cached)
    policy_kwargs = {"features_extractor_class": FoundationFeatureExtractor, "net_arch": [256, 256],
                     "features_extractor_kwargs": {"encoder": encoder, "head": head}}
    model = TQC("MultiInputPolicy", env, policy_kwargs=policy_kwargs, batch_size=BATCH, buffer_size=4 * BATCH,
                learning_starts=2 * BATCH, seed=0)
    if cached:
        attach_encoder_cache(model.policy, build_encoder_cache(encoder, market[:, :50], market[:, 50:]))
    model.learn(total_timesteps=2 * BATCH)  # random actions until learning_starts: fills the buffer only
    model.train(gradient_steps=1, batch_size=BATCH)  # warm-up: allocations, first-call dispatch
    timings = []
    for _ in range(TIMED_STEPS):
        started = time.perf_counter()
        model.train(gradient_steps=1, batch_size=BATCH)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def benchmark(name: str, config: MAEConfig, head: str) -> float:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((N_BARS, config.input_dim))  # (T, 50)
    context = rng.dirichlet(np.ones(5), N_BARS)  # (T, 5)
    market = np.concatenate([features, context], axis=1).astype(np.float32)  # (T, 55)
    encoder = CryptoMAE(config).eval()
    reencode = seconds_per_gradient_step(encoder, head, market, cached=False)
    from_cache = seconds_per_gradient_step(encoder, head, market, cached=True)
    ratio = reencode / from_cache
    print(f"{name}: d_model={config.d_model} n_layers={config.n_layers} head={head} batch={BATCH} "
          f"re-encode={reencode * 1e3:.0f} ms cached={from_cache * 1e3:.0f} ms speed-up={ratio:.1f}x", flush=True)
    return ratio


def main() -> None:
    ratios = [benchmark(name, config, head)
              for name, config in (("smoke", PROFILES["smoke"].mae), ("cpu", PROFILES["cpu"].mae), ("gpu", MAEConfig()))
              for head in ("flatten", "attention_pool")]
    print(f"ratio={min(ratios):.2f}")


if __name__ == "__main__":
    main()
