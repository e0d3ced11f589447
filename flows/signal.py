"""The `signal` flow: the champion's target position on the newest complete bar, as the artifact `signal`.

    compute_signal (markdown artifact `signal`)

The same as `cryptorl signal`; prefect.yaml deploys it with an hourly schedule that is off until you turn it on.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from cryptorl.champion.live import compute_signal as champion_signal
from cryptorl.champion.live import signal_markdown
from cryptorl.config import DEFAULT_DATA_PATH, SignalConfig
from cryptorl.storage import ArtifactStore

SIGNAL_KEY = "signal"


@task(cache_policy=NO_CACHE)  # new bars every hour: never reuse a signal
def compute_signal(
    data: str, storage: str | None, max_staleness_hours: float, position: float | None
) -> dict[str, Any]:
    """The champion's signal (see cryptorl/champion/live.py), shown as the markdown artifact `signal`."""
    signal = champion_signal(
        ArtifactStore(storage), data, held=position, config=SignalConfig(max_staleness_hours=max_staleness_hours)
    )
    create_markdown_artifact(
        key=SIGNAL_KEY,
        markdown=signal_markdown(signal),
        description=f"{signal.dataset}: target position {signal.position:+.4f}",
    )
    return signal.to_json()


@flow(name="signal", log_prints=True)
def signal(
    data: str | None = None,
    storage: str | None = None,
    max_staleness_hours: float = SignalConfig().max_staleness_hours,
    position: float | None = None,
) -> dict[str, Any]:
    """The position to hold now: the champion of `data`'s source on its newest complete bar.

    `data: null` is the bundled BTC/USDT file and `storage: null` the worker's $CRYPTORL_STORAGE; `position`
    is the position you hold (default: the champion's own simulated path, see cryptorl/champion/live.py).
    """
    result = compute_signal(data or str(DEFAULT_DATA_PATH), storage, max_staleness_hours, position)
    print(f"target position {result['position']:+.4f} on bar {result['bar']} ({result['champion']})")
    return result
