"""`CompiledUpdate`: LeanTQC's update (`LeanTQC.update`) run through `torch.compile` (`train.compile`).

An eager update launches hundreds of small kernels from Python; compiled, inductor fuses them, and on CUDA
`reduce-overhead` replays the result as CUDA graphs (no host dispatch per kernel). What that needs, and where
it is done:
- static shapes and addresses: each replay sample is copied into preallocated buffers (`StaticBatch`), the
  graph's inputs, marked static so CUDA graphs read them in place;
- learning rates the graph reads, not bakes in: every optimizer's `lr` becomes a 0-d tensor written in place
  by SB3's schedule (`set_learning_rate`); on CUDA the optimizers are capturable (their step counts live on
  the GPU); Adam's fused kernel is off (inductor fuses the update itself);
- no host syncs in the graph: the encoder cache's index check runs before the graph (`EncoderCache.check`),
  and inside it the lookup is the bare gather; losses come back as one (4,) row per update, read once per
  `train` call;
- graph-safe randomness: the policy's Gaussian noise is drawn by `torch.randn` inside the graph (inductor's
  Philox generator on CUDA graphs); the counterfactual actions are drawn by the replay, outside.

sb3-contrib is overridden, never forked: the compiled function is the same method the eager update runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from stable_baselines3.common.type_aliases import DictReplayBufferSamples

from cryptorl.envs.market import BAR_INDEX

if TYPE_CHECKING:
    from cryptorl.models.rl_adapter import EncoderCache
    from cryptorl.training.learner import LeanTQC


class StaticBatch:
    """Preallocated copies of one replay sample's tensors; `fill` copies a new sample into them in place."""

    def __init__(self, data: DictReplayBufferSamples) -> None:
        self.samples = _map(data, lambda tensor: tensor.clone())
        for tensor in _tensors(self.samples):
            torch._dynamo.mark_static_address(tensor)

    def fill(self, data: DictReplayBufferSamples) -> DictReplayBufferSamples:
        for static, new in zip(_tensors(self.samples), _tensors(data), strict=True):
            static.copy_(new)
        return self.samples


class CompiledUpdate:
    """`model.update` compiled with `mode`, its optimizers made graph-safe, its batches static."""

    def __init__(self, model: LeanTQC, mode: str) -> None:
        self.caches = _encoder_caches(model)
        self.learning_rates = tensor_learning_rates(model.optimizers(), capturable=model.device.type == "cuda")
        self.batch: StaticBatch | None = None
        self.function = torch.compile(model.update, mode=mode, dynamic=False)

    def set_learning_rate(self, value: float) -> None:
        for learning_rate in self.learning_rates:
            learning_rate.fill_(value)

    def step(self, data: DictReplayBufferSamples, average: bool) -> torch.Tensor:
        """Check the sample's bar indices, copy it into the static batch, run the compiled update."""
        for observations in (data.observations, data.next_observations):
            if BAR_INDEX in observations:
                for cache in self.caches:
                    cache.check(observations[BAR_INDEX])
        if self.batch is None:
            self.batch = StaticBatch(data)
        return self.function(self.batch.fill(data), average).clone()  # a graph's output is reused by its replay


def tensor_learning_rates(optimizers: list[torch.optim.Optimizer], capturable: bool) -> list[torch.Tensor]:
    """Make each param group's learning rate a 0-d tensor on its parameters' device (returned, to be written in
    place); `capturable` keeps the optimizer's step count on the device (needed for CUDA graphs)."""
    rates = []
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            device = group["params"][0].device
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
            group.update(capturable=capturable, fused=False, foreach=None)
            rates.append(group["lr"])
            for parameter in group["params"]:
                state = optimizer.state.get(parameter, {})
                if capturable and "step" in state:  # counted by eager steps before: it moves next to its parameter
                    state["step"] = state["step"].to(device=device, dtype=torch.float32)
    return rates


def _encoder_caches(model: LeanTQC) -> list[EncoderCache]:
    from cryptorl.models.rl_adapter import FoundationFeatureExtractor

    extractors = [m for m in model.policy.modules() if isinstance(m, FoundationFeatureExtractor)]
    caches = {id(e.cache): e.cache for e in extractors if e.cache is not None}
    return list(caches.values())


def _map(data: DictReplayBufferSamples, function: Callable[[torch.Tensor], torch.Tensor]) -> DictReplayBufferSamples:
    """`data` (a NamedTuple) with `function` applied to each of its tensors (dict observations included)."""
    return type(data)(*(_apply(value, function) for value in data))


def _apply(value: Any, function: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, dict):
        return {key: function(tensor) for key, tensor in value.items()}
    return None if value is None else function(value)


def _tensors(data: DictReplayBufferSamples) -> list[torch.Tensor]:
    """Every tensor of a sample, in a fixed order (dict observations by key)."""
    tensors: list[torch.Tensor] = []
    for value in data:
        if isinstance(value, dict):
            tensors += [value[key] for key in sorted(value)]
        elif value is not None:
            tensors.append(value)
    return tensors
