"""Read back what a flow run did, through the Prefect client."""

from __future__ import annotations

from uuid import UUID

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun


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
