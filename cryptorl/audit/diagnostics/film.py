"""Has FiLM learned anything? γ and β of each extractor's FiLM layer on the sampled states.

FiLM starts as the exact identity (γ = 1, β = 0, zero-initialised). If it is still close to that after
training, the HMM context never reached the policy; if γ, β are far from it but the same in every
regime, the context moved the features without telling regimes apart. Regimes are the dominant HMM
state (argmax of p_state_0..3) at the window's last bar, the one the decision is taken on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sb3_contrib import TQC

from cryptorl.audit.diagnostics.observations import Observations, TensorObservations, as_tensors
from cryptorl.errors import ConfigError
from cryptorl.models import FoundationFeatureExtractor
from cryptorl.regime import STATE_COLUMNS


@dataclass(frozen=True)
class FilmStats:
    """One extractor's FiLM modulation, averaged over states, window bars and features."""

    gamma_dev_mean: float  # mean |γ - 1|: 0 exactly at initialisation
    beta_abs_mean: float  # mean |β|
    # Per-regime mean γ (resp. β) vectors (d,); their std across the regimes present, averaged over features:
    # 0 when FiLM does the same thing in every regime (or fewer than 2 regimes were sampled).
    gamma_regime_std: float
    beta_regime_std: float
    regime_counts: list[int]  # sampled states per dominant regime 0..3
    gamma_dev_by_regime: list[float]  # mean |γ - 1| per regime (0.0 where a regime has no state)
    beta_abs_by_regime: list[float]


@dataclass(frozen=True)
class FilmDiagnostics:
    actor: FilmStats
    critic: FilmStats


def film_diagnostics(model: TQC, observations: Observations) -> FilmDiagnostics:
    """FiLM statistics of the actor's and the critic's extractors (each has its own FiLM layer)."""
    obs = as_tensors(model, observations)
    return FilmDiagnostics(
        _film_stats(model.policy.actor.features_extractor, obs),
        _film_stats(model.policy.critic.features_extractor, obs),
    )


@torch.no_grad()
def _film_stats(extractor: torch.nn.Module, obs: TensorObservations) -> FilmStats:
    if not isinstance(extractor, FoundationFeatureExtractor):
        raise ConfigError(
            f"the policy's extractor is a {type(extractor).__name__}, not a FoundationFeatureExtractor: "
            "the FiLM diagnostics need a policy built by cryptorl.training.tqc.build_tqc"
        )
    _, context, _ = extractor.embed(obs)  # (N, W, c)
    gamma, beta = extractor.film.gamma_beta(context)  # (N, W, d) each
    regimes = context[:, -1, : len(STATE_COLUMNS)].argmax(dim=-1)  # (N,) dominant state at the decision bar
    present = [k for k in range(len(STATE_COLUMNS)) if bool((regimes == k).any())]
    gamma_by = {k: gamma[regimes == k].mean(dim=(0, 1)) for k in present}  # regime -> (d,)
    beta_by = {k: beta[regimes == k].mean(dim=(0, 1)) for k in present}
    return FilmStats(
        gamma_dev_mean=(gamma - 1).abs().mean().item(),
        beta_abs_mean=beta.abs().mean().item(),
        gamma_regime_std=_std_across(list(gamma_by.values())),
        beta_regime_std=_std_across(list(beta_by.values())),
        regime_counts=[int((regimes == k).sum()) for k in range(len(STATE_COLUMNS))],
        gamma_dev_by_regime=[
            (gamma[regimes == k] - 1).abs().mean().item() if k in gamma_by else 0.0 for k in range(len(STATE_COLUMNS))
        ],
        beta_abs_by_regime=[
            beta[regimes == k].abs().mean().item() if k in beta_by else 0.0 for k in range(len(STATE_COLUMNS))
        ],
    )


def _std_across(vectors: list[torch.Tensor]) -> float:
    """Std across regimes of per-regime (d,) vectors, averaged over the d features; 0.0 for < 2 regimes."""
    if len(vectors) < 2:
        return 0.0
    return torch.stack(vectors).std(dim=0, unbiased=False).mean().item()
