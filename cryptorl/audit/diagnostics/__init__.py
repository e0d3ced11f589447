"""Policy-collapse diagnostics: pure functions of a trained TQC and sampled test states (or of logged data).

Each returns a frozen dataclass of plain numbers and lists (`dataclasses.asdict` is JSON-safe):
what the actor does (`action_diagnostics`, `gsde_diagnostics`), whether the entropy bonus drowned the
reward (`entropy_diagnostics`), whether the critic ranks positions (`critic_diagnostics`), which inputs
move either network (`attribution`), and whether the regime context (`film_diagnostics`,
`hmm_diagnostics`) and the encoder (`mae_diagnostics`) carry information.
"""

from cryptorl.audit.diagnostics.attribution import GROUPS, Attribution, attribution, transformed_embed
from cryptorl.audit.diagnostics.critic import CriticDiagnostics, critic_diagnostics
from cryptorl.audit.diagnostics.entropy import (
    EntropyDiagnostics,
    ScalarSeries,
    entropy_diagnostics,
    read_scalar_trajectory,
)
from cryptorl.audit.diagnostics.film import FilmDiagnostics, FilmStats, film_diagnostics
from cryptorl.audit.diagnostics.hmm import HMMDiagnostics, hmm_diagnostics
from cryptorl.audit.diagnostics.mae import MAEDiagnostics, mae_diagnostics
from cryptorl.audit.diagnostics.observations import sample_states
from cryptorl.audit.diagnostics.policy import ActionDiagnostics, GsdeDiagnostics, action_diagnostics, gsde_diagnostics

__all__ = [
    "GROUPS",
    "ActionDiagnostics",
    "Attribution",
    "CriticDiagnostics",
    "EntropyDiagnostics",
    "FilmDiagnostics",
    "FilmStats",
    "GsdeDiagnostics",
    "HMMDiagnostics",
    "MAEDiagnostics",
    "ScalarSeries",
    "action_diagnostics",
    "attribution",
    "critic_diagnostics",
    "entropy_diagnostics",
    "film_diagnostics",
    "gsde_diagnostics",
    "hmm_diagnostics",
    "mae_diagnostics",
    "read_scalar_trajectory",
    "sample_states",
    "transformed_embed",
]
