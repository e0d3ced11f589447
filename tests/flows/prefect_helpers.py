"""Read back what a flow run did, through the Prefect client."""

from __future__ import annotations

from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterKey, FlowFilter, FlowFilterName,
                                            FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId)
from prefect.client.schemas.objects import Artifact, FlowRun
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort


def task_states(flow_run_id: UUID) -> dict[str, str]:
    """Task name (without Prefect's run suffix) -> final state name, e.g. {'split_segment': 'Cached'}."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs}


def subflow_runs(parent: UUID) -> list[FlowRun]:
    """The flow runs the flow run `parent` started (its subflows)."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])))


def flow_run_artifact(flow_run_id: UUID, key: str) -> Artifact:
    """The newest artifact `key` that flow run `flow_run_id` created.

    Not `Artifact.get(key)`: that is the newest of the key across every run on the server, so a test
    reading it would depend on which other tests ran before it.
    """
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                          flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                          sort=ArtifactSort.CREATED_DESC, limit=1)
    assert artifacts, f"flow run {flow_run_id} created no artifact {key!r}"
    return artifacts[0]


def first_flow_run_on(flow_name: str, storage: str) -> FlowRun:
    """The earliest run of flow `flow_name` on the store `storage` (its run specification's, or its own `storage`
    parameter; each test module has its own store)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                     sort=FlowRunSort.START_TIME_ASC)
    matching = [run for run in runs if (run.parameters.get("spec") or run.parameters).get("storage") == storage]
    assert matching, f"no {flow_name} flow run on {storage}"
    return matching[0]
