"""Which inputs move the actor and the critic? Permutation importance per input group.

Each group is shuffled across the sampled states (the other groups stay put), and the mean |Δ| of the
deterministic position (actor) and of Q(s, a_policy) (critic, at the unshuffled policy's action so that
only the critic's own sensitivity is measured) is that group's effect. A collapsed policy reads ~0 for
every group; a policy that trades on its costs but not the market reads w_cost > 0 and technical ~0.

Groups: `technical` (the frozen encoder's embeddings of the 50 technical features), `hmm` (the 5 context
columns FiLM reads), `position`, `w_cost`. The first two live inside the feature extractor, so they are
shuffled by wrapping every FoundationFeatureExtractor's `embed` (actor, critic, target critic) for the
duration of one evaluation; that works whether `embed` reads the encoder cache or encodes the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from sb3_contrib import TQC

from cryptorl.audit.diagnostics.observations import (
    Observations,
    TensorObservations,
    as_tensors,
    batch_size,
    deterministic_actions,
    foundation_extractors,
    mean_q,
)
from cryptorl.envs import POSITION, W_COST
from cryptorl.errors import ConfigError

TECHNICAL, HMM = "technical", "hmm"
GROUPS = (TECHNICAL, HMM, POSITION, W_COST)
# Total effect below this (position units for the actor, Q units for the critic, whose rewards are scaled to
# O(0.1..1)) means the network's output does not depend on any input: shares are then all 0.
NEGLIGIBLE_EFFECT = 1e-6

EmbedTransform = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Attribution:
    """Per-group mean |Δ| under permutation, and each group's share of the total (shares sum to 1 or are all 0)."""

    actor_effect: dict[str, float]  # mean |Δ deterministic position|
    critic_effect: dict[str, float]  # mean |Δ Q(s, a_policy)|
    actor_share: dict[str, float]
    critic_share: dict[str, float]
    actor_ignores_inputs: bool  # total actor effect < NEGLIGIBLE_EFFECT
    critic_ignores_inputs: bool
    n_repeats: int  # permutations averaged per group


def attribution(model: TQC, observations: Observations, n_repeats: int = 3, seed: int = 0) -> Attribution:
    """Permutation importance of each input group for the actor and the critic (see the module docstring)."""
    if n_repeats < 1:
        raise ConfigError(f"attribution n_repeats={n_repeats}: use at least 1 permutation per group (e.g. 3)")
    obs = as_tensors(model, observations)
    base_actions = deterministic_actions(model, obs)  # (N, 1)
    base_q = mean_q(model, obs, base_actions)  # (N,)
    generator = torch.Generator().manual_seed(seed)
    actor_effect, critic_effect = {}, {}
    for group in GROUPS:
        deltas = torch.zeros(2, dtype=torch.float64)  # summed mean |Δ position|, mean |Δ Q|
        for _ in range(n_repeats):
            order = torch.randperm(batch_size(obs), generator=generator).to(model.device)  # (N,)
            actions, q = _permuted_outputs(model, obs, group, order, base_actions)
            deltas += torch.stack([(actions - base_actions).abs().mean(), (q - base_q).abs().mean()]).cpu()
        actor_effect[group], critic_effect[group] = (deltas / n_repeats).tolist()
    return Attribution(
        actor_effect,
        critic_effect,
        _shares(actor_effect),
        _shares(critic_effect),
        sum(actor_effect.values()) < NEGLIGIBLE_EFFECT,
        sum(critic_effect.values()) < NEGLIGIBLE_EFFECT,
        n_repeats,
    )


def _permuted_outputs(
    model: TQC, obs: TensorObservations, group: str, order: torch.Tensor, base_actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic actions (N, 1) and Q(s, base_actions) (N,) with `group`'s rows reordered by `order`."""
    if group in (POSITION, W_COST):
        shuffled = {**obs, group: obs[group][order]}
        return deterministic_actions(model, shuffled), mean_q(model, shuffled, base_actions)
    with transformed_embed(model, _reorder_rows(group, order)):
        return deterministic_actions(model, obs), mean_q(model, obs, base_actions)


def _reorder_rows(group: str, order: torch.Tensor) -> EmbedTransform:
    """Reorder the technical inputs (embeddings and current bar) or the context (hmm) across states."""

    def transform(
        embeddings: torch.Tensor, context: torch.Tensor, current: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if group == TECHNICAL:
            return embeddings[order], context, current[order]
        return embeddings, context[order], current

    return transform


@contextmanager
def transformed_embed(model: TQC, transform: EmbedTransform) -> Iterator[None]:
    """Make every FoundationFeatureExtractor's `embed` return transform(embeddings (N, W, d), context (N, W, c),
    current bar (N, F)).

    The wrapper is an instance attribute shadowing the class method; removing it restores the method.
    """
    extractors = foundation_extractors(model)
    for extractor in extractors:
        extractor.embed = _transformed(extractor.embed, transform)  # type: ignore[method-assign]  # on purpose
    try:
        yield
    finally:
        for extractor in extractors:
            vars(extractor).pop("embed", None)


def _transformed(embed: Callable[..., tuple], transform: Callable[..., tuple]) -> Callable[..., tuple]:
    """`embed` whose result goes through `transform`."""
    return lambda observations: transform(*embed(observations))


def _shares(effects: dict[str, float]) -> dict[str, float]:
    total = sum(effects.values())
    return {group: (effect / total if total >= NEGLIGIBLE_EFFECT else 0.0) for group, effect in effects.items()}
