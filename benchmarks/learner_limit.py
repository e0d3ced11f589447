"""How close does one TQC update come to the speed of its own matrix products, and how much faster is it
than sb3-contrib's `TQC.train` with the code as it was (the "today" learner of issue 12)?

The limit is the time of the matrix products one update of `LeanTQC` performs, run as plain torch.mm on
operands already in cache (`mae_limit.matmul_pass`). They are recorded from one real update with a
forward hook on every nn.Linear of the policy (actor and critic extractors' FiLM and projection, the
actor's and the critics' MLPs): each call is one forward GEMM, plus a grad-input GEMM when its input
requires grad and a grad-weight GEMM when its weight does. That is the update's necessary math: the
five extractor forwards (actor on the batch and on the next observations, target critic, critic for its
loss and again, after its step, for the actor loss) and the backwards the two losses need. Everything
else (elementwise ops, the quantile loss, the optimizers, Python) is overhead over that limit.

Per profile, in interleaved rounds (medians): the limit pass, one `train(gradient_steps)` call of the
current learner (`build_tqc`'s default) and one of today's learner (sb3-contrib `TQC`, SB3's per-op Adam,
no encoder-cache memo), both built from the same seed on the same random market with a random encoder
of the profile's size. Then the CryptoMAE pretraining step against its own limit (`mae_limit`).

Usage: `python benchmarks/learner_limit.py [--device cpu|cuda] [--profiles smoke,cpu]` (about two minutes
on CPU, one torch thread). The last line is `update_fraction_of_limit=<cpu profile>` (or of the last
profile run). Goals: cpu >= 0.5 of the limit and >= 3x today's updates/s; smoke >= 3x.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from dataclasses import dataclass

import torch
from sb3_contrib import TQC
from torch import nn

from cryptorl.config import Profile, get_profile
from cryptorl.envs import MarketData
from cryptorl.models import CryptoMAE, attach_encoder_cache
from cryptorl.seeding import seed_everything
from cryptorl.training.tqc import build_tqc, encoder_cache_for, make_env, set_matmul_precision
from mae_limit import MatmulShape, matmul_pass, measure_mae_step, seconds

SPAN_BARS = 6000  # a random market about the size of a cpu-profile segment's span


@dataclass(frozen=True)
class UpdateTiming:
    """Median seconds per gradient step: the matrix-product limit, the current learner, today's learner."""

    limit_seconds: float
    lean_seconds: float
    today_seconds: float

    @property
    def fraction(self) -> float:
        return self.limit_seconds / self.lean_seconds

    @property
    def speedup(self) -> float:
        return self.today_seconds / self.lean_seconds


def build_learner(profile: Profile, device: torch.device, *, today: bool, use_encoder_cache: bool = True) -> TQC:
    """The profile's TQC with its replay buffer holding a few batches (seeded: both learners start equal).

    today: sb3-contrib's `TQC`, per-op Adam and no encoder-cache memo, instead of the current learner.
    """
    seed_everything(0)
    config = dataclasses.replace(profile.train, learning_starts=profile.train.batch_size, device=str(device),
                                 fused_optimizer=profile.train.fused_optimizer and not today,
                                 use_encoder_cache=use_encoder_cache)
    market = MarketData.random(SPAN_BARS, seed=0, device=device).with_slice(100, SPAN_BARS)
    encoder = CryptoMAE(profile.mae)
    env = make_env(market, config, profile.env, config.n_envs, seed=0, device=device)
    model = build_tqc(env, encoder, config, seed=0, tensorboard_dir=None, **({"learner": TQC} if today else {}))
    if use_encoder_cache:
        cache = encoder_cache_for(encoder, market, device)
        cache.memo_size = 0 if today else cache.memo_size
        attach_encoder_cache(model.policy, cache)
    model.learn(total_timesteps=config.batch_size + 2 * config.n_envs)
    return model


def update_matmul_shapes(model: TQC, batch_size: int) -> list[MatmulShape]:
    """The GEMMs of one real update of `model`, recorded by forward hooks on every nn.Linear of its policy."""
    shapes: list[MatmulShape] = []

    def record(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0]
        rows, n_in, n_out = x.numel() // x.shape[-1], module.in_features, module.out_features
        shapes.append(MatmulShape(1, rows, n_in, n_out))  # y = x W^T
        if torch.is_grad_enabled() and x.requires_grad:
            shapes.append(MatmulShape(1, rows, n_out, n_in))  # dx = dy W
        if torch.is_grad_enabled() and module.weight.requires_grad:
            shapes.append(MatmulShape(1, n_out, rows, n_in))  # dW = dy^T x

    hooks = [m.register_forward_hook(record) for m in model.policy.modules() if isinstance(m, nn.Linear)]
    try:
        model.train(1, batch_size)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def measure_update(profile: Profile, device: torch.device, rounds: int = 7) -> UpdateTiming:
    """Median per-gradient-step seconds of the limit and both learners, in interleaved rounds."""
    lean, today = build_learner(profile, device, today=False), build_learner(profile, device, today=True)
    batch, steps = profile.train.batch_size, profile.train.gradient_steps
    limit_pass = matmul_pass(update_matmul_shapes(lean, batch), device)
    samples: dict[str, list[float]] = {"limit": [], "lean": [], "today": []}
    for round_index in range(rounds + 1):  # the first round warms up
        timed = {"limit": seconds(limit_pass, device),
                 "lean": seconds(lambda: lean.train(steps, batch), device) / steps,
                 "today": seconds(lambda: today.train(steps, batch), device) / steps}
        if round_index:
            for name, value in timed.items():
                samples[name].append(value)
    return UpdateTiming(*(statistics.median(samples[name]) for name in ("limit", "lean", "today")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--profiles", default="smoke,cpu", help="comma-separated profiles, e.g. gpu on cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # shared 2-core machine: one thread is faster and steadier at these sizes
    fraction = 0.0
    for name in args.profiles.split(","):
        profile = get_profile(name)
        set_matmul_precision(device, profile.train.tf32_matmul)  # the limit pass runs at the training precision
        update = measure_update(profile, device)
        mae = measure_mae_step(profile.mae, device)
        print(f"{name:5s} update: limit {update.limit_seconds * 1e3:7.2f} ms, LeanTQC {update.lean_seconds * 1e3:7.2f} "
              f"ms ({update.fraction:.0%} of the limit, {1 / update.lean_seconds:7.1f} updates/s), today's TQC "
              f"{update.today_seconds * 1e3:7.2f} ms ({update.limit_seconds / update.today_seconds:.0%}, "
              f"{1 / update.today_seconds:7.1f} updates/s): {update.speedup:.2f}x")
        print(f"{name:5s} MAE step: limit {mae.limit_seconds * 1e3:7.2f} ms, step {mae.step_seconds * 1e3:7.2f} ms "
              f"({mae.fraction:.0%} of the limit)")
        fraction = update.fraction
    print(f"update_fraction_of_limit={fraction:.2f}")


if __name__ == "__main__":
    main()
