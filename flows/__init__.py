"""Prefect flows: the segment DAG (`wfo_segment`) and, later, the full walk-forward."""

from tasks import _env  # noqa: F401  (Prefect settings must be in place before prefect is imported)
