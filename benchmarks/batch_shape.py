"""Fewer, larger updates: env steps/s of `learn` for `train.batch_size` x gradient steps at the same samples
per env step (batch_size x replay_ratio fixed), against the profile's own shape.

FastTD3's route to speed is far larger batches and fewer updates: the same number of sampled transitions per
env step costs fewer kernel launches and fewer optimizer steps. Each shape here is the profile's learner
(`learner_limit.build_learner`: same seed, random market and encoder of the profile's size) with only
`train.batch_size` and `train.replay_ratio` changed; `learn` is timed in interleaved rounds (medians). Whether a
shape also learns as well is the learnability harness's and the study's question (README "Benchmarks").

Usage: `python benchmarks/batch_shape.py [--device cpu|cuda] [--profile cpu] [--batches 128,256,512]`
(the first batch is the baseline; on the gpu profile e.g. `--batches 512,4096`). Last line:
`largest_batch_speedup=<env steps/s of the last shape / the first's>`.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from cryptorl.config import Profile, get_profile
from learner_limit import build_learner
from train_throughput import timed_learn


def reshaped(profile: Profile, batch_size: int) -> Profile:
    """`profile` with `batch_size` and the replay ratio that keeps batch_size x replay_ratio (samples per env
    step) the profile's."""
    samples_per_step = profile.train.batch_size * profile.train.replay_ratio
    train = dataclasses.replace(profile.train, batch_size=batch_size, replay_ratio=samples_per_step / batch_size)
    return dataclasses.replace(profile, train=train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--batches", default="128,256,512", help="comma-separated batch sizes; the first is the base")
    parser.add_argument("--vec-steps", type=int, default=5, help="vec-env steps timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # shared 2-core machine: one thread, as training runs (README "Threads")
    profile = get_profile(args.profile)
    shapes = {batch: reshaped(profile, batch) for batch in map(int, args.batches.split(","))}
    models = {batch: build_learner(shape, device, today=False) for batch, shape in shapes.items()}
    samples: dict[int, list[tuple[float, float]]] = {batch: [] for batch in shapes}
    for _ in range(args.rounds):
        for batch, model in models.items():
            samples[batch].append(timed_learn(model, args.vec_steps))
    base, largest = next(iter(shapes)), list(shapes)[-1]
    medians = {batch: tuple(statistics.median(values) for values in zip(*runs)) for batch, runs in samples.items()}
    for batch, (steps_per_s, updates_per_s) in medians.items():
        train = shapes[batch].train
        print(
            f"{args.profile} batch {batch:5d} x {train.gradient_steps:4d} updates per vec step "
            f"({train.batch_size * train.gradient_steps / train.n_envs:g} samples per env step): "
            f"{steps_per_s:9.1f} env steps/s, {updates_per_s:8.1f} updates/s, "
            f"{steps_per_s / medians[base][0]:.2f}x the base"
        )
    print(f"largest_batch_speedup={medians[largest][0] / medians[base][0]:.2f}")


if __name__ == "__main__":
    main()
