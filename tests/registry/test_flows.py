"""The `promote` task and the `signal` flow under Prefect: artifacts read back through the client, events emitted."""

from __future__ import annotations

import time

import pytest

from tests.registry.conftest import pinned

DATASET = "btcusdt-1h"
HOURS_IN_A_CENTURY = 24 * 365 * 100  # a staleness limit that reads the 2018 test data


@pytest.fixture(scope="module")
def promoted(prefect_harness, trained, tmp_path_factory):
    """Two promotions of one challenger in flow runs: v1 accepted, then rejected (already the champion)."""
    from prefect import flow

    from tasks.promote import promote

    @flow(name="promote-in-a-test", validate_parameters=False)
    def promote_flow(store_url: str, challengers: list):
        return promote(store_url, challengers)

    store_url = f"file://{tmp_path_factory.mktemp('prefect-registry')}"
    challenger = trained.challengers(store_url)[1, 0]
    runs = [promote_flow(store_url, [challenger], return_state=True) for _ in range(2)]
    return store_url, challenger, [(run.state_details.flow_run_id, run.result()) for run in runs]


@pytest.fixture(scope="module")
def retired(prefect_harness, trained, tmp_path_factory):
    """A short-pinned agent promoted on segment 0 (BTC fell), then retired by a run on segment 1 (BTC rose)."""
    from prefect import flow

    from tasks.promote import promote
    from tests.registry.test_floor import SHORT, with_floor

    @flow(name="retire-in-a-test", validate_parameters=False)
    def promote_flow(store_url: str, challengers: list):
        return promote(store_url, challengers)

    store_url = f"file://{tmp_path_factory.mktemp('prefect-retirement')}"
    challengers = trained.challengers(store_url)
    runs = [promote_flow(store_url, [with_floor(pinned(challengers[segment, 0], SHORT, store_url))],
                         return_state=True) for segment in (0, 1)]
    return [(run.state_details.flow_run_id, run.result()) for run in runs]


def read_event(name: str, flow_run_id) -> object:
    """The one event `name` about the registry that the flow run `flow_run_id` emitted, once it is delivered.

    Filtered by the emitting flow run: other tests of the session emit the same events about the same registry.
    """
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    event_filter = EventFilter(event=EventNameFilter(name=[name]),
                               resource=EventResourceFilter(id=[f"cryptorl.registry.{DATASET}"]),
                               related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]))
    with get_client(sync_client=True) as client:
        for _ in range(40):  # the server persists events asynchronously
            events = client.read_events(filter=event_filter, limit=50).events
            if events:
                [event] = events
                return event
            time.sleep(0.25)
    raise AssertionError(f"no {name} event from flow run {flow_run_id}")


def test_the_promotion_artifact_says_which_way_and_why(promoted):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    _, _, [(accepted_run, accepted), (rejected_run, rejected)] = promoted
    with get_client(sync_client=True) as client:
        artifacts = {a.flow_run_id: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["promotion"])))}
    first, second = artifacts[accepted_run], artifacts[rejected_run]
    assert first.type == "markdown" and first.data.startswith("# Promotion ACCEPTED: btcusdt-1h, champion v1\n")
    assert accepted.reason in first.data and f"| challenger | 1 | 0 | healthy | {accepted.challenger.sharpe:.3f} |" \
        in first.data
    assert second.data.startswith("# Promotion REJECTED: btcusdt-1h, champion v1\n")
    assert "it is already the champion (v1)" in second.data and "| champion v1 (smoke), promoted " in second.data


def test_each_decision_emits_its_event_with_the_numbers(promoted):
    _, _, [(accepted_run, accepted), (rejected_run, rejected)] = promoted
    accepted_event = read_event("cryptorl.promotion.accepted", accepted_run)
    assert accepted_event.payload["id"] == accepted.id and accepted_event.payload["version"] == 1
    assert accepted_event.payload["outcome"] == "accepted"
    assert accepted_event.payload["challenger"]["sharpe"] == accepted.challenger.sharpe
    rejected_event = read_event("cryptorl.promotion.rejected", rejected_run)
    assert rejected_event.payload["id"] == rejected.id
    assert rejected_event.payload["reason"] == rejected.reason and rejected_event.payload["champion"]["version"] == 1


def test_a_retirement_emits_its_event_with_the_numbers(retired):
    (_, accepted), (retiring_run, retiring) = retired
    assert accepted.outcome == "accepted" and retiring.outcome == "retired"
    event = read_event("cryptorl.promotion.retired", retiring_run)
    assert event.payload["id"] == retiring.id and event.payload["retired"] == 1 and event.payload["version"] is None
    assert event.payload["champion"]["sharpe"] == retiring.champion.sharpe < 0
    assert event.payload["champion"]["floor"] == retiring.champion.floor


def test_the_signal_flow_returns_the_signal_and_shows_it(promoted):
    from flows.signal import signal
    from tests.flows.prefect_helpers import flow_run_artifact

    store_url, challenger, _ = promoted
    state = signal(data=challenger.data.uri, storage=store_url, max_staleness_hours=HOURS_IN_A_CENTURY,
                   return_state=True)
    result = state.result()
    assert result["bar"] == "2018-08-18T23:00:00+00:00" and result["champion"].startswith("btcusdt-1h v1 (model ")
    artifact = flow_run_artifact(state.state_details.flow_run_id, "signal")
    assert artifact.data.startswith(f"# Signal btcusdt-1h: {result['position']:+.4f}\n")
    assert "| bar | 2018-08-18 23:00 UTC (closed " in artifact.data and "| p_state_0 | " in artifact.data
