"""The `retrain-latest` flow: train the newest segment the data allows (scheduled weekly in prefect.yaml).

    plan_segments("latest") ── wfo-segment N

It reads the data source again, so bars appended since the last run (`cryptorl data append`) make a
new segment appear; with unchanged data the newest segment is the same and every task is a cache hit.
"""

from __future__ import annotations

from prefect import flow

from flows.full_wfo import plan_segments
from flows.wfo_segment import SegmentRun, wfo_segment


@flow(name="retrain-latest", log_prints=True)
def retrain_latest(profile: str | None = None, timesteps: int | None = None, data: str | None = None,
                   storage: str | None = None, clean: bool = False,
                   overrides: dict[str, str] | None = None, seeds: str | list[int] | None = None) -> SegmentRun:
    """Run `wfo-segment` for the newest complete segment of `data` (parameters as in `wfo-segment`)."""
    [segment] = plan_segments("latest", profile, data, overrides)
    print(f"newest segment the data allows: {segment}")
    return wfo_segment(segment=segment, profile=profile, data=data, storage=storage, clean=clean,
                       timesteps=timesteps, overrides=overrides, seeds=seeds)
