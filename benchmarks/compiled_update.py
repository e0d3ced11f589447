"""Does the compiled update (`train.compile`) pay? Compile time, and updates/s against the eager update.

Per profile and compile mode, one learner is built exactly as `learner_limit.build_learner` builds the current
one (same seed, same random market and encoder of the profile's size); the eager learner is the shipped
default (`train.compile=off`, fused Adam). The first `train` call of a compiled learner compiles (its seconds
are printed); then, in interleaved rounds (medians), one `train(gradient_steps)` call of each learner and the
pass of the update's matrix products (`learner_limit`'s limit).

Usage: `python benchmarks/compiled_update.py [--device cpu|cuda] [--profiles cpu] [--modes default]`
(a few minutes on CPU at one torch thread; on CUDA add `--modes default,reduce-overhead` for CUDA graphs).
The last line is `compiled_speedup=<eager seconds per update / compiled, last profile and mode>`: above 1, the
compiled update pays.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cryptorl.config import Profile, get_profile
from cryptorl.training.learner import LeanTQC
from learner_limit import build_learner, update_matmul_shapes
from mae_limit import matmul_pass, seconds


def compiled_learner(profile: Profile, device: torch.device, mode: str) -> tuple[LeanTQC, float]:
    """The current learner switched to the compiled update, and the seconds its first update (the compile) took."""
    model = build_learner(profile, device, today=False)
    assert isinstance(model, LeanTQC)
    model.compile_mode = mode
    started = time.perf_counter()
    model.train(1, profile.train.batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return model, time.perf_counter() - started


def measure(profile: Profile, device: torch.device, mode: str, rounds: int) -> float:
    """Print the compile time, eager and compiled ms per update and the limit's; return the speedup."""
    eager = build_learner(profile, device, today=False)
    compiled, compile_seconds = compiled_learner(profile, device, mode)
    batch, steps = profile.train.batch_size, profile.train.gradient_steps
    limit_pass = matmul_pass(update_matmul_shapes(eager, batch), device)
    samples: dict[str, list[float]] = {"limit": [], "eager": [], "compiled": []}
    for round_index in range(rounds + 1):  # the first round warms up (CUDA graphs record on their first calls)
        timed = {
            "limit": seconds(limit_pass, device),
            "eager": seconds(lambda: eager.train(steps, batch), device) / steps,
            "compiled": seconds(lambda: compiled.train(steps, batch), device) / steps,
        }
        if round_index:
            for name, value in timed.items():
                samples[name].append(value)
    limit, eager_s, compiled_s = (statistics.median(samples[name]) for name in ("limit", "eager", "compiled"))
    speedup = eager_s / compiled_s
    print(
        f"{profile.name:>6} {mode:>15}: compile {compile_seconds:5.1f} s | eager {1e3 * eager_s:7.2f} ms/update "
        f"({1 / eager_s:6.0f}/s, {limit / eager_s:.2f} of the matmul limit) | compiled {1e3 * compiled_s:7.2f} "
        f"ms/update ({1 / compiled_s:6.0f}/s, {limit / compiled_s:.2f} of the limit) | speedup {speedup:.2f}x"
    )
    return speedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--profiles", default="cpu", help="comma-separated profiles, e.g. gpu on cuda")
    parser.add_argument("--modes", default="default", help="comma-separated: default, reduce-overhead")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # shared 2-core machine: one thread, as training runs (README "Threads")
    speedup = 0.0
    for name in args.profiles.split(","):
        for mode in args.modes.split(","):
            speedup = measure(get_profile(name), device, mode, args.rounds)
    print(f"compiled_speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
