"""Env steps per second: BatchCryptoEnv (1024 envs, torch, CPU) vs SB3 DummyVecEnv of 1024 CryptoTradingEnv.

Both step the same 5000-bar random market with random actions and (64, 55) windows. The batch env's step is
also compared with a plain `copy_` of its observation size (1024 x 64 x 55 float32 = 14.4 MB): a step must
at least write that much, so `copy_time / step_time` is the fraction of the memory-bound ideal reached.
Torch runs one thread: on a shared 2-core machine two threads contend and timings swing 5x; the ratios are
what this script reports. Runs in well under a minute; the headline is the last line.
Usage: `python benchmarks/env_throughput.py [--device cpu|cuda] [--envs 1024]`: on cuda the batch env and the
copy run on the GPU (the step includes the copy of the observation to pinned host memory SB3 reads), the
DummyVecEnv on the CPU as always.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from cryptorl.envs import BatchCryptoEnv, CryptoTradingEnv, EnvConfig, MarketData

N_BARS = 5000
CONFIG = EnvConfig(episode_length=512)


def median_seconds(timed: dict[str, tuple[Callable[[], object], int]], rounds: int = 5) -> dict[str, float]:
    """Median wall time per call of each function; rounds interleave them so a noisy neighbour hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for fn, _ in timed.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, (fn, calls) in timed.items():
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(times)) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--envs", type=int, default=1024)
    args = parser.parse_args()
    device, n_envs = torch.device(args.device), args.envs
    torch.set_num_threads(1)
    market = MarketData.random(N_BARS, n_features=55, seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (n_envs, 1)).astype(np.float32)
    batch = BatchCryptoEnv(market, n_envs, CONFIG, seed=0, device=device)
    batch.reset()
    dummy = DummyVecEnv([lambda: CryptoTradingEnv(market, CONFIG) for _ in range(n_envs)])
    dummy.seed(0)
    dummy.reset()
    source = torch.randn(n_envs, market.window, market.n_features, device=device)
    target = torch.empty_like(source)

    def copy() -> None:
        target.copy_(source)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the env step waits for its device work too (its numpy views)

    seconds = median_seconds({"batch": (lambda: batch.step(actions), 20), "dummy": (lambda: dummy.step(actions), 2),
                              "copy": (copy, 20)})
    batch_step, dummy_step, copy_time = seconds["batch"], seconds["dummy"], seconds["copy"]
    print(f"BatchCryptoEnv ({device}): {n_envs / batch_step:,.0f} env steps/s ({batch_step * 1e3:.2f} ms per step)")
    print(f"DummyVecEnv of CryptoTradingEnv: {n_envs / dummy_step:,.0f} env steps/s "
          f"({dummy_step * 1e3:.1f} ms per step)")
    print(f"copy_ of one observation batch ({source.nbytes / 1e6:.1f} MB): {copy_time * 1e3:.2f} ms "
          f"-> the batch step reaches {copy_time / batch_step:.0%} of the memory-bound ideal")
    print(f"ratio={dummy_step / batch_step:.1f}")


if __name__ == "__main__":
    main()
