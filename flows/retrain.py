"""The `retrain-latest` flow: train the newest segment the data allows (scheduled weekly in prefect.yaml).

    plan_segments("latest") ── wfo-segment N

It reads the data source again, so bars appended since the last run (`cryptorl data append`) make a
new segment appear; with unchanged data the newest segment is the same and every task is a cache hit.
"""

from __future__ import annotations

from prefect import flow

from cryptorl.run_spec import RunSpec, pinned_profile
from flows.full_wfo import coverage, plan_segments
from flows.wfo_segment import SegmentRun, wfo_segment


@flow(name="retrain-latest", log_prints=True)
def retrain_latest(spec: RunSpec = RunSpec()) -> SegmentRun:
    """Run `wfo-segment` for the newest complete segment of the spec's data.

    Args:
        spec: what to train and where (as in `wfo-segment`)
    """
    [segment] = plan_segments("latest", spec.data_source, spec.config.data, spec.config.wfo)
    print(f"newest segment the data allows: {segment}")
    print(coverage(spec.data_source, spec.config.data, spec.config.wfo))
    return wfo_segment(segment=segment, spec=pinned_profile(spec))
