"""What the actor does on the sampled states: its positions, its exploration noise, its entropy.

TQC's actor outputs a Gaussian over a pre-tanh action u and trades a = tanh(u). The deterministic position
is tanh(mean). With gSDE the noise is latent_sde(s) @ W with W ~ N(0, exp(log_std)²) elementwise, so over
draws of W the per-state noise is Gaussian with variance (latent_sde(s)² @ exp(log_std)²): the exploration
std depends on the state's latent features, and a shrinking latent silences exploration as surely as a
falling log_std. Without gSDE the actor outputs a per-state log_std directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sb3_contrib import TQC
from sb3_contrib.tqc.policies import Actor

from cryptorl.audit.diagnostics.observations import (
    Observations,
    TensorObservations,
    as_tensors,
    batch_size,
    deterministic_actions,
)
from cryptorl.errors import ConfigError
from cryptorl.training.callbacks.metrics import SATURATED

HISTOGRAM_BINS = 21  # over [-1, 1]: bin 10 is centred on flat, bins 0 and 20 hold the saturated positions
# |pre-tanh mean| at which tanh saturates (tanh(3) = 0.995) for actors without a clip. gSDE actors clip the
# mean with Hardtanh(±clip_mean) (2 by default, tanh(2) = 0.964), so for them the clip itself is the
# threshold: a mean pinned at the clip has no gradient left through the Hardtanh.
PRE_TANH_SATURATION = 3.0
TANH_EPSILON = 1e-6  # as SB3's TanhBijector, so the entropy estimate matches the -log π TQC trains on


@dataclass(frozen=True)
class ActionDiagnostics:
    """Deterministic positions across states, and the spread of the stochastic policy around them."""

    n_states: int
    position_mean: float
    position_std: float  # across states: ~0 means one position whatever the input (collapse)
    position_min: float
    position_max: float
    histogram_edges: list[float]  # HISTOGRAM_BINS + 1 edges over [-1, 1]
    histogram_fractions: list[float]  # share of states per bin (sums to 1)
    saturated_fraction: float  # |position| > 0.99
    pre_tanh_threshold: float  # the clip (gSDE) or PRE_TANH_SATURATION
    pre_tanh_saturated_fraction: float  # |pre-tanh mean| >= pre_tanh_threshold
    n_samples: int  # stochastic actions drawn per state
    sampled_std_mean: float  # mean over states of the std of the sampled positions (action units)
    # Mean over states of the Monte Carlo estimate of -E[log π(a|s)] (nats), the entropy TQC's temperature
    # tunes towards its target of -action_dim; far below the target means the exploration is gone.
    entropy_mean: float


@dataclass(frozen=True)
class GsdeDiagnostics:
    """The exploration noise's parameters and the per-state pre-tanh std they produce."""

    uses_sde: bool
    log_std_mean: float  # of the gSDE log_std matrix (latent_dim, A), or of the per-state log_std without gSDE
    log_std_min: float
    log_std_max: float
    exploration_std_mean: float  # per-state pre-tanh noise std, across states
    exploration_std_min: float
    exploration_std_max: float
    latent_sde_norm_mean: float  # mean |latent_sde(s)|: the state-dependent factor of the gSDE std (0 without gSDE)


def action_diagnostics(model: TQC, observations: Observations, n_samples: int = 64, seed: int = 0) -> ActionDiagnostics:
    """Positions, saturation and stochastic spread of `model`'s actor on the sampled states."""
    if n_samples < 2:
        raise ConfigError(f"action_diagnostics n_samples={n_samples}: use at least 2 draws per state (e.g. 64)")
    obs = as_tensors(model, observations)
    actor = model.policy.actor
    with torch.no_grad():
        mean, std = pre_tanh_gaussian(actor, obs)  # (N, A) each
        positions = deterministic_actions(model, obs).flatten().cpu().numpy()  # (N·A,)
        sampled_std, entropy = _sampled_spread(mean, std, n_samples, seed)
    counts, edges = np.histogram(positions, bins=HISTOGRAM_BINS, range=(-1.0, 1.0))
    threshold = _pre_tanh_threshold(actor)
    return ActionDiagnostics(
        n_states=batch_size(observations),
        position_mean=float(positions.mean()),
        position_std=float(positions.std()),
        position_min=float(positions.min()),
        position_max=float(positions.max()),
        histogram_edges=edges.tolist(),
        histogram_fractions=(counts / counts.sum()).tolist(),
        saturated_fraction=float((np.abs(positions) > SATURATED).mean()),
        pre_tanh_threshold=threshold,
        pre_tanh_saturated_fraction=float((mean.abs() >= threshold).float().mean()),
        n_samples=n_samples,
        sampled_std_mean=sampled_std,
        entropy_mean=entropy,
    )


def gsde_diagnostics(model: TQC, observations: Observations) -> GsdeDiagnostics:
    """log_std statistics and the real per-state exploration std (see the module docstring)."""
    obs = as_tensors(model, observations)
    actor = model.policy.actor
    with torch.no_grad():
        _, log_std, kwargs = actor.get_action_dist_params(obs)  # log_std (latent, A) with gSDE, else (N, A)
        _, std = pre_tanh_gaussian(actor, obs)  # (N, A)
    latent_norm = kwargs["latent_sde"].norm(dim=-1).mean().item() if actor.use_sde else 0.0
    return GsdeDiagnostics(
        uses_sde=actor.use_sde,
        log_std_mean=log_std.mean().item(),
        log_std_min=log_std.min().item(),
        log_std_max=log_std.max().item(),
        exploration_std_mean=std.mean().item(),
        exploration_std_min=std.min().item(),
        exploration_std_max=std.max().item(),
        latent_sde_norm_mean=latent_norm,
    )


def pre_tanh_gaussian(actor: Actor, observations: TensorObservations) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (N, A) of the actor's Gaussian over the pre-tanh action, as SB3's distributions compute them."""
    mean, log_std, kwargs = actor.get_action_dist_params(observations)
    if not actor.use_sde:
        return mean, log_std.exp()
    variance = kwargs["latent_sde"] ** 2 @ actor.get_std() ** 2  # (N, latent) @ (latent, A) -> (N, A)
    return mean, torch.sqrt(variance + actor.action_dist.epsilon)


def _sampled_spread(mean: torch.Tensor, std: torch.Tensor, n_samples: int, seed: int) -> tuple[float, float]:
    """(mean per-state std of tanh(u), mean per-state -E[log π]) from `n_samples` draws u ~ N(mean, std)."""
    generator = torch.Generator(device=mean.device).manual_seed(seed)
    noise = torch.randn((n_samples, *mean.shape), generator=generator, device=mean.device)  # (S, N, A)
    pre_tanh = mean + std * noise
    actions = torch.tanh(pre_tanh)
    # log π(a|s) = log N(u; mean, std) - log(1 - tanh(u)²): the change of variables of the squashing.
    gaussian_log_prob = -0.5 * noise**2 - std.log() - 0.5 * math.log(2 * math.pi)  # (S, N, A)
    log_prob = (gaussian_log_prob - torch.log(1 - actions**2 + TANH_EPSILON)).sum(dim=-1)  # (S, N)
    return actions.std(dim=0).mean().item(), (-log_prob.mean(dim=0)).mean().item()


def _pre_tanh_threshold(actor: Actor) -> float:
    return float(actor.clip_mean) if actor.use_sde and actor.clip_mean > 0 else PRE_TANH_SATURATION
