"""Pipeline stages: one function per node of the segment DAG, store in, store out.

Each stage takes small references (`ArtifactRef`, frozen dataclasses of them) plus typed configs, does
its work with the library, writes its outputs through `ArtifactStore` under a content-scoped key
(`segments/<n>/<stage>/<fingerprint>/...`) and returns references. The Prefect tasks in `tasks/` call
exactly one of these each; nothing here knows about Prefect.
"""

from cryptorl.stages.audit import AuditArtifacts, audit_segment
from cryptorl.stages.hmm import RegimeArtifacts, fit_hmm, load_regime_context
from cryptorl.stages.mae import MAEArtifacts, load_segment_encoder, pretrain_mae
from cryptorl.stages.tqc import TQCArtifacts, train_tqc
from cryptorl.stages.split import SegmentArtifacts, SegmentData, load_segment, source_ref, split_segment

__all__ = [
    "AuditArtifacts",
    "audit_segment",
    "TQCArtifacts",
    "train_tqc",
    "MAEArtifacts",
    "load_segment_encoder",
    "pretrain_mae",
    "RegimeArtifacts",
    "SegmentArtifacts",
    "SegmentData",
    "fit_hmm",
    "load_regime_context",
    "load_segment",
    "source_ref",
    "split_segment",
]
