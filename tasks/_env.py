"""Prefect defaults measured on these machines (ARCHITECTURE.md, "Prefect facts"), applied unless set."""

import os

# The ephemeral server takes 14-21 s to start on 2 cores, above Prefect's default 20 s timeout.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Telemetry cannot reach the internet from the GPU server or CI and only logs errors there.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
