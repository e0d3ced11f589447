"""How close does one CryptoMAE pretraining step come to the speed of its own matrix products?

The limit is the time of exactly the matrix products one step performs (input projection; per encoder
layer and the decoder layer the QKV projection, the attention-score and weighted-sum bmm, the output
projection and the two feed-forward layers; the reconstruct linear), forward and backward, run as plain
torch.mm / torch.bmm on random tensors. Backward is two GEMMs per weight product (grad input, grad
weight) and four bmm per attention; the raw windows need no grad, so the input projection has no
grad-input GEMM. Everything else a step does (layer norms, softmax, GELU, masking, the loss, clipping,
AdamW) is overhead over that limit. `measure_mae_step` times the limit and the real step
(`cryptorl.models.pretrain.train_step`, what `pretrain_mae` runs per batch) in interleaved rounds and
takes medians, so both figures see the same machine load.

Usage: `python benchmarks/mae_limit.py [--device cpu|cuda]` (about 15 s on CPU; one torch thread on
CPU). One line per profile (the gpu size only on cuda: a step of it takes ~4 s on one core), then
`mae_step_fraction_of_limit=<cpu profile>` last. Goal: >= 0.5.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cryptorl.config import PROFILES, MAEConfig
from cryptorl.models.foundation import CryptoMAE
from cryptorl.models.pretrain import make_optimizer, train_step

MAE_CONFIGS: dict[str, MAEConfig] = {name: PROFILES[name].mae for name in ("smoke", "cpu", "gpu")}


@dataclass(frozen=True)
class MatmulShape:
    """One GEMM (m, k) @ (k, n), `batch` of them as one bmm when batch > 1."""

    batch: int
    m: int
    k: int
    n: int


@dataclass(frozen=True)
class MAEStepTiming:
    """Median seconds of the step's matrix products alone (the limit) and of the real step."""

    limit_seconds: float
    step_seconds: float

    @property
    def fraction(self) -> float:
        """limit / step: 1.0 would mean the step does nothing but its matrix products."""
        return self.limit_seconds / self.step_seconds


def step_matmul_shapes(config: MAEConfig) -> list[MatmulShape]:
    """Every GEMM of one training step of `config`'s model on one batch, forward then backward."""
    tokens, d, heads = config.batch_size * config.window, config.d_model, config.n_heads
    bh, w, hd = config.batch_size * heads, config.window, d // heads
    forward, backward = [], []

    def linear(n_in: int, n_out: int, *, grad_input: bool = True) -> None:
        # y (N, out) = x (N, in) @ W^T; grads: dx = dy @ W (N, out)@(out, in), dW = dy^T @ x (out, N)@(N, in).
        forward.append(MatmulShape(1, tokens, n_in, n_out))
        backward.extend(([MatmulShape(1, tokens, n_out, n_in)] if grad_input else [])
                        + [MatmulShape(1, n_out, tokens, n_in)])

    def attention() -> None:
        # S = Q K^T (W, hd)@(hd, W); O = P V (W, W)@(W, hd); backward dQ, dK, dP, dV per head.
        forward.extend([MatmulShape(bh, w, hd, w), MatmulShape(bh, w, w, hd)])
        backward.extend([MatmulShape(bh, w, w, hd), MatmulShape(bh, w, w, hd),
                         MatmulShape(bh, w, hd, w), MatmulShape(bh, w, w, hd)])

    linear(config.input_dim, d, grad_input=False)
    for _ in range(config.n_layers + 1):  # the encoder layers, then the decoder layer
        linear(d, 3 * d)
        attention()
        linear(d, d)
        linear(d, config.dim_feedforward)
        linear(config.dim_feedforward, d)
    linear(d, config.input_dim)
    return forward + backward


def matmul_pass(shapes: list[MatmulShape], device: torch.device) -> Callable[[], None]:
    """A function running every GEMM of `shapes` once on random operands, outputs preallocated.

    All operands are views of three shared buffers, so they sit in cache the way the activations a step
    has just written do. A fresh tensor per GEMM would stream every operand from memory: on the 2-core
    development machine that pass took twice as long as the real step's own GEMMs, so it bounds nothing.
    """
    largest = max(max(s.batch * s.m * s.k, s.batch * s.k * s.n, s.batch * s.m * s.n) for s in shapes)
    left, right, out = (torch.randn(largest, device=device) for _ in range(3))

    def view(buffer: torch.Tensor, batch: int, rows: int, columns: int) -> torch.Tensor:
        return buffer[: batch * rows * columns].view(*((batch,) if batch > 1 else ()), rows, columns)

    operands = [(view(left, s.batch, s.m, s.k), view(right, s.batch, s.k, s.n), view(out, s.batch, s.m, s.n))
                for s in shapes]

    def run() -> None:
        for a, b, c in operands:
            (torch.bmm if a.ndim == 3 else torch.mm)(a, b, out=c)
    return run


def seconds(function: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call, waiting for the device's queued work on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def measure_mae_step(config: MAEConfig, device: torch.device, *, rounds: int = 15, warmup: int = 3,
                     seed: int = 0) -> MAEStepTiming:
    """Time `config`'s matrix-product limit and its real training step on `device` in one run.

    Each of `warmup` + `rounds` rounds runs the limit pass then one real step (random features, a fresh
    model and AdamW as `pretrain_mae` builds them); the medians of the timed rounds are returned.
    Thread settings are the caller's (main() pins CPU runs to one thread).
    """
    torch.manual_seed(seed)
    limit_pass = matmul_pass(step_matmul_shapes(config), device)
    model = CryptoMAE(config).to(device).train()
    optimizer = make_optimizer(model, config)
    n_bars = config.window + 4 * config.batch_size
    series = torch.randn(n_bars, config.input_dim, device=device)  # (T, F)
    ends = torch.arange(config.window - 1, n_bars, device=device)  # (N,)

    def real_step() -> None:
        batch_ends = ends[torch.randint(len(ends), (config.batch_size,), device=device)]
        train_step(model, optimizer, series, batch_ends, config)

    limits, steps = [], []
    for round_index in range(warmup + rounds):
        limit, step = seconds(limit_pass, device), seconds(real_step, device)
        if round_index >= warmup:
            limits.append(limit)
            steps.append(step)
    return MAEStepTiming(statistics.median(limits), statistics.median(steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu (default) or cuda")
    device = torch.device(parser.parse_args().device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    headline = 0.0
    for name, config in MAE_CONFIGS.items():
        if name == "gpu" and device.type == "cpu":
            print("gpu   skipped on cpu: a step of the seed's size takes ~4 s on one core; run with --device cuda")
            continue
        timing = measure_mae_step(config, device)
        print(f"{name:5s} d_model={config.d_model:3d} layers={config.n_layers} batch={config.batch_size:3d}: "
              f"limit {timing.limit_seconds * 1e3:8.2f} ms, step {timing.step_seconds * 1e3:8.2f} ms, "
              f"fraction {timing.fraction:.3f}")
        headline = timing.fraction if name == "cpu" else headline
    print(f"mae_step_fraction_of_limit={headline:.3f}")


if __name__ == "__main__":
    main()
