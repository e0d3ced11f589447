from prefect import task

from cryptorl import stages
from cryptorl.config import MAEConfig
from cryptorl.storage import ArtifactStore
from tasks.caching import content_cache_key


@task(cache_key_fn=content_cache_key(*stages.mae.CODE_MODULES), persist_result=True)
def pretrain_mae(store_url: str, split: stages.SegmentArtifacts, config: MAEConfig, seed: int) -> stages.MAEArtifacts:
    """Masked-autoencoder pretraining of the segment's frozen market encoder."""
    return stages.pretrain_mae(ArtifactStore(store_url), split, config, seed)
