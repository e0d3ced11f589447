from prefect import task

from cryptorl import stages
from cryptorl.config import RegimeConfig
from cryptorl.storage import ArtifactStore
from tasks.caching import content_cache_key


@task(cache_key_fn=content_cache_key(*stages.hmm.CODE_MODULES), persist_result=True)
def fit_hmm(store_url: str, split: stages.SegmentArtifacts, config: RegimeConfig, seed: int) -> stages.RegimeArtifacts:
    """Gaussian HMM on the train slice; forward-filtered regime context over the segment."""
    return stages.fit_hmm(ArtifactStore(store_url), split, config, seed)
