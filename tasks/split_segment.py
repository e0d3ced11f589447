from prefect import task

from cryptorl import stages
from cryptorl.config import DataConfig, FeatureConfig, WFOConfig
from cryptorl.storage import ArtifactRef, ArtifactStore
from tasks.caching import content_cache_key


@task(cache_key_fn=content_cache_key(*stages.split.CODE_MODULES), persist_result=True)
def split_segment(
    store_url: str,
    data: ArtifactRef,
    segment: int,
    data_config: DataConfig,
    feature_config: FeatureConfig,
    wfo_config: WFOConfig,
) -> stages.SegmentArtifacts:
    """Features + train-only scaler + train/eval/test slices of one WFO segment."""
    return stages.split_segment(ArtifactStore(store_url), data, segment, data_config, feature_config, wfo_config)
