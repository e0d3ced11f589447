"""The states the diagnostics probe, and the model calls every diagnostic shares.

A diagnostic looks at a trained policy on N sampled test states (e.g. N = 256): random decision bars of
the test slice, each with a random held position in [-1, 1] and a w_cost from the audit's list. The
positions are random on purpose: a policy that conditions on its own position must show it, and a
backtest only ever visits the positions the policy itself chose (a collapsed one visits one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import TQC

from cryptorl.config import EnvConfig
from cryptorl.envs import BAR_INDEX, MARKET, POSITION, W_COST, MarketData
from cryptorl.errors import ConfigError
from cryptorl.models import FoundationFeatureExtractor
from cryptorl.training.critic import ExactCostCritic

Observations = Mapping[str, np.ndarray | torch.Tensor]  # key -> (N, ...) one row per sampled state
TensorObservations = dict[str, torch.Tensor]


def sample_states(
    market: MarketData,
    env_config: EnvConfig,
    observation_space: spaces.Dict,
    n: int,
    seed: int,
    w_costs: Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Observations (float32, one row per state) of `n` random decision bars of `market`'s slice.

    Keys follow `observation_space` (the model's): `market` (n, W, F) windows and/or `bar_index` (n, 1)
    span indices (for an encoder cache built over `market`'s span), plus `position` (n, 1) ~ U[-1, 1]
    and `w_cost` (n, 1) drawn from `w_costs`, or ~ U[env_config.w_cost_low, w_cost_high] when None.
    """
    unknown = sorted(set(observation_space.spaces) - {MARKET, BAR_INDEX, POSITION, W_COST})
    if unknown:
        raise ConfigError(
            f"observation space has keys {unknown} the diagnostics cannot sample: use a model trained "
            f"on BatchCryptoEnv observations ({MARKET}, {BAR_INDEX}, {POSITION}, {W_COST})"
        )
    if w_costs is not None and len(w_costs) == 0:
        raise ConfigError(
            "sample_states got an empty w_costs list: pass at least one cost weight, or None to draw "
            "from env.w_cost_low..env.w_cost_high"
        )
    rng = np.random.default_rng(seed)
    bars = rng.integers(market.start, market.stop - 1, n)  # (n,) decision bars: bar t+1 is in the slice too
    if w_costs is None:
        w_cost = rng.uniform(env_config.w_cost_low, env_config.w_cost_high, n)
    else:
        w_cost = rng.choice(np.asarray(w_costs, dtype=np.float64), n)
    columns = {POSITION: rng.uniform(-1.0, 1.0, n), W_COST: w_cost, BAR_INDEX: bars}
    observations = {
        key: columns[key].astype(np.float32).reshape(n, 1) for key in observation_space.spaces if key != MARKET
    }
    if MARKET in observation_space.spaces:
        observations[MARKET] = market.windows(torch.as_tensor(bars)).cpu().numpy()  # (n, W, F)
    return observations


def as_tensors(model: TQC, observations: Observations) -> TensorObservations:
    """float32 tensors on the model's device (SB3's Box preprocessing is exactly this cast)."""
    return {
        key: torch.as_tensor(value, dtype=torch.float32, device=model.device) for key, value in observations.items()
    }


def batch_size(observations: Observations) -> int:
    return len(next(iter(observations.values())))


def foundation_extractors(model: TQC) -> list[FoundationFeatureExtractor]:
    """Every FoundationFeatureExtractor of the policy (actor, critic, target critic), each once."""
    extractors = [m for m in model.policy.modules() if isinstance(m, FoundationFeatureExtractor)]
    if not extractors:
        raise ConfigError(
            f"{type(model.policy).__name__} has no FoundationFeatureExtractor: the attribution and "
            "FiLM diagnostics need a policy built by cryptorl.training.tqc.build_tqc"
        )
    return extractors


@torch.no_grad()
def deterministic_actions(model: TQC, observations: TensorObservations) -> torch.Tensor:
    """The policy's deterministic actions (N, A) = tanh(pre-tanh mean): the positions a backtest takes."""
    return model.policy.actor(observations, deterministic=True)


@torch.no_grad()
def critic_quantiles(
    model: TQC, observations: TensorObservations, actions: torch.Tensor, learned_only: bool = False
) -> torch.Tensor:
    """Z(s, a): (N, n_critics, n_quantiles) for actions (N, A).

    `learned_only`: what the critic networks learned, without the exact immediate cost an `ExactCostCritic`
    adds (the same for any other critic), so a critic is never credited with ranking actions by a term it
    was handed rather than learned.
    """
    critic = model.policy.critic
    if learned_only and isinstance(critic, ExactCostCritic):
        return critic.learned(observations, actions)
    return critic(observations, actions)


def mean_q(model: TQC, observations: TensorObservations, actions: torch.Tensor) -> torch.Tensor:
    """Q(s, a) (N,): the mean over critics and quantiles, the value TQC's actor loss maximises."""
    return critic_quantiles(model, observations, actions).mean(dim=(1, 2))
