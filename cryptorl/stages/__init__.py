"""Pipeline stages: one function per node of the segment DAG, store in, store out.

Each stage takes small references (`ArtifactRef`, frozen dataclasses of them) plus typed configs, does
its work with the library, writes its outputs through `ArtifactStore` under a content-scoped key
(`segments/<n>/<stage>/<fingerprint>/...`) and returns references. The Prefect tasks in `tasks/` call
exactly one of these each; nothing here knows about Prefect.
"""

from cryptorl.config import TRAINING_STAGES, Profile
from cryptorl.evaluation.trials import Provenance
from cryptorl.hashing import code_version, fingerprint
from cryptorl.stages import audit, hmm, mae, split, tqc  # each stage module's CODE_MODULES
from cryptorl.stages.audit import AuditArtifacts, audit_segment
from cryptorl.stages.hmm import RegimeArtifacts, fit_hmm, load_regime_context
from cryptorl.stages.mae import MAEArtifacts, load_segment_encoder, pretrain_mae
from cryptorl.stages.split import SegmentArtifacts, SegmentData, load_segment, source_ref, split_segment
from cryptorl.stages.tqc import TQCArtifacts, train_tqc
from cryptorl.storage import ArtifactRef

__all__ = [
    "AuditArtifacts",
    "MAEArtifacts",
    "Provenance",
    "RegimeArtifacts",
    "SegmentArtifacts",
    "SegmentData",
    "TQCArtifacts",
    "audit_segment",
    "configuration_fingerprint",
    "fit_hmm",
    "load_regime_context",
    "load_segment",
    "load_segment_encoder",
    "pretrain_mae",
    "provenance",
    "source_ref",
    "split_segment",
    "train_tqc",
]


def configuration_fingerprint(profile: Profile) -> str:
    """The identity of what a run tries, for its trial record: every stage config and the code every stage runs.

    Not the seed (a configuration's seeds are its trials) and not the profile's name (display only).
    """
    modules = sorted({module for stage in (split, hmm, mae, tqc, audit) for module in stage.CODE_MODULES})
    return fingerprint(*(getattr(profile, stage) for stage in TRAINING_STAGES), code_version(*modules))


def provenance(data: ArtifactRef, profile: Profile) -> Provenance:
    """What a segment run's trials are filed under: its data source and its configuration."""
    return Provenance(data, configuration_fingerprint(profile), profile.name)
