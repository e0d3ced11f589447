from prefect import task

from cryptorl import stages
from cryptorl.config import EnvConfig, MAEConfig, TrainConfig
from cryptorl.storage import ArtifactStore
from tasks.caching import content_cache_key


@task(cache_key_fn=content_cache_key(*stages.tqc.CODE_MODULES), persist_result=True)
def train_tqc(
    store_url: str,
    split: stages.SegmentArtifacts,
    regime: stages.RegimeArtifacts,
    mae: stages.MAEArtifacts,
    mae_config: MAEConfig,
    config: TrainConfig,
    env_config: EnvConfig,
    seed: int,
) -> stages.TQCArtifacts:
    """TQC on the train slice with the frozen encoder; checkpoints scored on the eval slice."""
    return stages.train_tqc(ArtifactStore(store_url), split, regime, mae, mae_config, config, env_config, seed)
