"""Prefect tasks: one thin @task per pipeline stage, each calling one `cryptorl.stages` function."""

from tasks import _env  # noqa: F401  (Prefect settings must be in place before prefect is imported)
