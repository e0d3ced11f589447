"""Prefect flows: the segment DAG (`wfo_segment`), many segments at once (`full_wfo`, `study`, `retrain`) and the
champion's signal (`signal`)."""

from tasks import _env  # noqa: F401  (Prefect settings must be in place before prefect is imported)
